"""The mismatch records: one tensor against one oracle, the loss, a whole check, the exception."""

from __future__ import annotations

import math
from dataclasses import dataclass

from lstm_gradcheck.oracles.tolerance import Tolerance
from lstm_gradcheck.reference.locations import Location
from lstm_gradcheck.reference.verdicts import MISMATCH, NOT_PROVIDED, OK

__all__ = [
    "OK",
    "MISMATCH",
    "NOT_PROVIDED",
    "TensorResult",
    "LossResult",
    "CheckResult",
    "GradientMismatchError",
    "json_float",
]


@dataclass(frozen=True)
class TensorResult:
    """The mismatch record: one gradient tensor compared with one oracle.

    ``max_rel_err`` is ``max_abs_err / scale`` (error against the tensor's
    scale); ``worst`` locates the element with the largest error relative to
    what is allowed there; ``bad`` counts elements over the allowance.
    ``vanishing``: the tensor is over 1000x smaller than the largest gradient
    and judged at the roundoff floor (its relative error may then be large).
    """

    name: str
    status: str
    oracle: str
    max_abs_err: float = math.nan
    max_rel_err: float = math.nan
    scale: float = math.nan
    allowed: float = math.nan
    bad: int = 0
    size: int = 0
    worst: Location | None = None
    analytic_value: float = math.nan
    oracle_value: float = math.nan
    ill_conditioned: bool = False
    vanishing: bool = False
    #: max over elements of |a - o| / allowed there; NaN when the record has no elements
    #: (an oracle's allowance can differ per element, so max_abs_err / allowed is not it).
    worst_ratio: float = math.nan

    @property
    def ok(self) -> bool:
        return self.status == OK

    @property
    def severity(self) -> float:
        """How far over the allowance (>1 mismatches); for sorting worst first."""
        if self.status == NOT_PROVIDED:
            return -1.0
        if self.ill_conditioned:
            return 0.0
        if not math.isnan(self.worst_ratio):
            return self.worst_ratio
        return self.max_abs_err / self.allowed if self.allowed > 0 else (math.inf if self.max_abs_err > 0 else 0.0)

    def describe(self) -> str:
        if self.status == NOT_PROVIDED:
            return f"{self.name}: not provided by the implementation"
        if self.ill_conditioned:
            return (
                f"{self.name}: ill-conditioned in {self.oracle}'s comparison: eps-level input changes move the "
                f"exact gradient by more than its scale {self.scale:.3g}; not judged"
            )
        where = self.worst.describe() if self.worst is not None else self.name
        return (
            f"{self.name}: {self.status}, max abs err {self.max_abs_err:.3g} "
            f"(rel {self.max_rel_err:.3g} of scale {self.scale:.3g}, allowed {self.allowed:.3g}); "
            f"worst {where}: analytic {self.analytic_value:+.6g}, {self.oracle} {self.oracle_value:+.6g}; "
            f"{self.bad}/{self.size} elements over"
        )

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "name": self.name,
            "status": self.status,
            "oracle": self.oracle,
            "max_abs_err": json_float(self.max_abs_err),
            "max_rel_err": json_float(self.max_rel_err),
            "scale": json_float(self.scale),
            "allowed": json_float(self.allowed),
            "elements_over": self.bad,
            "size": self.size,
            "ill_conditioned": self.ill_conditioned,
            "vanishing": self.vanishing,
        }
        if self.worst is not None:
            out.update(
                {
                    "analytic": json_float(self.analytic_value),
                    "oracle_value": json_float(self.oracle_value),
                    "location": self.worst.as_dict(),
                    "layer": self.worst.layer,
                    "gate": self.worst.gate,
                    "unit": self.worst.unit,
                    "column": self.worst.column,
                    "step": self.worst.step,
                }
            )
        return out


def json_float(value: float) -> float | None:
    """The JSON encoding of a number: non-finite values (inf, NaN) are null."""
    return None if value is None or not math.isfinite(value) else float(value)


@dataclass(frozen=True)
class LossResult:
    """The scalar loss compared with one oracle's."""

    status: str
    analytic: float
    oracle_value: float
    abs_err: float
    allowed: float
    ill_conditioned: bool = False

    def as_dict(self) -> dict[str, object]:
        return {
            "status": self.status,
            "ill_conditioned": self.ill_conditioned,
            "implementation": json_float(self.analytic),
            "oracle": json_float(self.oracle_value),
            "abs_err": json_float(self.abs_err),
            "allowed": json_float(self.allowed),
        }


@dataclass(frozen=True)
class CheckResult:
    """An implementation's loss and gradients against one oracle."""

    oracle: str
    tolerance: Tolerance
    loss: LossResult | None
    tensors: tuple[TensorResult, ...]

    @property
    def ok(self) -> bool:
        loss_ok = self.loss is None or self.loss.status == OK
        return loss_ok and all(t.status != MISMATCH for t in self.tensors)

    @property
    def mismatches(self) -> tuple[TensorResult, ...]:
        return tuple(sorted((t for t in self.tensors if t.status == MISMATCH), key=lambda t: -t.severity))

    def describe(self) -> str:
        bad = self.mismatches
        lines = [
            f"[lstm-gradcheck] {len(bad)} of {len(self.tensors)} gradient tensors mismatch oracle "
            f"{self.oracle!r}; rule {self.tolerance.describe()}"
        ]
        if self.loss is not None and self.loss.status != OK:
            lines.append(
                f"  loss: implementation {self.loss.analytic!r}, {self.oracle} {self.loss.oracle_value!r} "
                f"(abs err {self.loss.abs_err:.3g}, allowed {self.loss.allowed:.3g})"
            )
        lines.extend("  " + t.describe() for t in bad)
        return "\n".join(lines)

    def raise_if_mismatch(self) -> None:
        if not self.ok:
            raise GradientMismatchError(self)


class GradientMismatchError(AssertionError):
    """Raised by tests and helpers when gradients disagree; ``.result`` holds the records."""

    __module__ = "lstm_gradcheck"  # public under this name (tracebacks say lstm_gradcheck.GradientMismatchError)

    def __init__(self, result: CheckResult) -> None:
        super().__init__(result.describe())
        self.result = result

    @property
    def mismatches(self) -> tuple[TensorResult, ...]:
        return self.result.mismatches
