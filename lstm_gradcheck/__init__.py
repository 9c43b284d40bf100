"""lstm-gradcheck: prove an LSTM's hand-derived gradients right, or show exactly where they are wrong.

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

or run ``pytest --lstm-impl mypkg.lstm:grads`` (the bundled pytest plugin).
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = [
    "Case",
    "CaseSpace",
    "GradientMismatchError",
    "ImplementationFailedError",
    "LSTMConfig",
    "assert_gradients_match",
    "cases",
    "make_case",
    "search",
]

_LAZY = {
    "Case": ("lstm_gradcheck.reference.case", "Case"),
    "make_case": ("lstm_gradcheck.reference.case", "make_case"),
    "LSTMConfig": ("lstm_gradcheck.reference.config", "LSTMConfig"),
    "GradientMismatchError": ("lstm_gradcheck.oracles.compare", "GradientMismatchError"),
    "assert_gradients_match": ("lstm_gradcheck.api", "assert_gradients_match"),
    "ImplementationFailedError": ("lstm_gradcheck.api", "ImplementationFailedError"),
    "search": ("lstm_gradcheck.searching", "search"),
    "cases": ("lstm_gradcheck.properties.strategies", "cases"),
    "CaseSpace": ("lstm_gradcheck.properties.strategies", "CaseSpace"),
}


def __getattr__(name: str) -> Any:
    # Lazy, so `import lstm_gradcheck` (e.g. by the pytest plugin) stays cheap.
    if name in _LAZY:
        import importlib  # noqa: PLC0415

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'lstm_gradcheck' has no attribute {name!r}")
