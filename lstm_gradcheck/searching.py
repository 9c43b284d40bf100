"""``lstm-gradcheck search``: a Hypothesis search for a case where an implementation is wrong.

Cases come from the same strategies as the property suite
(:mod:`lstm_gradcheck.properties.strategies`). An example where the implementation raises
``NotImplementedError`` counts as tried and unsupported (and, being a pass to
Hypothesis, the shrinker never walks into it); a crash or a malformed return
is a failure like a gradient mismatch. A failure shrinks to a minimal case
(fewest layers, shortest sequence, smallest sizes, forget_bias 0, no
lengths, sum reduction, float64 wherever those do not matter), which is then
reported in full and printed as a ready-to-run ``lstm-gradcheck report``
command line.
"""

from __future__ import annotations

import shlex
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from hypothesis import HealthCheck, Phase, Verbosity, example, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis.errors import Flaky, Unsatisfiable

from lstm_gradcheck import streams
from lstm_gradcheck.coverage import Require, TensorCoverage
from lstm_gradcheck.implementation import FAILED, OK, UNSUPPORTED, WORKER, Implementation, call_implementation
from lstm_gradcheck.isolation import DEFAULT_TIMEOUT, as_implementation
from lstm_gradcheck.oracles.judging import exact_answer
from lstm_gradcheck.oracles.records import CheckResult
from lstm_gradcheck.oracles.registry import run_oracle
from lstm_gradcheck.probing import supported_space
from lstm_gradcheck.properties.strategies import DEFAULT_SPACE, THOROUGH_SPACE, CaseSpace, Judged, judged_cases
from lstm_gradcheck.reference.case import Case
from lstm_gradcheck.reference.config import BFLOAT16, NUMPY_DTYPES
from lstm_gradcheck.reference.layout import model_gradient_names
from lstm_gradcheck.reference.verdicts import FAIL, NOTHING_CHECKED, PASS
from lstm_gradcheck.reference.verdicts import OK as OK_TENSOR

__all__ = [
    "SearchProgress",
    "SearchResult",
    "search",
    "report_command",
    "case_size",
    "DEFAULT_MAX_EXAMPLES",
    "Profile",
    "PROFILES",
    "DEFAULT_PROFILE",
    "FEW_JUDGED",
]

DEFAULT_MAX_EXAMPLES = 200


@dataclass(frozen=True)
class Profile:
    """A search's space and number of examples, by name (``--profile``)."""

    space: CaseSpace
    max_examples: int


#: The search profiles: ``ci`` is the default; ``thorough`` draws longer sequences, larger
#: sizes and saturated gates, as the property suite's profile of that name does.
PROFILES = {
    "dev": Profile(DEFAULT_SPACE, 50),
    "ci": Profile(DEFAULT_SPACE, DEFAULT_MAX_EXAMPLES),
    "thorough": Profile(THOROUGH_SPACE, 2500),
}
DEFAULT_PROFILE = "ci"
#: Below this share of judged examples a passing search says loudly on how little it rests.
FEW_JUDGED = 0.1
JUDGED, NOT_JUDGED = "judged", "not judged"


class _Found(Exception):
    """A case where the implementation is wrong (raised inside the Hypothesis test)."""

    def __init__(self, case: Case, why: str) -> None:
        super().__init__(why)
        self.case = case


class _StopShrinking(BaseException):
    """Too many hung calls while shrinking: the smallest failing case so far stands
    (a BaseException, so Hypothesis lets it through rather than shrink it)."""


#: Hung calls a search waits out after the first before it stops shrinking a hang.
MAX_TIMEOUTS = 3


@dataclass
class SearchProgress:
    """Counters a search updates as it runs (read by the progress display)."""

    examples: int = 0
    unsupported: int = 0
    judged: int = 0
    failing: int = 0
    started: float = field(default_factory=time.perf_counter)
    smallest: Case | None = None
    smallest_why: str | None = None
    coverage: TensorCoverage = field(default_factory=TensorCoverage)
    timeouts: int = 0

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def line(self) -> str:
        text = f"search: {self.examples} examples tried, {self.judged} judged, {self.unsupported} unsupported"
        if self.failing:
            text += f", {self.failing} failing (shrinking)"
        return text + f", {self.elapsed:.1f} s"


@dataclass(frozen=True)
class SearchResult:
    """What a search found: ``case`` is the shrunk failing case (None if none).

    ``judged`` counts the examples on which some provided gradient was judged by
    an oracle (or the implementation was found wrong); ``coverage`` counts it per tensor,
    and a pass needs ``require`` met (:mod:`lstm_gradcheck.coverage`); ``refusals`` holds
    the implementation's own words when it refused (NotImplementedError messages);
    ``bounds`` the sizes drawn and ``isolation`` where the implementation ran.
    """

    found: bool
    examples: int
    unsupported: int
    seconds: float
    seed: int
    case: Case | None = None
    why: str | None = None
    interrupted: bool = False
    space_notes: tuple[str, ...] = ()
    judged: int = 0
    refusals: tuple[str, ...] = ()
    coverage: TensorCoverage = field(default_factory=TensorCoverage)
    require: Require = field(default_factory=Require)
    bounds: str = ""
    isolation: str = WORKER
    shrunk: bool = True
    timeouts: int = 0

    @property
    def verdict(self) -> str:
        """ "fail" (found), "nothing checked" (no example was judged, or a required tensor never
        was) or "pass"."""
        if self.found:
            return FAIL
        return NOTHING_CHECKED if self.judged == 0 or self.coverage.unmet(self.require) else PASS

    @property
    def few_judged(self) -> bool:
        """A pass that rests on fewer than FEW_JUDGED of the examples."""
        return self.verdict == PASS and self.judged < FEW_JUDGED * self.examples

    def nothing_checked_message(self) -> str:
        """Why nothing was judged and what would be needed (for a "nothing checked" verdict)."""
        if self.judged and self.coverage.unmet(self.require):
            return (
                self.coverage.unmet_text(self.require)
                + "; return those gradients, or say with --require which tensors a pass needs"
            )
        if self.unsupported == self.examples:
            text = f"the implementation refused all {self.examples} examples (NotImplementedError)"
        else:
            text = (
                f"of {self.examples} examples, {self.unsupported} were refused and on the rest the implementation "
                "gave no gradient an oracle could judge"
            )
        if self.refusals:
            text += "; it said: " + " | ".join(self.refusals)
        return text + (
            ". Cases are drawn with h0 and c0 random or zero (--h0/--c0), every loss of the contract and "
            "'upstream' (no head), batch and length from 1, one to three layers: make it support at least one "
            "such case, and return at least one gradient"
        )


def case_size(case: Case) -> tuple:
    """Order of "smaller" used to keep the smallest failure seen (for interrupts)."""
    c = case.config
    return (
        c.num_layers,
        c.seq_len,
        c.hidden_size + c.input_size + c.output_size + c.batch_size,
        case.lengths is not None,
        c.forget_bias != 0,
        c.reduction != "sum",
        c.dtype != "float64",
    )


@dataclass(frozen=True)
class _Judgement:
    """One example's verdict: ``why`` the implementation is wrong (None if it is not), and
    ``status``: "unsupported", "judged" (some provided gradient was judged by some oracle, or it
    is wrong) or "not judged" (it gave no gradient, or no oracle could judge what it gave);
    ``judged`` names the tensors an oracle judged, ``provided`` those it returned."""

    status: str
    why: str | None = None
    provided: frozenset[str] = frozenset()
    judged: frozenset[str] = frozenset()
    timed_out: bool = False


def _judge(impl: Implementation, drawn: Judged, oracles: Sequence[str]) -> _Judgement:
    outcome = call_implementation(impl, drawn.case)
    if outcome.status == UNSUPPORTED:
        return _Judgement(UNSUPPORTED, outcome.error)
    if outcome.status == FAILED:
        return _Judgement(JUDGED, f"the implementation failed: {outcome.error}", timed_out=outcome.timed_out)
    assert outcome.status == OK
    context = drawn.context()
    if impl.native is not None:
        context = context.with_same_precision(impl.device)  # Note [Same-precision rule]
    provided = frozenset(outcome.grads)
    judged: set[str] = set()
    for name in oracles:
        report = run_oracle(name, context, outcome.loss, outcome.grads)
        check: CheckResult | None = report.check
        if report.verdict == FAIL:
            why = check.describe() if check is not None else f"oracle {name} failed"
            return _Judgement(JUDGED, why, provided, frozenset(judged))
        if check is not None:
            judged |= {t.name for t in check.tensors if t.status == OK_TENSOR and not t.ill_conditioned}
    return _Judgement(JUDGED if judged else NOT_JUDGED, None, provided, frozenset(judged))


def search(
    impl: Implementation | Callable | str,
    *,
    max_examples: int = DEFAULT_MAX_EXAMPLES,
    seed: int = 0,
    oracles: Sequence[str] = ("torch",),
    space: CaseSpace = DEFAULT_SPACE,
    progress: SearchProgress | None = None,
    on_progress: Callable[[SearchProgress], None] | None = None,
    probe: bool = True,
    examples: Sequence[Case] = (),
    in_process: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
    require: Require | None = None,
) -> SearchResult:
    """Search for a case where ``impl`` disagrees with ``oracles``; shrink it.

    ``impl`` is a ``grads(case)`` function, an ``--impl`` spec string
    (``"pkg.module:grads"``, ``"path/to/file.py:grads"``) or an
    :class:`~lstm_gradcheck.implementation.Implementation`. With ``probe`` the
    space is first narrowed to what ``impl`` supports
    (:func:`lstm_gradcheck.probing.supported_space`). ``examples`` are tried
    first, as Hypothesis's ``@example``: known minimal failing cases replayed
    without search luck (a failing explicit example is reported as it is, not
    shrunk). The result's ``verdict`` is "fail", "pass" or, when no example
    was judged, "nothing checked".

    Deterministic: the same implementation, ``seed`` and budget give the same
    result in the same process setting. Hypothesis also draws, one time in
    twenty, constants it reads from the project modules loaded in the process,
    so a search inside a test session with more modules imported can try other
    cases. ``progress`` (updated in place) lets a caller show counters and, on
    KeyboardInterrupt, the smallest failing case seen so far. ``in_process`` runs ``impl`` in
    this process (not isolated); ``timeout`` bounds each call; ``require`` says which
    tensors a pass needs judged (default: every one it provided).
    """
    impl = as_implementation(impl, in_process=in_process, timeout=timeout)
    notes: tuple[str, ...] = ()
    refusals: list[str] = []
    if impl.native is not None and space.dtype == NUMPY_DTYPES:
        space = space.restrict(dtype=(*space.dtype, BFLOAT16))  # torch-native code runs in bfloat16 too
    spaces: tuple[CaseSpace, ...] = (space,)
    if probe:
        support = supported_space(impl, space)
        spaces, notes, refusals = support.spaces, support.notes, list(support.refusals)
    progress = progress if progress is not None else SearchProgress()
    state: dict[str, object] = {"last": None, "why": None}

    def check_one(drawn: Judged) -> None:
        case = drawn.case
        progress.examples += 1
        judgement = _judge(impl, drawn, oracles)
        if judgement.status == UNSUPPORTED:
            progress.unsupported += 1
            if judgement.why and judgement.why not in refusals and len(refusals) < 3:
                refusals.append(judgement.why)
        else:
            if judgement.status == JUDGED:
                progress.judged += 1
            if judgement.provided or judgement.why is None:
                progress.coverage.add(model_gradient_names(case.config), judgement.provided, judgement.judged)
        if judgement.timed_out:
            progress.timeouts += 1
            if progress.timeouts > MAX_TIMEOUTS and progress.smallest is not None:
                raise _StopShrinking
        if on_progress is not None:
            on_progress(progress)
        if judgement.status == UNSUPPORTED or judgement.why is None:
            return
        why = judgement.why
        progress.failing += 1
        state["last"], state["why"] = case, why
        if progress.smallest is None or case_size(case) < case_size(progress.smallest):
            progress.smallest, progress.smallest_why = case, why
        raise _Found(case, why)

    test = given(judged_cases(spaces))(check_one)
    for case in reversed(examples):  # decorators apply bottom-up; keep the given order
        test = example(Judged(case, exact_answer(case)))(test)
    run = settings(
        max_examples=max_examples,
        database=None,  # a search must not write a .hypothesis/ folder into the user's project
        deadline=None,
        derandomize=False,
        report_multiple_bugs=False,
        print_blob=False,
        verbosity=Verbosity.quiet,
        phases=(Phase.explicit, Phase.generate, Phase.target, Phase.shrink),
        suppress_health_check=list(HealthCheck),
    )(hypothesis_seed(seed)(test))
    start = time.perf_counter()

    def result(found: bool, case: Case | None = None, why: str | None = None, shrunk: bool = True) -> SearchResult:
        return SearchResult(
            found, progress.examples, progress.unsupported, time.perf_counter() - start, seed, case, why,
            space_notes=notes, judged=progress.judged, refusals=tuple(refusals), coverage=progress.coverage,
            require=require or Require(), bounds=space.bounds(), isolation=impl.isolation, shrunk=shrunk,
            timeouts=progress.timeouts,
        )  # fmt: skip

    try:
        run()
    except _StopShrinking:
        why = f"{progress.smallest_why} (shrinking stopped after {progress.timeouts} calls hung)"
        return result(True, progress.smallest, why, shrunk=False)
    except _Found as found:
        return result(True, state["last"] if state["last"] is not None else found.case, str(state["why"]))
    except Flaky:
        # The implementation failed on a case and then passed on the same case: it is
        # nondeterministic. Still a finding; report the case it failed on.
        why = f"nondeterministic: it failed and then passed on the same case; first failure: {state['why']}"
        return result(True, state["last"] or progress.smallest, why)
    except Unsatisfiable:
        pass
    return result(False)


def report_command(case: Case, impl_spec: str | None) -> str:
    """The ``lstm-gradcheck report ...`` command line that rebuilds ``case`` exactly."""
    cfg = case.config
    argv = ["lstm-gradcheck", "report"]
    if impl_spec:
        argv += ["--impl", impl_spec]
    for name, value in cfg.as_dict().items():
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            argv += [flag, str(value).lower()]
        elif isinstance(value, float):
            argv += [flag, repr(value)]
        else:
            argv += [flag, str(value)]
    if case.lengths is not None:
        argv += ["--lengths", ",".join(str(int(v)) for v in case.lengths)]
    argv += ["--seed", str(case.seed if case.seed is not None else 0)]
    if case.weight_scale not in (None, 1.0):
        argv += ["--weight-scale", repr(case.weight_scale)]
    return " ".join(shlex.quote(a) for a in argv)


def terminal_progress(stream=sys.stderr, every: float = 0.25) -> Callable[[SearchProgress], None]:
    """A progress callback: one updating line on a terminal, nothing when piped."""
    if not streams.is_terminal(stream):
        return lambda progress: None
    last = [0.0]

    def show(progress: SearchProgress) -> None:
        now = time.perf_counter()
        if now - last[0] >= every:
            last[0] = now
            streams.write(stream, "\r" + progress.line() + " " * 8)

    return show
