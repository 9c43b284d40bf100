"""Oracle ``directional``: ⟨g, v⟩ against central differences along v, a few forward passes per probe.

For cases too large for the full check. Probes: one random direction per tensor, plus one
per gate block of every 4H-row tensor (so a failing probe already names the gate), four
loss evaluations each::

    D(h) = (L(θ + h v) - L(θ - h v)) / 2h,   h = eps^(1/3)          (v_i on θ_i's scale)
    error = |D(2h) - D(h)| / 3 + 1.5 ε_L / h
    pass when |⟨g, v⟩ - D(h)| <= sum_i |v_i| (rtol scale + floor + conditioning) + 4 error

(D(2h) - D(h) = 3 (h²/6) times the third derivative along v estimates D(h)'s
truncation): the tolerance rule summed along v. A failing probe's tensor gets the full
central-difference check, which locates the element.

Note [Directional probes]
-------------------------
Roundoff ε_L/h is absolute, so for a tensor small against the loss (h0 of a long
sequence) 4 error can exceed the rule and hide a real error. Where it does, the probe is
repeated at 10x, then 100x the step (Note [Adaptive steps]), keeping the sharper estimate
where the two agree within their errors, and stopping once the error stops shrinking
(truncation has taken over) or is within the rule.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from lstm_gradcheck.oracles.directions import (
    Direction,
    inner,
    judging_noise,
    located_check,
    loss_at,
    moved,
    random_direction,
    tensor_names,
)
from lstm_gradcheck.oracles.fd_bounds import CENTRAL_STEP
from lstm_gradcheck.oracles.finite_difference import STEP_MULTIPLIERS
from lstm_gradcheck.oracles.judging import JudgingContext
from lstm_gradcheck.oracles.records import MISMATCH, NOT_PROVIDED, OK, CheckResult, TensorResult
from lstm_gradcheck.oracles.tolerance import ORACLE_ERROR_FACTOR, Tolerance
from lstm_gradcheck.oracles.types import FAIL, JUDGE, PASS, LossFn, OracleReport, OracleSpec
from lstm_gradcheck.reference.case import Case
from lstm_gradcheck.reference.layout import GATES, gate_slice, is_lstm_param, parse_name
from lstm_gradcheck.reference.locations import Location

__all__ = ["Probe", "probe", "probes_for", "directional_judge", "EVALUATIONS_PER_PROBE", "DIRECTIONAL"]

EVALUATIONS_PER_PROBE = 4


@dataclass(frozen=True)
class Probe:
    """One probe: tensor, gate block (or None), ⟨g, v⟩, the central difference
    D(h), its error estimate and the allowance it was judged by."""

    name: str
    gate: str | None
    analytic: float
    numeric: float
    error: float
    allowed: float
    scale: float
    evaluations: int = EVALUATIONS_PER_PROBE

    @property
    def abs_err(self) -> float:
        return abs(self.analytic - self.numeric)

    @property
    def ok(self) -> bool:
        return self.abs_err <= self.allowed


def probes_for(case: Case, name: str) -> list[tuple[str | None, Direction]]:
    """The probes of tensor ``name``: the whole tensor, then each gate block of a 4H-row tensor."""
    whole = [(None, random_direction(case, "directional", name, (name,)))]
    if not is_lstm_param(name):
        return whole
    hidden = case.config.hidden_size
    blocks = [
        (gate, random_direction(case, "directional", f"{name}/{gate}", (name,), gate_slice(gate, hidden)))
        for gate in GATES
    ]
    return whole + blocks


def probe(
    case: Case,
    name: str,
    gate: str | None,
    v: Direction,
    grads: Mapping[str, np.ndarray],
    tolerance: Tolerance,
    noise: float,
    loss_fn: Callable[[Case], float],
) -> Probe:
    """⟨g, v⟩ against D(h) along ``v``, h adapted where roundoff hides the rule (Note [Directional probes])."""
    g = np.asarray(grads[name], dtype=np.float64)
    scale = float(np.max(np.abs(g), initial=0.0))
    rule = float(np.sum(np.abs(v[name]))) * tolerance.allowed(name, scale)
    numeric, error, evaluations = math.nan, math.inf, 0
    for multiplier in STEP_MULTIPLIERS["central"]:
        d, err = _difference(case, v, multiplier * CENTRAL_STEP, noise, loss_fn)
        evaluations += EVALUATIONS_PER_PROBE
        if math.isnan(numeric):
            numeric, error = d, err
        elif err >= error or abs(d - numeric) > err + error:
            break  # truncation has taken over, or the expansion has broken down at this step
        else:  # the two agree: the sharper one stands
            numeric, error = d, err
        if ORACLE_ERROR_FACTOR * error <= rule:
            break
    allowed = rule + ORACLE_ERROR_FACTOR * error
    return Probe(name, gate, inner(grads, v), numeric, error, allowed, float(np.sum(np.abs(g * v[name]))), evaluations)


def _difference(
    case: Case, v: Direction, h: float, noise: float, loss_fn: Callable[[Case], float]
) -> tuple[float, float]:
    """D(h) along ``v`` and its error |D(2h) - D(h)| / 3 + 1.5 ε_L / h (four evaluations)."""
    d = {}
    for m in (1.0, 2.0):
        d[m] = (float(loss_fn(moved(case, v, m * h))) - float(loss_fn(moved(case, v, -m * h)))) / (2 * m * h)
    return d[1.0], abs(d[2.0] - d[1.0]) / 3.0 + 1.5 * noise / h


def _record(probes: list[Probe], case: Case) -> TensorResult:
    """The tensor's record from its probes: the worst one (by error over allowance)."""
    worst = max(probes, key=lambda p: p.abs_err / p.allowed if p.allowed > 0 else math.inf)
    failing = [p for p in probes if not p.ok]
    location = None
    if failing:
        gate = next((p.gate for p in failing if p.gate is not None), None)
        location = Location(worst.name, (), layer=parse_name(worst.name).layer, gate=gate)
    scale = worst.scale
    return TensorResult(
        name=worst.name,
        status=MISMATCH if failing else OK,
        oracle="directional",
        max_abs_err=worst.abs_err,
        max_rel_err=worst.abs_err / scale if scale > 0 else (0.0 if worst.abs_err == 0 else math.inf),
        scale=scale,
        allowed=worst.allowed,
        bad=len(failing),
        size=len(probes),
        worst=location,
        analytic_value=worst.analytic,
        oracle_value=worst.numeric,
    )


def directional_judge(
    context: JudgingContext,
    loss: float | None,
    grads: Mapping[str, np.ndarray],
    loss_fn: LossFn | None = None,
) -> OracleReport:
    """Judge ``grads`` by directional probes (Note [Directional probes]) through ``loss_fn``
    (None: the contract's model)."""
    case = context.case
    exact = context.exact_case
    provided = {n: grads[n] for n in tensor_names(case) if n in grads}
    tolerance = context.tolerance(provided)
    loss0 = context.exact_loss if loss_fn is None else float(loss_fn(exact))
    noise = judging_noise(context, loss0, grads)

    def evaluate(c: Case) -> float:
        return loss_at(c, loss_fn)

    passes = 1
    records: list[TensorResult] = []
    count = 0
    failing_probes: list[str] = []
    for name in tensor_names(case):
        if name not in grads:
            records.append(TensorResult(name, NOT_PROVIDED, "directional", size=int(np.size(case.arrays()[name]))))
            continue
        probes = [probe(exact, name, gate, v, grads, tolerance, noise, evaluate) for gate, v in probes_for(exact, name)]
        count += len(probes)
        passes += sum(p.evaluations for p in probes)
        record = _record(probes, case)
        if record.status == MISMATCH:
            failing_probes += [f"{p.name}{'' if p.gate is None else '/' + p.gate}" for p in probes if not p.ok]
            located, cost = located_check(case, name, grads[name], tolerance, "directional", loss_fn)
            passes += cost
            if located is not None:
                # The element-level check with its own error bounds is the finer judge.
                record = located
        records.append(record)
    bad = [r.name for r in records if r.status == MISMATCH]
    summary = f"{count} probes over {len(provided)} tensors (whole tensor and each gate block)"
    if failing_probes:
        summary += f"; failing probes: {', '.join(failing_probes)}"
        cleared = [n for n in {p.split("/")[0] for p in failing_probes} if n not in bad]
        if cleared:
            summary += f"; the full check of {', '.join(cleared)} found every element within its error bound"
    check = CheckResult("directional", tolerance, None, tuple(records))
    details = {"probes": count, "failing_probes": failing_probes, "summary": summary}
    return OracleReport("directional", FAIL if bad else PASS, 0.0, passes, check, details=details)


DIRECTIONAL = OracleSpec(
    "directional",
    "<g, v> against central differences along random v, per tensor and gate block",
    kind=JUDGE,
    precedence=5,
    judge=directional_judge,
)
