"""One case, one implementation, every oracle that fits: the gradient-mismatch report.

:func:`build_report` runs the implementation and the oracles and returns a
:class:`Report`; :meth:`Report.as_json` is the contract's JSON; the text and
rich renderings live in :mod:`lstm_gradcheck.render`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from lstm_gradcheck.implementation import (
    FAILED,
    OK,
    UNSUPPORTED,
    Implementation,
    ImplOutcome,
    call_implementation,
)
from lstm_gradcheck.oracles.compare import TensorResult, conditioning_allowance, unjudgeable
from lstm_gradcheck.oracles.registry import OracleReport, default_oracles, oracle_names, run_oracle
from lstm_gradcheck.reference.case import Case
from lstm_gradcheck.reference.config import CaseError
from lstm_gradcheck.reference.layout import gradient_names

__all__ = ["TensorSummary", "StepLocalization", "Report", "build_report", "case_json", "ORACLE_PRECEDENCE"]

#: Which oracle's numbers a tensor's row shows when several ran (most precise first).
ORACLE_PRECEDENCE = ("torch", "torch-nn", "complex-step", "richardson", "fd", "directional", "taylor")


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
        if self.status != "mismatch":
            for key in ("location", "layer", "gate", "unit", "column", "step", "analytic", "oracle_value"):
                out.pop(key, None)
        return out


@dataclass(frozen=True)
class StepLocalization:
    """Where in time a mismatching tensor's error enters.

    ``method`` is "per-step contributions" (the implementation's dW_t against
    torch with one weight copy per step; ``errors[t]`` is step t's largest
    absolute error, against the absolute allowance ``allowed``) or "suffix"
    (the implementation on each sequence's last T' steps from the exact states
    before them; ``errors[T - T']`` is the largest error divided by its
    allowance, so ``allowed`` is 1). ``gate_errors[k][t]`` is the same for gate
    k's rows (4H tensors). ``entry_step`` is the step where the error enters:
    the latest step that is wrong, since BPTT runs from the last step back and
    every earlier step inherits the error. None if no step is over.
    """

    tensor: str
    method: str
    entry_step: int | None
    errors: tuple[float, ...]
    allowed: float
    gate_errors: tuple[tuple[float, ...], ...] = ()

    def describe(self) -> str:
        if self.entry_step is None:
            return f"{self.tensor}: no step's error exceeds the allowance on its own ({self.method})"
        how = "per-step contributions" if self.method != "suffix" else "suffix runs, which assume every step is alike"
        later = "the steps after it agree" if self.entry_step < len(self.errors) - 1 else "it is the last step"
        return f"{self.tensor}: the error enters at step {self.entry_step} ({how}; {later})"

    def as_dict(self) -> dict[str, object]:
        return {
            "tensor": self.tensor,
            "method": self.method,
            "entry_step": self.entry_step,
            "errors": [_finite(e) for e in self.errors],
            "allowed": _finite(self.allowed),
            "gate_errors": [[_finite(e) for e in row] for row in self.gate_errors],
        }


def _finite(value: float) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


@dataclass(frozen=True)
class Report:
    """Everything ``lstm-gradcheck report`` says about one case."""

    case: Case
    implementation: str
    outcome: ImplOutcome
    oracles: tuple[OracleReport, ...]
    tensors: tuple[TensorSummary, ...]
    steps: tuple[StepLocalization, ...] = ()
    notes: tuple[str, ...] = ()
    timings: Mapping[str, float] = field(default_factory=dict)

    @property
    def loss_mismatch(self) -> bool:
        return any(o.check is not None and o.check.loss is not None and o.check.loss.status != OK for o in self.oracles)

    @property
    def verdict(self) -> str:
        """ "pass" if every provided gradient and the loss agree with every oracle that ran."""
        if self.outcome.status != OK:
            return "fail"
        if self.loss_mismatch or any(t.status == "mismatch" for t in self.tensors):
            return "fail"
        if any(o.verdict == "fail" for o in self.oracles):
            return "fail"
        return "pass"

    @property
    def exit_status(self) -> int:
        if self.outcome.status == UNSUPPORTED:
            return 2
        return 0 if self.verdict == "pass" else 1

    def sorted_tensors(self) -> list[TensorSummary]:
        """Worst first: mismatches by severity, then ok by error, then not provided."""

        def key(t: TensorSummary) -> tuple[int, float]:
            rank = {"mismatch": 0, "ok": 1, "not provided": 2}[t.status]
            return rank, -(t.record.severity if t.record is not None else 0.0)

        return sorted(self.tensors, key=key)

    def as_json(self) -> dict[str, object]:
        out: dict[str, object] = {
            "verdict": self.verdict,
            "implementation": self.implementation,
            "case": case_json(self.case),
            "implementation_status": self.outcome.status,
        }
        if self.outcome.error is not None:
            out["error"] = self.outcome.error
        out["loss"] = self._loss_json()
        out["gradients"] = [t.as_dict() for t in self.sorted_tensors()]
        out["oracles"] = [o.as_dict() for o in self.oracles]
        out["timings"] = dict(self.timings)
        speed = self._speed()
        if speed:
            out["speed"] = speed

        out["steps"] = [s.as_dict() for s in self.steps]
        if self.notes:
            out["notes"] = list(self.notes)
        return out

    def _speed(self) -> dict[str, object]:
        """The implementation's seconds against torch.nn.LSTM's bare forward+backward (float64)."""
        nn = next((o for o in self.oracles if o.name == "torch-nn" and o.verdict != "skipped"), None)
        torch_seconds = None if nn is None else nn.details.get("forward_backward_seconds")
        if not torch_seconds or self.outcome.status != OK:
            return {}
        return {
            "implementation_seconds": self.outcome.seconds,
            "torch_nn_forward_backward_seconds": torch_seconds,
            "ratio_to_torch_nn": self.outcome.seconds / torch_seconds,
            "torch_nn_dtype": "float64",
            "note": "single runs: the benchmark (python -m lstm_gradcheck.benchmark reference) gives medians",
        }

    def _loss_json(self) -> dict[str, object]:

        out: dict[str, object] = {"implementation": self.outcome.loss}
        for o in self.oracles:
            if o.check is not None and o.check.loss is not None:
                out[o.name] = o.check.loss.as_dict()
        return out


def case_json(case: Case) -> dict[str, object]:
    """The config fields, the lengths, and how the arrays were built (seed, weight_scale)."""
    out: dict[str, object] = dict(case.config.as_dict())
    out["lengths"] = None if case.lengths is None else [int(v) for v in case.lengths]
    out["seed"] = case.seed
    out["weight_scale"] = case.weight_scale
    return out


def _summaries(case: Case, outcome: ImplOutcome, reports: Sequence[OracleReport]) -> tuple[TensorSummary, ...]:
    ranked = sorted(
        (r for r in reports if r.check is not None),
        key=lambda r: ORACLE_PRECEDENCE.index(r.name) if r.name in ORACLE_PRECEDENCE else len(ORACLE_PRECEDENCE),
    )
    out = []
    for name in gradient_names(case.config.num_layers):
        records = [(r.name, t) for r in ranked for t in r.check.tensors if t.name == name]
        if not records:
            continue
        if name not in outcome.grads:
            out.append(TensorSummary(name, "not provided", None))
            continue
        flagged = [(o, t) for o, t in records if t.status == "mismatch"]
        if flagged:
            out.append(TensorSummary(name, "mismatch", flagged[0][1], tuple(o for o, _ in flagged)))
        else:
            out.append(TensorSummary(name, "ok", records[0][1]))
    return tuple(out)


def build_report(
    case: Case,
    impl: Implementation,
    oracles: Sequence[str] | None = None,
    *,
    localize: bool = True,
) -> Report:
    """Check ``impl`` on ``case`` against ``oracles`` (default: every one that fits).

    The implementation runs first; if it fails (raises, or returns something
    the contract does not allow) the report says so and no oracle runs. If it
    raises NotImplementedError the report's exit status is 2.
    """
    reason = unjudgeable(case)
    if reason is not None:
        raise CaseError(f"{reason}; choose smaller weights, a shorter sequence or the tanh cell")
    requested = bool(oracles)
    names = tuple(oracles) if oracles else default_oracles(case.config)
    unknown = [n for n in names if n not in oracle_names()]
    if unknown:
        raise ValueError(f"unknown oracle(s) {unknown}; choose from {', '.join(oracle_names())}")
    outcome = call_implementation(impl, case)
    timings: dict[str, float] = {"implementation": outcome.seconds}
    notes: list[str] = []
    if outcome.printed:
        notes.append("the implementation printed to standard output; its output was sent to standard error")
    if outcome.status in (FAILED, UNSUPPORTED):
        return Report(case, impl.name, outcome, (), (), notes=tuple(notes), timings=timings)
    start = time.perf_counter()
    conditioning = conditioning_allowance(case)
    timings["conditioning"] = time.perf_counter() - start
    reports = []
    for name in names:
        report = run_oracle(name, case, outcome.loss, outcome.grads, conditioning, requested=requested)

        reports.append(report)
        timings[name] = report.seconds
    tensors = _summaries(case, outcome, reports)
    ill = [t.name for t in tensors if t.record is not None and t.record.ill_conditioned]
    if ill:
        notes.append(
            f"ill-conditioned in {case.config.dtype}: {', '.join(ill)} (eps-level input changes move the exact "
            "gradient by more than 0.1% of its scale), so they are not judged"
        )
    steps: tuple[StepLocalization, ...] = ()
    if localize and any(t.status == "mismatch" for t in tensors):
        from lstm_gradcheck.localize import localize_steps  # noqa: PLC0415

        start = time.perf_counter()
        steps = localize_steps(case, impl, tensors)
        timings["localization"] = time.perf_counter() - start
    return Report(case, impl.name, outcome, tuple(reports), tensors, steps, tuple(notes), timings)
