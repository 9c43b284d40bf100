"""A registered derivation variant: what it is, where it comes from, and how it is expected to fare.

A wrong variant also says *when* it fails (:class:`Minimal`: a description, a
predicate for generic random cases, a predicate for a smallest trigger, a
hand-built minimal case and the nearest cases that pass) and *where*
(:class:`ExpectedLocation`: on that minimal case, the mismatching tensors, the
gates whose rows are wrong, and the step where the error enters). Every
condition was measured with the harness's random cases, which always have
random nonzero h0 and c0 (tests/test_variants.py re-checks each one).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from lstm_gradcheck.reference.case import Case, GradsFn, make_case
from lstm_gradcheck.reference.config import LSTMConfig
from lstm_gradcheck.reference.layout import GATES, gradient_names
from lstm_gradcheck.reference.verdicts import FAIL, PASS

__all__ = [
    "ALL_GATES",
    "BASE_CONFIG",
    "EVERY_TENSOR_ONE_LAYER",
    "CaseSpec",
    "ExpectedLocation",
    "Lengths",
    "Minimal",
    "Variant",
    "build_case",
    "longest",
    "padded",
]

Lengths = Sequence[int] | np.ndarray | None

#: Expected locations name these when a wrong variant touches every gate, or every tensor of
#: the one-layer minimal case (both from reference.layout, the one source of the names).
ALL_GATES = frozenset(GATES)
EVERY_TENSOR_ONE_LAYER = frozenset(gradient_names(1))

#: The smallest case of the harness's usual shape: one layer, one step, one sequence,
#: softmax cross-entropy at every step, summed, forget_bias 0, tanh cell, float64.
#: A variant's minimal case is this plus the few fields its condition needs.
BASE_CONFIG = LSTMConfig(
    input_size=3,
    hidden_size=3,
    num_layers=1,
    output_size=3,
    seq_len=1,
    batch_size=1,
    loss_at="every",
    loss="cross_entropy",
    reduction="sum",
    forget_bias=0.0,
    cell_output="tanh",
    dtype="float64",
    final_state=False,
)

#: Config fields to change from :data:`BASE_CONFIG`, plus two optional keys:
#: ``"lengths"`` (a list of B ints) and ``"zero"`` (names of x/h0/c0 arrays set to zero).
CaseSpec = Mapping[str, object]


def build_case(spec: CaseSpec, seed: int = 0) -> Case:
    """The case :data:`BASE_CONFIG` + ``spec``, random arrays from ``seed`` (h0, c0 nonzero unless zeroed)."""
    fields = dict(spec)
    lengths = fields.pop("lengths", None)
    zero = tuple(fields.pop("zero", ()))
    case = make_case(BASE_CONFIG.replace(**fields), seed, lengths)
    if zero:
        case = case.with_arrays({name: np.zeros_like(getattr(case, name)) for name in zero})
    return case


def longest(config: LSTMConfig, lengths: Lengths = None) -> int:
    """The longest sequence's number of steps (T without lengths)."""
    return config.seq_len if lengths is None else int(np.max(lengths))


def padded(config: LSTMConfig, lengths: Lengths = None) -> bool:
    """True when some sequence is shorter than T (it has padding steps)."""
    return lengths is not None and int(np.min(lengths)) < config.seq_len


@dataclass(frozen=True)
class Minimal:
    """When a wrong variant fails.

    Attributes:
        description: the condition in words, as measured with random nonzero h0, c0.
        condition: ``(config, lengths) -> bool``, the structural condition
            (e.g. ``seq_len >= 2``); :meth:`triggers` adds what every variant needs.
        is_minimal: ``(config, lengths) -> bool``: is a case with that config a
            smallest trigger (e.g. ``seq_len == 3`` for a variant wrong from T = 3)?
        example: the hand-built minimal failing case (a :data:`CaseSpec`).
        below: cases just under the condition, on which the variant agrees (may be empty).
        via_head: the error is in the head's δy, so it needs a nonzero δy (a
            final-state term alone does not show it).
    """

    description: str
    condition: Callable[[LSTMConfig, Lengths], bool]
    is_minimal: Callable[[LSTMConfig, Lengths], bool]
    example: CaseSpec
    below: tuple[CaseSpec, ...] = ()
    via_head: bool = False

    def triggers(self, config: LSTMConfig, lengths: Lengths = None) -> bool:
        """Does the variant fail on a generic random case of ``config`` (random nonzero weights, h0, c0)?

        The structural condition, on a loss with a gradient: softmax cross-entropy
        over one class is log 1 = 0 for every parameter, so only a final-state term
        gives such a case a gradient at all. "Generic" excludes accidents of the
        tolerance rule: an error under the floor ``64 eps * (largest gradient)``
        (e.g. vanishing LSTM gradients beside a large head gradient in float32)
        is not a mismatch.
        """
        if not self.condition(config, lengths):
            return False
        if config.loss == "cross_entropy" and config.output_size == 1:
            return config.final_state and not self.via_head
        return True


@dataclass(frozen=True)
class ExpectedLocation:
    """Where a wrong variant is wrong on its minimal ``example`` case.

    Attributes:
        tensors: the gradient tensors (contract names) that mismatch.
        gates: the gates whose rows of 4H tensors are wrong (empty if none of those is wrong).
        step: the step where the error enters (the latest step whose per-step
            contribution to an LSTM parameter is wrong), or None if no LSTM
            parameter is wrong.
        note: how the location grows beyond the minimal case.
    """

    tensors: frozenset[str]
    gates: frozenset[str] = frozenset()
    step: int | None = None
    note: str = ""

    def as_dict(self) -> dict[str, object]:
        return {"tensors": sorted(self.tensors), "gates": sorted(self.gates), "step": self.step, "note": self.note}


@dataclass(frozen=True)
class Variant:
    """One derivation variant of the regression suite.

    Attributes:
        name: a Python identifier (so ``--impl lstm_gradcheck.reference.variants:<name>`` works).
        source: where the derivation comes from; a seed's own derivation starts
            with ``seed 000`` … ``seed 004``.
        statement: the derivation in one line.
        expected: ``"pass"`` (right) or ``"fail"`` (wrong).
        grads: the contract's ``grads(case)``, with ``grads.per_step(case)``.
        minimal, location: for wrong variants, when and where they fail.
    """

    name: str
    source: str
    statement: str
    expected: str
    grads: GradsFn
    minimal: Minimal | None = None
    location: ExpectedLocation | None = None

    def __post_init__(self) -> None:
        if not self.name.isidentifier():
            raise ValueError(f"variant name {self.name!r} must be a Python identifier")
        if self.expected not in (PASS, FAIL):
            raise ValueError(f"variant {self.name}: expected must be 'pass' or 'fail', got {self.expected!r}")
        if (self.expected == FAIL) != (self.minimal is not None and self.location is not None):
            raise ValueError(f"variant {self.name}: a wrong variant needs minimal and location, a right one neither")

    @property
    def is_seed(self) -> bool:
        """True for a seed document's own derivation (its source names the seed)."""
        return self.source.startswith("seed ")

    def example_case(self, seed: int = 0) -> Case | None:
        """The hand-built minimal failing case (None for a right variant)."""
        return None if self.minimal is None else build_case(self.minimal.example, seed)

    def as_dict(self) -> dict[str, object]:
        """The registry entry as plain data (for ``lstm-gradcheck variants --json``)."""
        out: dict[str, object] = {
            "name": self.name,
            "source": self.source,
            "statement": self.statement,
            "expected": self.expected,
        }
        if self.minimal is not None and self.location is not None:
            case = build_case(self.minimal.example)
            lengths = None if case.lengths is None else case.lengths.tolist()
            out["minimal"] = self.minimal.description
            out["minimal_case"] = {**case.config.as_dict(), "lengths": lengths}
            out["location"] = self.location.as_dict()
        return out
