"""The rows of a report: each tensor's verdict over the oracles, and where in time an error enters.

Both :mod:`lstm_gradcheck.report` and :mod:`lstm_gradcheck.localize` build
these records; neither imports the other for them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from lstm_gradcheck.oracles.records import MISMATCH, TensorResult

__all__ = ["TensorSummary", "StepLocalization", "PER_STEP", "SUFFIX", "PREFIX", "REVERSE_SUFFIX", "finite_or_none"]

#: Step localization methods (Note [Step localization] in lstm_gradcheck.localize); a reverse
#: direction's suffix runs are on each sequence's first T' steps (it runs from the last step back).
PER_STEP, SUFFIX, PREFIX, REVERSE_SUFFIX = "per-step contributions", "suffix", "prefix", "reverse suffix"


def finite_or_none(value: float | None) -> float | None:
    """The JSON encoding of a number: non-finite values (inf, NaN) are null."""
    return float(value) if value is not None and math.isfinite(value) else None


@dataclass(frozen=True)
class TensorSummary:
    """One row of the table: a gradient tensor's verdict over every oracle that ran.

    ``status`` is "mismatch" if any oracle found one, "not provided" if the
    implementation left the tensor out, else "ok"; the numbers and the worst
    element come from ``record`` (the most precise oracle that flagged it, or
    the most precise one overall); ``flagged_by`` lists the oracles that flagged it.
    """

    name: str
    status: str
    record: TensorResult | None
    flagged_by: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, object]:
        if self.record is None:
            return {"name": self.name, "status": self.status}
        out = self.record.as_dict()
        out["status"] = self.status
        out["flagged_by"] = list(self.flagged_by)
        if self.status != MISMATCH:
            for key in ("location", "layer", "gate", "unit", "column", "step", "analytic", "oracle_value"):
                out.pop(key, None)
        return out


@dataclass(frozen=True)
class StepLocalization:
    """Where in time a mismatching tensor's error enters (Note [Step localization]).

    ``method`` is :data:`PER_STEP` (``errors[t]`` is step t's contribution's
    largest absolute error, against the absolute allowance ``allowed``),
    :data:`SUFFIX` (``errors[T - T']`` is the largest error over its allowance
    of the run on each sequence's last T' steps, so ``allowed`` is 1) or
    :data:`PREFIX` (``errors[T' - 1]`` the same for the run on the first T'
    steps) or :data:`REVERSE_SUFFIX` (``errors[T' - 1]`` the same for the run on
    each sequence's first T' steps with the reverse direction started from its
    exact state). ``gate_errors[k][t]`` is the same for gate k's rows (4H tensors).
    NaN marks a step that could not be measured (the implementation refused or
    failed that run).

    ``entry_step`` (per-step, suffix): the latest step that is wrong, every
    later one measured and right (for a reverse-direction tensor, ``reverse``, which
    runs from the last step back: the earliest, every earlier one measured and
    right); ``first_wrong_prefix`` (prefix): the fewest
    steps that show the error, every shorter prefix measured and right. Where
    that rests on a step that could not be measured, both are None and
    ``unknown`` says why; never a guess.
    """

    tensor: str
    method: str
    entry_step: int | None
    errors: tuple[float, ...]
    allowed: float
    gate_errors: tuple[tuple[float, ...], ...] = ()
    unknown: str | None = None
    first_wrong_prefix: int | None = None
    reverse: bool = False

    @property
    def located(self) -> bool:
        return self.entry_step is not None or self.first_wrong_prefix is not None

    def describe(self) -> str:
        if self.unknown is not None:
            return f"{self.tensor}: the step where the error enters is unknown: {self.unknown}"
        if self.method == PREFIX:
            if self.first_wrong_prefix is None:
                return f"{self.tensor}: no prefix run's error exceeds the allowance on its own (prefix runs)"
            return (
                f"{self.tensor}: the error shows first with {self.first_wrong_prefix} step(s) (prefix runs from the "
                "case's own initial states; the shorter prefixes agree)"
            )
        if self.entry_step is None:
            return f"{self.tensor}: no step's error exceeds the allowance on its own ({self.method})"
        how = {
            PER_STEP: "per-step contributions",
            REVERSE_SUFFIX: "runs on the first steps, the reverse direction from its exact state",
        }.get(self.method, "suffix runs, which assume every step is alike")
        if self.reverse:
            later = "the reverse direction runs back to step 0: " + (
                "the steps before it agree" if self.entry_step > 0 else "it is its last step"
            )
        else:
            later = "the steps after it agree" if self.entry_step < len(self.errors) - 1 else "it is the last step"
        return f"{self.tensor}: the error enters at step {self.entry_step} ({how}; {later})"

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "tensor": self.tensor,
            "method": self.method,
            "entry_step": self.entry_step,
            "errors": [finite_or_none(e) for e in self.errors],
            "allowed": finite_or_none(self.allowed),
            "gate_errors": [[finite_or_none(e) for e in row] for row in self.gate_errors],
        }
        if self.method == PREFIX:
            out["first_wrong_prefix"] = self.first_wrong_prefix
        if self.reverse:
            out["reverse"] = True
        if self.unknown is not None:
            out["unknown"] = self.unknown
        return out
