"""What every oracle is and returns: the bottom of the oracle package, imported by all, importing none.

An oracle either computes the full gradient (:data:`FULL`: ``torch``, ``torch-nn``,
``fd``, ``richardson``, ``complex-step``), returning a :class:`FullGradient` that the
registry compares under the one tolerance rule, or judges an implementation's
gradient itself (:data:`JUDGE`: ``taylor``, ``directional``), returning an
:class:`OracleReport`. Each is described once by an :class:`OracleSpec`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from lstm_gradcheck.oracles.judging import JudgingContext
from lstm_gradcheck.oracles.records import CheckResult
from lstm_gradcheck.reference.case import Case
from lstm_gradcheck.reference.config import LSTMConfig
from lstm_gradcheck.reference.verdicts import FAIL, PASS, SKIPPED

__all__ = [
    "PASS",
    "FAIL",
    "SKIPPED",
    "FULL",
    "JUDGE",
    "FullGradient",
    "OracleReport",
    "OracleAbstains",
    "LossFn",
    "OracleSpec",
    "never",
]

#: The two kinds of oracle.
FULL, JUDGE = "full gradient", "judge"

LossFn = Callable[[Case], float]
"""A loss of float64 cases to differentiate numerically; None everywhere means the contract's model."""


@dataclass(frozen=True)
class FullGradient:
    """A full-gradient oracle's answer: loss, gradients by name (float64, the tensors' shapes),
    per-element error estimates (or None: exact to the rule's rtol), the whole-case forward
    evaluations it cost, and how it was computed."""

    loss: float | None
    grads: Mapping[str, np.ndarray]
    forward_passes: int
    errors: Mapping[str, np.ndarray] | None = None
    details: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class OracleReport:
    """What one oracle said about one implementation on one case.

    ``verdict`` is :data:`PASS`, :data:`FAIL` or :data:`SKIPPED` (with ``reason``);
    ``check`` holds the per-tensor records; ``details`` oracle-specific extras (the
    Taylor slopes, a ``summary`` line) for the report and the JSON.
    """

    name: str
    verdict: str
    seconds: float
    forward_passes: int
    check: CheckResult | None = None
    reason: str | None = None
    details: Mapping[str, object] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "name": self.name,
            "verdict": self.verdict,
            "seconds": self.seconds,
            "forward_passes": self.forward_passes,
        }
        if self.reason is not None:
            out["reason"] = self.reason
        if self.check is not None:
            out["tolerance"] = self.check.tolerance.describe()
        if self.details:
            out["details"] = dict(self.details)
        return out


class OracleAbstains(Exception):
    """Raised by an oracle that cannot bound its answer on a case; the message says why and the
    oracle is reported as skipped with it."""


def never(config: LSTMConfig) -> str | None:
    """The ``unfit`` / ``costly`` of an oracle that fits every case."""
    return None


@dataclass(frozen=True)
class OracleSpec:
    """One oracle, as the registry's table holds it.

    Attributes:
        name: the CLI name (``--oracle NAME``).
        summary: one line for the help and the docs.
        kind: :data:`FULL` (``gradient`` is set) or :data:`JUDGE` (``judge`` is set).
        precedence: lower is more precise; a tensor's row shows the most precise oracle's numbers.
        unfit: why the oracle cannot judge a config at all (None if it can).
        costly: why it is left out of the default set for a config (None if not); asked
            for by name it still runs.
        needs_torch: it runs torch, whose start-up the report times apart.
        takes_seconds: its judge takes ``seconds=``, the time it may spend (the report's budget left).
        gradient: ``gradient(context) -> FullGradient``.
        judge: ``judge(context, loss, grads, loss_fn) -> OracleReport``.
    """

    name: str
    summary: str
    kind: str
    precedence: int
    unfit: Callable[[LSTMConfig], str | None] = never
    costly: Callable[[LSTMConfig], str | None] = never
    needs_torch: bool = False
    takes_seconds: bool = False
    gradient: Callable[[JudgingContext], FullGradient] | None = None
    judge: Callable[[JudgingContext, float | None, Mapping[str, np.ndarray], LossFn | None], OracleReport] | None = None

    def __post_init__(self) -> None:
        if (self.kind == FULL) != (self.gradient is not None) or (self.kind == JUDGE) != (self.judge is not None):
            raise ValueError(f"oracle {self.name}: a {self.kind!r} oracle sets exactly its own function")
