"""One case, one implementation, every oracle that fits: the gradient-mismatch report.

:func:`build_report` runs the implementation and the oracles and returns a
:class:`Report`; :meth:`Report.as_json` is the contract's JSON; the text and
rich renderings live in :mod:`lstm_gradcheck.render`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from lstm_gradcheck.budget import DEFAULT_BUDGET, FIXED, RUN_ORDER, Budget, localization_work
from lstm_gradcheck.coverage import Require, TensorCoverage
from lstm_gradcheck.diagnosis import Diagnosis, diagnose
from lstm_gradcheck.implementation import (
    FAILED,
    HARNESS,
    OK,
    UNSUPPORTED,
    Implementation,
    ImplOutcome,
    call_implementation,
)
from lstm_gradcheck.isolation import isolation_note
from lstm_gradcheck.localize import MAX_SUFFIX_STEPS, localize_steps
from lstm_gradcheck.oracles import cost
from lstm_gradcheck.oracles.judging import JudgingContext, judging_context
from lstm_gradcheck.oracles.registry import by_precedence, fitting_oracles, oracle_names, run_oracle, start_torch
from lstm_gradcheck.oracles.types import OracleReport
from lstm_gradcheck.progress import Progress
from lstm_gradcheck.reference.case import Case
from lstm_gradcheck.reference.config import BFLOAT16, CaseError
from lstm_gradcheck.reference.layout import model_gradient_names
from lstm_gradcheck.reference.verdicts import FAIL, MISMATCH, NOT_PROVIDED, NOTHING_CHECKED, PASS, SKIPPED
from lstm_gradcheck.reference.verdicts import OK as TENSOR_OK
from lstm_gradcheck.summaries import StepLocalization, TensorSummary

__all__ = ["Report", "build_report", "case_json", "PASS", "FAIL", "NOTHING_CHECKED", "EXIT"]

#: A report's verdicts' exit statuses (CONTRACT.md).
EXIT = {PASS: 0, FAIL: 1, NOTHING_CHECKED: 2}


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
    isolation: str = HARNESS
    require: Require = field(default_factory=Require)

    @property
    def coverage(self) -> TensorCoverage:
        """This one case's tensors: present, provided, judged (:mod:`lstm_gradcheck.coverage`)."""
        coverage = TensorCoverage()
        if self.outcome.status == OK:
            judged = [t.name for t in self.tensors if t.status == TENSOR_OK and not t.record.ill_conditioned]
            coverage.add(model_gradient_names(self.case.config), self.outcome.grads, judged)
        return coverage

    #: What kind of error a failing report shows (None unless it fails; :mod:`lstm_gradcheck.diagnosis`).
    diagnosis: Diagnosis | None = None
    budget: Mapping[str, object] = field(default_factory=dict)

    @property
    def loss_mismatch(self) -> bool:
        return any(o.check is not None and o.check.loss is not None and o.check.loss.status != OK for o in self.oracles)

    @property
    def verdict(self) -> str:
        """ "pass" if some provided gradient was judged and everything judged agrees with every
        oracle that ran; "fail" if anything disagrees or the implementation failed; "nothing
        checked" if nothing could be judged (see :attr:`nothing_checked_reason`)."""
        if self.outcome.status == FAILED:
            return FAIL
        if self.outcome.status == UNSUPPORTED:
            return NOTHING_CHECKED
        if self.loss_mismatch or any(t.status == MISMATCH for t in self.tensors):
            return FAIL
        if any(o.verdict == FAIL for o in self.oracles):
            return FAIL
        return PASS if self.judged and not self.coverage.unmet(self.require) else NOTHING_CHECKED

    @property
    def judged(self) -> bool:
        """Some provided gradient was judged (agreed, by an oracle, and not ill-conditioned)."""
        return any(t.status == TENSOR_OK and not t.record.ill_conditioned for t in self.tensors)

    @property
    def nothing_checked_reason(self) -> str | None:
        """Why nothing was judged, and what would be needed (None unless the verdict says so)."""
        if self.verdict != NOTHING_CHECKED:
            return None
        if self.outcome.status == UNSUPPORTED:
            return (
                f"the implementation does not support this case ({self.outcome.error}); choose a case it supports "
                "(for example --h0 zero --c0 zero for code with zero initial states, --loss upstream for code "
                "without a head, --batch-size 1, --seq-len 1, --num-layers 1, --no-final-state)"
            )
        if self.judged:
            return self.coverage.unmet_text(self.require) + "; return those gradients, or narrow --require"
        if not self.outcome.grads:
            return (
                "the implementation returned no gradient (an empty dict), so nothing could be judged; return "
                f"at least one of {', '.join(model_gradient_names(self.case.config))}"
            )
        ran = [o for o in self.oracles if o.verdict != SKIPPED]
        if not ran:
            reasons = "; ".join(f"{o.name}: {o.reason}" for o in self.oracles)
            return f"no oracle could judge this case ({reasons}); choose other oracles with --oracle"
        return (
            f"every provided gradient is ill-conditioned in {self.case.config.dtype} (eps-level input changes move "
            "it by more than 0.1% of its scale), so none could be judged; try float64"
        )

    @property
    def exit_status(self) -> int:
        return EXIT[self.verdict]

    def sorted_tensors(self) -> list[TensorSummary]:
        """Worst first: mismatches by severity, then ok by error, then not provided."""

        def key(t: TensorSummary) -> tuple[int, float]:
            rank = {MISMATCH: 0, TENSOR_OK: 1, NOT_PROVIDED: 2}[t.status]
            return rank, -(t.record.severity if t.record is not None else 0.0)

        return sorted(self.tensors, key=key)

    def as_json(self) -> dict[str, object]:
        out: dict[str, object] = {
            "verdict": self.verdict,
            "implementation": self.implementation,
            "case": case_json(self.case),
            "implementation_status": self.outcome.status,
            "isolation": self.isolation,
            "diagnosis": None if self.diagnosis is None else self.diagnosis.as_dict(),
        }
        if self.outcome.error is not None:
            out["error"] = self.outcome.error
        if self.outcome.output:
            out["implementation_output"] = self.outcome.output
        out["require"] = self.require.describe()
        if self.nothing_checked_reason is not None:
            out["why"] = self.nothing_checked_reason
        out["loss"] = self._loss_json()
        out["gradients"] = [t.as_dict() for t in self.sorted_tensors()]
        out["oracles"] = [o.as_dict() for o in self.oracles]
        out["timings"] = dict(self.timings)
        if self.budget:
            out["budget"] = dict(self.budget)
        speed = self._speed()
        if speed:
            out["speed"] = speed

        out["steps"] = [s.as_dict() for s in self.steps]
        if self.notes:
            out["notes"] = list(self.notes)
        return out

    def _speed(self) -> dict[str, object]:
        """The implementation's seconds against torch.nn.LSTM's bare forward+backward (float64)."""
        nn = next((o for o in self.oracles if o.name == "torch-nn" and o.verdict != SKIPPED), None)
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
    precedence = by_precedence()
    ranked = sorted((r for r in reports if r.check is not None), key=lambda r: precedence.index(r.name))
    out = []
    for name in model_gradient_names(case.config):
        records = [(r.name, t) for r in ranked for t in r.check.tensors if t.name == name]
        if not records:
            continue
        if name not in outcome.grads:
            out.append(TensorSummary(name, NOT_PROVIDED, None))
            continue
        flagged = [(o, t) for o, t in records if t.status == MISMATCH]
        if flagged:
            out.append(TensorSummary(name, MISMATCH, flagged[0][1], tuple(o for o, _ in flagged)))
        else:
            out.append(TensorSummary(name, TENSOR_OK, records[0][1]))
    return tuple(out)


def _bfloat16_refusal(case: Case, impl: Implementation) -> ImplOutcome | None:
    """bfloat16 is judged against torch's own LSTM in bfloat16: for torch-native code only."""
    if case.config.dtype != BFLOAT16 or impl.native is not None:
        return None
    return ImplOutcome(
        UNSUPPORTED,
        0.0,
        error="bfloat16 cases are for torch-native implementations (a torch module or function; NumPy has no "
        "bfloat16): choose --dtype float32 or float64",
    )


def _unjudgeable_error(context: JudgingContext) -> CaseError:
    return CaseError(f"{context.unjudgeable}; choose smaller weights, a shorter sequence or the tanh cell")


def build_report(
    case: Case,
    impl: Implementation,
    oracles: Sequence[str] | None = None,
    *,
    localize: bool = True,
    context: JudgingContext | None = None,
    require: Require | None = None,
    budget: float | None = None,
    progress: Progress | None = None,
) -> Report:
    """Check ``impl`` on ``case`` against ``oracles`` (default: every one that fits), within
    ``budget`` seconds (default :data:`lstm_gradcheck.budget.DEFAULT_BUDGET`; Note [Report budget]).

    The implementation runs first; if it fails (raises, or returns something
    the contract does not allow) the report says so and no oracle runs. If it
    raises NotImplementedError, or nothing it returns can be judged, the
    verdict is "nothing checked" (exit status 2) and the report says why.
    ``context`` is the case's judging context if the caller has it; the
    harness's own float64 reference provides the exact answer itself, so one
    report runs the float64 reference once (Note [Judging context]). An oracle
    whose estimate does not fit in what is left of the budget is skipped with
    its estimate; ``progress`` shows what runs on a terminal.

    Raises:
        CaseError: the case cannot be judged (its exact answer overflows its dtype).
        ValueError: an oracle name is unknown.
    """
    requested = bool(oracles)  # oracles named by the caller run whatever their estimate
    names = tuple(oracles) if oracles else fitting_oracles(case.config)
    unknown = [n for n in names if n not in oracle_names()]
    if unknown:
        raise ValueError(f"unknown oracle(s) {unknown}; choose from {', '.join(oracle_names())}")
    plan = Budget(DEFAULT_BUDGET if budget is None else budget)
    progress = Progress(enabled=False) if progress is None else progress
    cfg = case.config
    timings: dict[str, float] = {}
    own_answer = impl.exact and cfg.dtype == "float64"
    if context is None and not own_answer:
        with progress.step("the exact answer and conditioning probes"):
            start = time.perf_counter()
            context = judging_context(case)
            timings["judging_context"] = time.perf_counter() - start
        plan.calibrate(timings["judging_context"], cost.reference_work(cfg) + cost.conditioning_work(cfg))
    if context is not None and context.unjudgeable is not None:
        raise _unjudgeable_error(context)
    with progress.step(f"the implementation {impl.name}"):
        outcome = _bfloat16_refusal(case, impl) or call_implementation(impl, case)
    timings["implementation"] = outcome.seconds
    notes: list[str] = []
    if outcome.printed:
        notes.append(
            f"the implementation printed to standard output or error ({len(outcome.output)} characters); it went to "
            "standard error "
            '(and, with --json, to "implementation_output")'
        )
    if isolation_note(impl.isolation):
        notes.append(str(isolation_note(impl.isolation)))
    where = {"isolation": impl.isolation, "require": require or Require()}
    if outcome.status in (FAILED, UNSUPPORTED):
        failed = diagnose(case, outcome, (), (), ()) if outcome.status == FAILED else None
        return Report(
            case, impl.name, outcome, (), (), notes=tuple(notes), timings=timings, diagnosis=failed,
            budget=plan.as_dict(), **where,
        )  # fmt: skip
    if context is None:
        with progress.step("the conditioning probes"):
            start = time.perf_counter()
            context = judging_context(case, exact=(outcome.loss, outcome.grads))
            timings["judging_context"] = time.perf_counter() - start
        plan.calibrate(timings["judging_context"], cost.conditioning_work(cfg))
        if context.unjudgeable is not None:
            raise _unjudgeable_error(context)
    if impl.native is not None:
        context = context.with_same_precision(impl.device)  # Note [Same-precision rule]
    with progress.step("starting torch"):
        timings["torch_startup"] = start_torch(names)
    by_name: dict[str, OracleReport] = {}
    for name in sorted(names, key=lambda n: RUN_ORDER.index(n) if n in RUN_ORDER else len(RUN_ORDER)):
        estimate = plan.estimate(cfg, name, timings.get("torch"))
        reason = None if requested or name in FIXED else plan.over(name, estimate)
        if reason is not None:
            by_name[name] = OracleReport(name, SKIPPED, 0.0, 0, reason=reason)
            continue
        with progress.step(f"oracle {name}", estimate):
            seconds = max(0.0, plan.left())
            by_name[name] = run_oracle(name, context, outcome.loss, outcome.grads, requested=True, seconds=seconds)
        timings[name] = by_name[name].seconds
    reports = tuple(by_name[n] for n in names)
    tensors = _summaries(case, outcome, reports)
    ill = [t.name for t in tensors if t.record is not None and t.record.ill_conditioned]
    if ill:
        notes.append(
            f"ill-conditioned in {cfg.dtype}: {', '.join(ill)} (eps-level input changes move the exact "
            "gradient by more than 0.1% of its scale), so they are not judged"
        )
    steps: tuple[StepLocalization, ...] = ()
    if localize and any(t.status == MISMATCH for t in tensors):
        steps = _localize(case, impl, tensors, plan, outcome.seconds, notes, timings, progress)
    start = time.perf_counter()
    diagnosis = diagnose(case, outcome, reports, tensors, steps, impl, context)
    if diagnosis is not None:
        timings["diagnosis"] = time.perf_counter() - start
    return Report(
        case, impl.name, outcome, reports, tensors, steps, tuple(notes), timings, diagnosis=diagnosis,
        budget=plan.as_dict(), **where,
    )  # fmt: skip


def _localize(case, impl, tensors, plan: Budget, impl_seconds: float, notes, timings, progress):
    """Step localization, when its estimate fits in what is left of the budget (else a note says so)."""
    cfg = case.config
    steps = min(cfg.seq_len, MAX_SUFFIX_STEPS)
    estimate = plan.speed.seconds(localization_work(cfg, impl.has_per_step, MAX_SUFFIX_STEPS))
    if not impl.has_per_step and cfg.seq_len <= MAX_SUFFIX_STEPS:  # each suffix run is the implementation's too
        estimate += impl_seconds * (steps + 1) / 2
    reason = plan.over("step localization", estimate)
    if reason is not None:
        notes.append(f"step localization skipped: {reason}")
        return ()
    with progress.step("step localization", estimate):
        start = time.perf_counter()
        located = localize_steps(case, impl, tensors)
        timings["localization"] = time.perf_counter() - start
    return located
