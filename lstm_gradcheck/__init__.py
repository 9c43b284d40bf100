"""lstm-gradcheck: prove an LSTM's hand-derived gradients right, or show exactly where they are wrong.

The public API (every name is imported on first use, so ``import lstm_gradcheck`` is cheap):

Cases
    LSTMConfig              every setting of the contract's model (sizes, loss, reduction, forget_bias, ...)
    Case, make_case         one validated, read-only case; ``make_case(config, seed)`` builds a random one
    Layout, head            your storage layout converted to and from the contract's; the contract's head and loss
    flat_params, flat_grads every layer's parameters as one flat vector (cuDNN's order) and back
    sort_by_length, unsort  a batch sorted longest first, and a gradient's batch axis put back
    pack, unpack            padded (T, B, ...) arrays to packed (data, batch_sizes) and back
    final_state_loss        the final-state term of the loss, for adapters

Checking
    assert_gradients_match  one case: raises GradientMismatchError naming tensor, gate, unit and step
    search, SearchResult    a Hypothesis search for a failing case, shrunk to the smallest
    cases, CaseSpace        the Hypothesis strategy of cases (optionally within a smaller space)
    gradcheck_settings      Hypothesis settings for gradient checks (no deadline)

Errors
    GradientMismatchError, ImplementationFailedError, NothingCheckedError, CaseError, ImplementationLoadError

For your own tests::

    from lstm_gradcheck import assert_gradients_match, cases, make_case, LSTMConfig

    def test_my_lstm_on_one_case():
        assert_gradients_match("mypkg.lstm:grads", make_case(LSTMConfig(seq_len=5), seed=1))

    @hypothesis.given(cases())
    def test_my_lstm_everywhere(case):
        try:
            assert_gradients_match(my_grads, case)
        except NotImplementedError:
            hypothesis.reject()

or run ``pytest --lstm-impl mypkg.lstm:grads`` (the bundled pytest plugin), or the command line
``lstm-gradcheck report|search|variants`` (see ``lstm-gradcheck --help``).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

#: Every public name and the module it lives in (imported on first use).
_LAZY = {
    "LSTMConfig": "lstm_gradcheck.reference.config",
    "Case": "lstm_gradcheck.reference.case",
    "make_case": "lstm_gradcheck.reference.case",
    "Layout": "lstm_gradcheck.reference.converters",
    "head": "lstm_gradcheck.reference.head",
    "flat_params": "lstm_gradcheck.reference.flat_params",
    "flat_grads": "lstm_gradcheck.reference.flat_params",
    "sort_by_length": "lstm_gradcheck.reference.packing",
    "unsort": "lstm_gradcheck.reference.packing",
    "pack": "lstm_gradcheck.reference.packing",
    "unpack": "lstm_gradcheck.reference.packing",
    "final_state_loss": "lstm_gradcheck.reference.head",
    "assert_gradients_match": "lstm_gradcheck.api",
    "search": "lstm_gradcheck.searching",
    "SearchResult": "lstm_gradcheck.searching",
    "cases": "lstm_gradcheck.api",
    "CaseSpace": "lstm_gradcheck.properties.strategies",
    "gradcheck_settings": "lstm_gradcheck.properties.hypothesis_settings",
    "GradientMismatchError": "lstm_gradcheck.oracles.records",
    "ImplementationFailedError": "lstm_gradcheck.api",
    "NothingCheckedError": "lstm_gradcheck.api",
    "CaseError": "lstm_gradcheck.reference.config",
    "ImplementationLoadError": "lstm_gradcheck.implementation",
}

__all__ = [  # what _LAZY provides, spelled out for tools that read __all__
    "__version__",
    "LSTMConfig",
    "Case",
    "make_case",
    "Layout",
    "head",
    "flat_params",
    "flat_grads",
    "sort_by_length",
    "unsort",
    "pack",
    "unpack",
    "final_state_loss",
    "assert_gradients_match",
    "search",
    "SearchResult",
    "cases",
    "CaseSpace",
    "gradcheck_settings",
    "GradientMismatchError",
    "ImplementationFailedError",
    "NothingCheckedError",
    "CaseError",
    "ImplementationLoadError",
]


def __dir__() -> list[str]:
    # help(), dir() and completion see the lazy names too.
    return sorted({*globals(), *_LAZY})


def __getattr__(name: str) -> Any:
    # Lazy, so `import lstm_gradcheck` (e.g. by the pytest plugin) stays cheap.
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'lstm_gradcheck' has no attribute {name!r}")
