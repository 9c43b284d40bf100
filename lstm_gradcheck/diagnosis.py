"""One sentence on what kind of error a failing report shows: the forward, the backward, or precision.

:func:`diagnose` reads what the report already measured (the loss against the oracles, each
tensor's record, the directional oracle's per-gate probes, step localization's gate rows) and
runs two cheap tests of its own: the contract's loss under settings an implementation often
gets wrong (forget_bias 0, the other cell output, the other reduction), and whether the
implementation's gradients match central differences of its own loss (Note [Self-consistency]).

Note [Self-consistency]
-----------------------
A loss that disagrees with the oracles means the forward (or the loss head) computes another
model; the gradients then disagree too, even when the backward is exactly right for that
model. Probing the implementation along one random direction per tensor, through its own
loss, separates the two: if every probe agrees, the backward is consistent with the forward
and the fault is the forward's alone. The probes run only for a float64 case whose loss
mismatches; a refused or failed probe leaves the answer unknown, never a guess.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from lstm_gradcheck.implementation import OK, Implementation, ImplOutcome, call_implementation
from lstm_gradcheck.oracles.directional import probe
from lstm_gradcheck.oracles.directions import judging_noise, random_direction
from lstm_gradcheck.oracles.judging import JudgingContext
from lstm_gradcheck.oracles.types import OracleReport
from lstm_gradcheck.reference.case import Case
from lstm_gradcheck.reference.config import CHOICES, ZERO, CaseError
from lstm_gradcheck.reference.head import final_state_loss
from lstm_gradcheck.reference.layout import GATE_NAMES, GATES, STATE_INPUTS, is_lstm_param, parse_name
from lstm_gradcheck.reference.lstm import forward
from lstm_gradcheck.reference.verdicts import FAILED, MISMATCH
from lstm_gradcheck.summaries import PER_STEP, PREFIX, StepLocalization, TensorSummary

__all__ = [
    "Diagnosis",
    "diagnose",
    "FORWARD",
    "BACKWARD",
    "PRECISION",
    "LOSS_VALUE",
    "IMPLEMENTATION_FAILED",
    "OTHER",
    "LOWER_PRECISION",
    "gate_phrase",
]

#: The kinds of error a diagnosis names.
FORWARD, BACKWARD, PRECISION = "forward", "backward", "precision"
LOSS_VALUE, IMPLEMENTATION_FAILED, OTHER = "loss value", "implementation failed", "other"

#: For a case's dtype, the lower precision whose roundoff a precision slip leaves, and its eps. Only
#: float32 inside float64: float16's roundoff (1e-3) is as large as many real slips' errors in float32.
LOWER_PRECISION: Mapping[str, tuple[str, float]] = {"float64": ("float32", 2.0**-23)}
#: A precision slip's relative errors lie below this many eps of the lower precision (float32
#: buffers leave about one eps of each tensor's scale; a sum over long sequences a few) ...
PRECISION_CEILING = 16.0
#: ... and over this share of the mismatching tensors' elements are over (a slip in one element is not one).
PRECISION_SPREAD = 0.25


@dataclass(frozen=True)
class Diagnosis:
    """What kind of error a failing report shows, in one sentence (``text``) and in fields.

    ``kind`` is :data:`FORWARD` (the loss differs from the contract's), :data:`BACKWARD` (the
    loss agrees, gradients do not), :data:`PRECISION` (every error at a lower precision's
    roundoff), :data:`LOSS_VALUE` (only the returned loss differs), :data:`IMPLEMENTATION_FAILED`
    or :data:`OTHER`. ``gates``: the gates (i, f, g, o) carrying a backward error;
    ``entry_step`` / ``first_wrong_prefix`` as step localization measured them;
    ``self_consistent``: whether the gradients match central differences of the
    implementation's own loss (None: not tested or not measurable).
    """

    kind: str
    text: str
    gates: tuple[str, ...] = ()
    gates_from: str | None = None
    entry_step: int | None = None
    first_wrong_prefix: int | None = None
    self_consistent: bool | None = None
    hints: tuple[str, ...] = field(default_factory=tuple)

    def as_dict(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "text": self.text,
            "gates": list(self.gates),
            "gates_from": self.gates_from,
            "entry_step": self.entry_step,
            "first_wrong_prefix": self.first_wrong_prefix,
            "self_consistent": self.self_consistent,
            "hints": list(self.hints),
        }


def gate_phrase(gates: Sequence[str]) -> str:
    """``only the cell gate (g)``, ``the input (i) and cell (g) gates``, ``every gate (i, f, g, o)``."""
    ordered = [g for g in GATES if g in gates]
    if len(ordered) == len(GATES):
        return "every gate (i, f, g, o)"
    named = [f"{GATE_NAMES[g]} ({g})" for g in ordered]
    if len(named) == 1:
        return f"only the {named[0].replace(' (', ' gate (')}"
    return f"the {', '.join(named[:-1])} and {named[-1]} gates"


def _loss_check(oracles: Sequence[OracleReport]):
    """The most precise loss comparison that ran (the first oracle with one), or None."""
    return next((o.check.loss for o in oracles if o.check is not None and o.check.loss is not None), None)


def _rel(value: float, scale: float) -> float:
    return value / scale if scale > 0 else (0.0 if value == 0 else math.inf)


# ----------------------------------------------------------------------------- precision


def _precision(case: Case, mismatching: Sequence[TensorSummary], loss) -> str | None:
    """The precision sentence when every error sits at a lower precision's roundoff, else None."""
    lower = LOWER_PRECISION.get(case.config.dtype)
    if lower is None or len(mismatching) < 2:
        return None
    name, eps = lower
    rels = [t.record.max_rel_err for t in mismatching]
    if loss is not None and loss.status == MISMATCH:
        rels.append(_rel(loss.abs_err, abs(loss.oracle_value)))
    over = sum(t.record.bad for t in mismatching)
    size = sum(t.record.size for t in mismatching)
    if not rels or max(rels) > PRECISION_CEILING * eps or over < PRECISION_SPREAD * size:
        return None
    loss_said = "the loss too" if loss is not None and loss.status == MISMATCH else "the loss agrees"
    return (
        f"precision: every mismatch is at {name} roundoff in a {case.config.dtype} case (relative errors "
        f"{min(rels):.2g}..{max(rels):.2g} of each tensor's scale, {over} of {size} elements over; {name}'s eps is "
        f"{eps:.2g}; {loss_said}): look for a {name} array, buffer or constant inside the {case.config.dtype} code"
    )


# ----------------------------------------------------------------------------- gates and steps


def _entry_column(step: StepLocalization) -> int | None:
    if step.method == PREFIX:
        return None if step.first_wrong_prefix is None else step.first_wrong_prefix - 1
    return step.entry_step


def _gates_from_steps(steps: Sequence[StepLocalization]) -> tuple[set[str], int | None]:
    """Gates over the allowance at the step where the error enters, in the highest layer that shows
    one there (the backward runs top layer first: the layers below inherit its error), and that layer."""
    by_layer: dict[int, set[str]] = {}
    for step in steps:
        column = _entry_column(step)
        if column is None or not step.gate_errors:
            continue
        over = {g for g, row in zip(GATES, step.gate_errors, strict=True) if row[column] > step.allowed}
        if over:
            by_layer.setdefault(parse_name(step.tensor).layer, set()).update(over)
    if not by_layer:
        return set(), None
    top = max(by_layer)
    return by_layer[top], top


def _gates_from_probes(oracles: Sequence[OracleReport]) -> set[str]:
    failing = next((o.details.get("failing_probes", []) for o in oracles if o.name == "directional"), [])
    return {p.split("/", 1)[1] for p in failing if "/" in p}


def _gates(mismatching: Sequence[TensorSummary], steps, oracles) -> tuple[set[str], int | None, str | None]:
    """The gates carrying the error, the layer where it enters (if known) and what says so: step
    localization at the entry step, else the directional oracle's gate-block probes, else the worst elements."""
    found, layer = _gates_from_steps(steps)
    if found:
        return found, layer, "step localization's gate rows at the entry step"
    found = _gates_from_probes(oracles)
    if found:
        return found, None, "the directional oracle's gate-block probes"
    found = {t.record.worst.gate for t in mismatching if is_lstm_param(t.name) and t.record.worst is not None}
    found.discard(None)
    return found, None, ("the worst elements" if found else None)


def _entry(steps: Sequence[StepLocalization], seq_len: int) -> tuple[int | None, int | None, str]:
    """The step where the error enters (the latest any tensor shows), the fewest prefix steps, and a phrase."""
    entries = [s.entry_step for s in steps if s.method != PREFIX and s.entry_step is not None]
    prefixes = [s.first_wrong_prefix for s in steps if s.method == PREFIX and s.first_wrong_prefix is not None]
    if entries:
        entry = max(entries)
        how = "per-step contributions" if any(s.method == PER_STEP for s in steps) else "suffix runs"
        where = f"the last step, step {entry}" if entry == seq_len - 1 else f"step {entry}"
        return entry, None, f"entering at {where} ({how})"
    if prefixes:
        first = min(prefixes)
        return None, first, f"showing first with {first} step(s) (prefix runs)"
    if any(s.unknown is not None for s in steps):
        return None, None, "at a step that could not be measured"
    return None, None, ""


# ----------------------------------------------------------------------------- the forward


def _loss_under(case: Case, **changes: object) -> float | None:
    """The contract's (float64 reference) loss of the case's arrays under other settings, or None."""
    try:
        config = case.config.replace(dtype="float64", **changes)
        return float(forward(case.astype("float64").replace(config=config))[0].loss)
    except (CaseError, ValueError):
        return None


def _forward_hints(case: Case, loss) -> tuple[str, ...]:
    """Settings under which the contract's loss equals the implementation's, and a simple ratio."""
    cfg = case.config
    got, allowed = loss.analytic, loss.allowed
    trials: list[tuple[dict[str, object], str]] = []
    if cfg.forget_bias != 0:
        trials.append(
            ({"forget_bias": 0.0}, f"its loss is the contract's with forget_bias 0: the forget_bias "
             f"({cfg.forget_bias:g}) is not applied (fold it into the bias, Layout(..., fold_forget_bias=True))")
        )  # fmt: skip
    for name in ("cell_output", "reduction"):
        for other in CHOICES[name]:
            if other != getattr(cfg, name):
                trials.append(({name: other}, f"its loss is the contract's with {name} = {other}"))
    hints = [text for changes, text in trials if (alt := _loss_under(case, **changes)) is not None
             and abs(alt - got) <= max(allowed, 1e-12 * abs(alt))]  # fmt: skip
    if not hints:
        hints += _ratio_hint(case, got, loss.oracle_value)
    return tuple(hints)


def _ratio_hint(case: Case, got: float, oracle: float) -> list[str]:
    """``its loss is k times (1/k of) the contract's``, the final-state term (never divided) set apart."""
    result = forward(case.astype("float64"))[0]
    final = final_state_loss(case.astype("float64"), result.h_n, result.c_n)
    mine, theirs = got - final, oracle - final
    if mine == 0 or theirs == 0:
        return []
    ratio = mine / theirs
    what = "the head's loss" if case.config.final_state else "its loss"
    for k in range(2, 1001):
        for value, text in ((float(k), f"{k} times"), (1.0 / k, f"1/{k} of")):
            if abs(ratio - value) <= 1e-9 * value:
                return [f"{what} is {text} the contract's (what does `mean` divide by?)"]
    return []


def _self_consistent(
    case: Case, impl: Implementation, grads: Mapping[str, np.ndarray], context: JudgingContext, loss0: float
) -> bool | None:
    """Whether ``grads`` match central differences of the implementation's own loss (Note [Self-consistency])."""
    if case.config.dtype != "float64":
        return None

    def own_loss(c: Case) -> float:
        outcome = call_implementation(impl, c)
        if outcome.status != OK or outcome.loss is None:
            raise _Unmeasured
        return float(outcome.loss)

    skip = {name for name in ("h0", "c0") if getattr(case.config, name) == ZERO}  # moving them makes them nonzero
    names = [n for n in grads if n not in skip and (n in case.params or n in STATE_INPUTS)]
    tolerance = context.tolerance(grads)
    noise = judging_noise(context, loss0, grads)
    exact = context.exact_case
    try:
        for name in names:
            v = random_direction(exact, "self-consistency", name, (name,))
            if not probe(exact, name, None, v, grads, tolerance, noise, own_loss).ok:
                return False
    except _Unmeasured:
        return None
    return True if names else None


class _Unmeasured(Exception):
    """The implementation refused or failed a probe's case."""


def _forward_text(loss, consistent: bool | None, hints: Sequence[str]) -> str:
    off = f"its loss {loss.analytic:.6g} against the contract's {loss.oracle_value:.6g}"
    head = f"the forward (or the loss) differs from the contract's model ({off})"
    if hints:
        head += "; " + "; ".join(hints)
    if consistent:
        return (
            head + "; the gradients match central differences of the implementation's own loss, so the backward "
            "may be right for the model it computes" + ("" if hints else ": look for a gate's activation (a sigmoid "
            "for the cell gate g?), a forget_bias not folded in, the cell output or the loss's reduction")
        )  # fmt: skip
    if consistent is False:
        return (
            head + "; the gradients do not match its own loss either: the backward is wrong too; fix the forward first"
        )
    return (
        head + "; the gradients' disagreement may follow from it: fix the forward first (look for a gate's "
        "activation, a forget_bias not folded in, the cell output or the loss's reduction)"
    )


# ----------------------------------------------------------------------------- the sentence


def _tensor_phrase(names: Sequence[str]) -> str:
    return f"only {', '.join(names)} {'is' if len(names) == 1 else 'are'} wrong"


def diagnose(
    case: Case,
    outcome: ImplOutcome,
    oracles: Sequence[OracleReport],
    tensors: Sequence[TensorSummary],
    steps: Sequence[StepLocalization],
    impl: Implementation | None = None,
    context: JudgingContext | None = None,
) -> Diagnosis | None:
    """The diagnosis of a failing report (None when nothing disagrees).

    ``impl`` and ``context`` allow the self-consistency probes (Note [Self-consistency]);
    without them that part is left unknown."""
    if outcome.status == FAILED:
        return Diagnosis(IMPLEMENTATION_FAILED, "the implementation did not return a usable result on this case")
    mismatching = [t for t in tensors if t.status == MISMATCH and t.record is not None]
    loss = _loss_check(oracles)
    loss_wrong = loss is not None and loss.status == MISMATCH
    if not mismatching and not loss_wrong:
        failing = [o.name for o in oracles if o.verdict == "fail"]
        if not failing:
            return None
        return Diagnosis(OTHER, f"only {', '.join(failing)} disagree(s); every tensor's full comparison agrees")
    precision = _precision(case, mismatching, loss)
    entry, prefix, when = _entry(steps, case.config.seq_len)
    if precision is not None:
        return Diagnosis(PRECISION, precision, entry_step=entry, first_wrong_prefix=prefix)
    if loss_wrong:
        if not mismatching:
            return Diagnosis(
                LOSS_VALUE,
                "only the returned loss differs, every gradient agrees: the number returned is not the loss that "
                "was differentiated (a term, a factor or the reduction missing from the returned value?)",
            )
        hints = _forward_hints(case, loss)
        consistent = None
        if impl is not None and context is not None and outcome.loss is not None:
            consistent = _self_consistent(case, impl, outcome.grads, context, float(outcome.loss))
        return Diagnosis(FORWARD, _forward_text(loss, consistent, hints), self_consistent=consistent, hints=hints)
    gates, layer, gates_from = _gates(mismatching, steps, oracles)
    names = [t.name for t in mismatching]
    if any(is_lstm_param(n) for n in names) and gates:
        verb = "carry" if 1 < len(gates) < len(GATES) else "carries"
        of_layer = f" of layer {layer}" if layer is not None and case.config.num_layers > 1 else ""
        where = f"{gate_phrase(sorted(gates))}{of_layer} {verb} the error"
    elif any(is_lstm_param(n) for n in names):
        where = "the LSTM's weights are wrong"
    elif all(n in STATE_INPUTS for n in names):
        where = _tensor_phrase(names) + " (the LSTM's weights agree: look at what flows out of it, W^T dz)"
    else:
        where = _tensor_phrase(names)
    text = f"the backward is wrong, the forward is right (the loss agrees): {where}"
    if when:
        text += f", {when}"
    return Diagnosis(
        BACKWARD, text, gates=tuple(g for g in GATES if g in gates), gates_from=gates_from,
        entry_step=entry, first_wrong_prefix=prefix,
    )  # fmt: skip
