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

import itertools
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from hypothesis import HealthCheck, Phase, Verbosity, example, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis.errors import Flaky, Unsatisfiable

from lstm_gradcheck.implementation import FAILED, OK, UNSUPPORTED, Implementation, call_implementation
from lstm_gradcheck.oracles.compare import CheckResult, conditioning_allowance
from lstm_gradcheck.oracles.registry import run_oracle
from lstm_gradcheck.properties.strategies import DEFAULT_SPACE, CaseSpace, cases
from lstm_gradcheck.reference.case import Case, make_case
from lstm_gradcheck.reference.config import LSTMConfig

__all__ = [
    "SearchProgress",
    "SearchResult",
    "search",
    "supported_space",
    "report_command",
    "case_size",
    "DEFAULT_MAX_EXAMPLES",
]

DEFAULT_MAX_EXAMPLES = 200


class _Found(Exception):
    """A case where the implementation is wrong (raised inside the Hypothesis test)."""

    def __init__(self, case: Case, why: str) -> None:
        super().__init__(why)
        self.case = case


@dataclass
class SearchProgress:
    """Counters a search updates as it runs (read by the progress display)."""

    examples: int = 0
    unsupported: int = 0
    failing: int = 0
    started: float = field(default_factory=time.perf_counter)
    smallest: Case | None = None
    smallest_why: str | None = None

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def line(self) -> str:
        text = f"search: {self.examples} examples tried, {self.unsupported} unsupported"
        if self.failing:
            text += f", {self.failing} failing (shrinking)"
        return text + f", {self.elapsed:.1f} s"


@dataclass(frozen=True)
class SearchResult:
    """What a search found: ``case`` is the shrunk failing case (None if none)."""

    found: bool
    examples: int
    unsupported: int
    seconds: float
    seed: int
    case: Case | None = None
    why: str | None = None
    interrupted: bool = False
    space_notes: tuple[str, ...] = ()


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


def _judge(impl: Implementation, case: Case, oracles: Sequence[str]) -> str | None:
    """Why ``impl`` is wrong on ``case`` (None if right or unsupported)."""
    outcome = call_implementation(impl, case)
    if outcome.status == UNSUPPORTED:
        return UNSUPPORTED
    if outcome.status == FAILED:
        return f"the implementation failed: {outcome.error}"
    assert outcome.status == OK
    conditioning = conditioning_allowance(case)
    for name in oracles:
        report = run_oracle(name, case, outcome.loss, outcome.grads, conditioning)
        check: CheckResult | None = report.check
        if report.verdict == "fail":
            return check.describe() if check is not None else f"oracle {name} failed"
    return None


_PROBE_SIZES = {"input_size": 2, "hidden_size": 2, "output_size": 2, "seq_len": 2, "batch_size": 2, "num_layers": 1}
_CHOICE_FIELDS = {
    "loss": "losses",
    "loss_at": "loss_at",
    "reduction": "reductions",
    "cell_output": "cell_outputs",
    "dtype": "dtypes",
    "final_state": "final_state",
}


def _supports(impl: Implementation, config: LSTMConfig, lengths=None) -> bool:
    return call_implementation(impl, make_case(config, seed=0, lengths=lengths)).status != UNSUPPORTED


def supported_space(impl: Implementation, space: CaseSpace = DEFAULT_SPACE) -> tuple[CaseSpace, tuple[str, ...]]:
    """Narrow ``space`` to the settings ``impl`` supports, probing it on tiny cases.

    Finds one supported combination of the categorical settings, then varies
    one setting at a time from it (and tries 2-3 layers, lengths and a nonzero
    forget_bias). An implementation may still refuse some combinations; the
    search skips and counts those. Returns the space and what was narrowed.
    """
    choices = {name: getattr(space, attr) for name, attr in _CHOICE_FIELDS.items()}
    base = None
    for combo in itertools.product(*choices.values()):
        config = LSTMConfig(**_PROBE_SIZES, **dict(zip(choices, combo, strict=True)), forget_bias=0.0)
        if _supports(impl, config):
            base = config
            break
    if base is None:
        return space, ("the implementation raised NotImplementedError on every probe",)
    narrowed: dict[str, object] = {}
    notes = []
    for name, values in choices.items():
        ok = tuple(v for v in values if v == getattr(base, name) or _supports(impl, base.replace(**{name: v})))
        if ok != values:
            narrowed[_CHOICE_FIELDS[name]] = ok
            notes.append(f"{name}: only {', '.join(map(str, ok))}")
    layers = 1
    while layers < space.max_layers and _supports(impl, base.replace(num_layers=layers + 1)):
        layers += 1
    if layers < space.max_layers:
        narrowed["max_layers"] = layers
        notes.append(f"num_layers: up to {layers}")
    if space.with_lengths and not _supports(impl, base, lengths=[2, 1]):
        narrowed["with_lengths"] = False
        notes.append("lengths: not supported")
    if not _supports(impl, base.replace(forget_bias=1.0)):
        narrowed.update(forget_bias_special=(), forget_bias_range=0.0)
        notes.append("forget_bias: only 0")
    return space.restrict(**narrowed), tuple(notes)


def search(
    impl: Implementation,
    *,
    max_examples: int = DEFAULT_MAX_EXAMPLES,
    seed: int = 0,
    oracles: Sequence[str] = ("torch",),
    space: CaseSpace = DEFAULT_SPACE,
    progress: SearchProgress | None = None,
    on_progress: Callable[[SearchProgress], None] | None = None,
    probe: bool = True,
    examples: Sequence[Case] = (),
) -> SearchResult:
    """Search for a case where ``impl`` disagrees with ``oracles``; shrink it.

    With ``probe`` the space is first narrowed to what ``impl`` supports
    (:func:`supported_space`). ``examples`` are tried first, as Hypothesis's
    ``@example``: known minimal failing cases replayed without search luck
    (a failing explicit example is reported as it is, not shrunk).

    Deterministic: the same implementation, ``seed`` and budget give the same
    result in the same process setting. Hypothesis also draws, one time in
    twenty, constants it reads from the project modules loaded in the process,
    so a search inside a test session with more modules imported can try other
    cases. ``progress`` (updated in place) lets a caller show counters and, on
    KeyboardInterrupt, the smallest failing case seen so far.
    """
    notes: tuple[str, ...] = ()
    if probe:
        space, notes = supported_space(impl, space)
    progress = progress if progress is not None else SearchProgress()
    state: dict[str, object] = {"last": None, "why": None}

    def check_one(case: Case) -> None:
        progress.examples += 1
        why = _judge(impl, case, oracles)
        if why == UNSUPPORTED:
            progress.unsupported += 1
            why = None
        if on_progress is not None:
            on_progress(progress)
        if why is None:
            return
        progress.failing += 1
        state["last"], state["why"] = case, why
        if progress.smallest is None or case_size(case) < case_size(progress.smallest):
            progress.smallest, progress.smallest_why = case, why
        raise _Found(case, why)

    test = given(cases(space))(check_one)
    for case in reversed(examples):  # decorators apply bottom-up; keep the given order
        test = example(case)(test)
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
    try:
        run()
    except _Found as found:
        last = state["last"] if state["last"] is not None else found.case
        return SearchResult(
            True,
            progress.examples,
            progress.unsupported,
            time.perf_counter() - start,
            seed,
            last,
            str(state["why"]),
            space_notes=notes,
        )
    except Flaky:
        # The implementation failed on a case and then passed on the same case: it is
        # nondeterministic. Still a finding; report the case it failed on.
        case = state["last"] or progress.smallest
        why = f"nondeterministic: it failed and then passed on the same case; first failure: {state['why']}"
        seconds = time.perf_counter() - start
        return SearchResult(True, progress.examples, progress.unsupported, seconds, seed, case, why, space_notes=notes)
    except Unsatisfiable:
        pass
    seconds = time.perf_counter() - start
    return SearchResult(False, progress.examples, progress.unsupported, seconds, seed, space_notes=notes)


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
    if not stream.isatty():
        return lambda progress: None
    last = [0.0]

    def show(progress: SearchProgress) -> None:
        now = time.perf_counter()
        if now - last[0] >= every:
            last[0] = now
            stream.write("\r" + progress.line() + " " * 8)
            stream.flush()

    return show
