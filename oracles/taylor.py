"""Oracle ``taylor``: the Taylor remainder must fall as h², a verdict with no step to tune.

Along a direction v, with the implementation's gradient g::

    L(θ ± h v) - L(θ) ∓ h ⟨g, v⟩ = ±h ⟨∇L - g, v⟩ + (h²/2) vᵀ∇²L v ± O(h³)

so ``r(h) = max over ± of |L(θ ± h v) - L(θ) ∓ h ⟨g, v⟩| = |a| h + |b| h² + O(h³)``
(the larger side removes the dip where a h and b h² cancel). Steps ``h_k = 0.1 * 4^-k``
run down until r(h) sinks into roundoff (``r < 10 ε_L``); the slope is the least-squares
fit of log r against log h over the two smallest steps above that floor. The odd part
``|(L(θ+hv) - L(θ-hv))/2 - h⟨g, v⟩| = |a h + c h³ + ...|`` has no h² term: it falls as h³
for a right g and as h for a wrong one, far above where r(h) turns, so a small error
that r cannot show above roundoff shows there. Directions: one per tensor (a slope of 1
names the tensor) and one over all of them; a failing tensor's full central-difference
check has the last word, locating the element or clearing it.

Note [Taylor remainder]
-----------------------
A right gradient has a = 0, so r falls as h² (slope 2); a wrong one shows slope 1 below
h ≈ |a/b|. A direction fails when its slope is below 1.5 or its odd part's below 2
(halfway between the regimes) and the fitted linear term |a| exceeds what the tolerance
rule allows along v: a gradient within the rule (float32 rounding) still has a tiny
linear term the smallest steps reveal. Fewer than two points above roundoff: "flat".
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from lstm_gradcheck.oracles.directions import (
    inner,
    judging_noise,
    located_check,
    loss_at,
    moved,
    random_direction,
    tensor_names,
)
from lstm_gradcheck.oracles.judging import JudgingContext
from lstm_gradcheck.oracles.records import MISMATCH, NOT_PROVIDED, OK, CheckResult, TensorResult
from lstm_gradcheck.oracles.types import FAIL, JUDGE, PASS, LossFn, OracleReport, OracleSpec
from lstm_gradcheck.reference.case import Case

__all__ = [
    "SLOPE_THRESHOLD",
    "ODD_SLOPE_THRESHOLD",
    "TaylorFit",
    "taylor_fit",
    "taylor_judge",
    "STEPS",
    "FIRST_STEP",
    "STEP_RATIO",
    "TAYLOR",
]

SLOPE_THRESHOLD = 1.5
FIRST_STEP = 0.1
STEP_RATIO = 4.0
STEPS = 14  # 0.1 down to 0.1 * 4^-13 ≈ 1.5e-9
_NOISE_MARGIN = 10.0  # ε_L already bounds the noise with a 2.5x margin (measured)
_FIT_POINTS = 2
ODD_SLOPE_THRESHOLD = 2.0


@dataclass(frozen=True)
class TaylorFit:
    """The remainders along one direction and the fitted slope.

    ``steps`` and ``remainders`` are the evaluated h and r(h); ``used`` the
    indices fitted; ``slope`` NaN when fewer than two points rose above the
    roundoff floor ``floor`` (a flat direction); ``derivative`` the central
    difference at the smallest fitted step, ``analytic`` ⟨g, v⟩;
    ``linear`` and ``quadratic`` the fitted |a| and |b| h of r = |a| h + |b| h²
    at the smallest fitted step; ``curvature_share`` = |even part| / r there,
    the even part ``(L(θ+hv) + L(θ-hv))/2 - L(θ) = (h²/2) vᵀ∇²L v + O(h⁴)``: near 1
    when the quadratic term dominates (slope 2 for a right g), small when the
    direction's curvature nearly vanishes (then the cubic term shows: slope up to 3).
    """

    steps: tuple[float, ...]
    remainders: tuple[float, ...]
    used: tuple[int, ...]
    slope: float
    floor: float
    analytic: float
    derivative: float
    linear: float
    quadratic: float
    evaluations: int
    curvature_share: float = math.nan
    odd_slope: float = math.nan

    @property
    def flat(self) -> bool:
        return math.isnan(self.slope)

    @property
    def ok(self) -> bool:
        slope_ok = self.flat or self.slope >= SLOPE_THRESHOLD
        return slope_ok and (math.isnan(self.odd_slope) or self.odd_slope >= ODD_SLOPE_THRESHOLD)


def taylor_fit(case: Case, v: Mapping[str, np.ndarray], g_v: float, loss0: float, noise: float, loss_fn) -> TaylorFit:
    """Remainders r(h) along ``v`` for h = 0.1 * 4^-k until roundoff, and their slope (the Note)."""
    floor = _NOISE_MARGIN * noise
    steps, rems, plus_minus = [], [], []
    below = 0
    evaluations = 0
    for k in range(STEPS):
        h = FIRST_STEP * STEP_RATIO**-k
        up = float(loss_fn(moved(case, v, h)))
        down = float(loss_fn(moved(case, v, -h)))
        evaluations += 2
        r = max(abs(up - loss0 - h * g_v), abs(down - loss0 + h * g_v))
        steps.append(h)
        rems.append(r)
        plus_minus.append((up, down))
        below = below + 1 if r < floor else 0
        clean_so_far = sum(1 for x in rems if x >= floor and 0 < x < math.inf)
        if below >= 2 or (below and clean_so_far >= _FIT_POINTS):
            break  # into roundoff: smaller steps only add noise
    clean = [i for i, r in enumerate(rems) if r >= floor and 0 < r < math.inf]
    used = tuple(clean[-_FIT_POINTS:])
    if len(used) < 2:
        return TaylorFit(tuple(steps), tuple(rems), used, math.nan, floor, g_v, math.nan, 0.0, 0.0, evaluations)
    x = np.log([steps[i] for i in used])
    y = np.log([rems[i] for i in used])
    slope = float(np.polyfit(x, y, 1)[0])
    small, large = used[-1], used[-2]
    h1, h2 = steps[large], steps[small]
    r1, r2 = rems[large], rems[small]
    # r = A h + Q h² through the two smallest fitted points.
    quad = (r1 / h1 - r2 / h2) / (h1 - h2)
    lin = r2 / h2 - quad * h2
    up, down = plus_minus[small]
    derivative = (up - down) / (2 * h2)
    share = abs((up + down) / 2 - loss0) / r2
    return TaylorFit(
        tuple(steps), tuple(rems), used, slope, floor, g_v, derivative, max(lin, 0.0), abs(quad) * h2, evaluations,
        share, _odd_slope(steps, plus_minus, g_v, floor),
    )  # fmt: skip


def _odd_slope(steps, plus_minus, g_v: float, floor: float) -> float:
    """Slope of the odd part |(L(θ+hv) - L(θ-hv))/2 - h⟨g, v⟩| = |a h + c h³ + ...| (the Note)."""
    odd = [abs((up - down) / 2 - h * g_v) for h, (up, down) in zip(steps, plus_minus, strict=True)]
    clean = [i for i, r in enumerate(odd) if r >= floor and 0 < r < math.inf][-_FIT_POINTS:]
    if len(clean) < 2:
        return math.nan
    return float(np.polyfit(np.log([steps[i] for i in clean]), np.log([odd[i] for i in clean]), 1)[0])


def _record(name: str, fit: TaylorFit, scale: float, size: int, linear_allowed: float) -> TensorResult:
    """A direction fails when its slope says "linear term" and that term exceeds what the
    tolerance rule allows along the direction (Note [Taylor remainder])."""
    err = fit.linear
    ok = fit.ok or err <= linear_allowed
    return TensorResult(
        name=name,
        status=OK if ok else MISMATCH,
        oracle="taylor",
        max_abs_err=err,
        max_rel_err=err / scale if scale > 0 else (0.0 if err == 0 else math.inf),
        scale=scale,
        allowed=linear_allowed,
        bad=0 if ok else 1,
        size=size,
        analytic_value=fit.analytic,
        oracle_value=fit.derivative,
    )


def linear_allowance(tolerance, grads: Mapping[str, np.ndarray], v: Mapping[str, np.ndarray]) -> float:
    """What the rule allows of ⟨∇L - g, v⟩: each tensor's allowance times sum |v| over its elements.

    A gradient within the rule (a float32 one, rounded at 1e-7) still has a small
    linear term that the remainder shows at small h; it must not fail the test."""
    total = 0.0
    for name, direction in v.items():
        scale = float(np.max(np.abs(np.asarray(grads[name], dtype=np.float64)), initial=0.0))
        total += tolerance.allowed(name, scale) * float(np.sum(np.abs(direction)))
    return total


def taylor_judge(
    context: JudgingContext,
    loss: float | None,
    grads: Mapping[str, np.ndarray],
    loss_fn: LossFn | None = None,
) -> OracleReport:
    """Judge ``grads`` by Taylor-remainder slopes (Note [Taylor remainder]) through ``loss_fn``
    (None: the contract's model)."""
    case = context.case
    exact = context.exact_case
    provided = tuple(n for n in tensor_names(case) if n in grads)
    loss0 = context.exact_loss if loss_fn is None else float(loss_fn(exact))
    noise = judging_noise(context, loss0, grads)

    def evaluate(c: Case) -> float:
        return loss_at(c, loss_fn)

    passes = 1
    records: list[TensorResult] = []
    slopes: dict[str, float | None] = {}
    shares: dict[str, float | None] = {}
    odd: dict[str, float | None] = {}
    linear_ok: list[str] = []
    tolerance = context.tolerance({n: grads[n] for n in provided})
    for name in tensor_names(case):
        size = int(np.size(case.arrays()[name]))
        if name not in grads:
            records.append(TensorResult(name, NOT_PROVIDED, "taylor", size=size))
            continue
        v = random_direction(exact, "taylor", name, (name,))
        fit = taylor_fit(exact, v, inner(grads, v), loss0, noise, evaluate)
        passes += fit.evaluations
        slopes[name] = None if fit.flat else round(fit.slope, 3)
        shares[name] = None if fit.flat else round(fit.curvature_share, 3)
        odd[name] = None if math.isnan(fit.odd_slope) else round(fit.odd_slope, 3)
        scale = float(np.sum(np.abs(np.asarray(grads[name], dtype=np.float64) * v[name])))
        allowed = linear_allowance(tolerance, grads, v)
        record = _record(name, fit, scale, size, allowed)
        if not fit.ok and record.status == OK:
            linear_ok.append(f"{name} (slope {slopes[name]}, linear term {fit.linear:.2g} <= {allowed:.2g})")
        if record.status == MISMATCH:
            located, cost = located_check(case, name, grads[name], tolerance, "taylor", loss_fn)
            passes += cost
            if located is not None:
                # The full check of the tensor has the last word: it locates a real error,
                # or clears a linear term that only the remainder's smallest steps saw.
                record = located
        records.append(record)
    overall, overall_fails = None, False
    if provided:
        v = random_direction(exact, "taylor", "all", provided)
        fit = taylor_fit(exact, v, inner(grads, v), loss0, noise, evaluate)
        passes += fit.evaluations
        overall = None if fit.flat else round(fit.slope, 3)
        overall_fails = not fit.ok and fit.linear > linear_allowance(tolerance, grads, v)

    failing = [r.name for r in records if r.status == MISMATCH]
    judged = {k: s for k, s in slopes.items() if s is not None}
    summary = (
        f"remainder slopes {min(judged.values()):.2f}..{max(judged.values()):.2f} over {len(judged)} tensors"
        if judged
        else "every direction flat (the loss does not move above roundoff)"
    )
    summary += f", all-tensor direction {overall if overall is not None else 'flat'}"
    summary += f" (2 = right, 1 = wrong; fail below {SLOPE_THRESHOLD}, or odd-part slope below {ODD_SLOPE_THRESHOLD})"
    if linear_ok:
        summary += (
            "; below the threshold but passed, since the linear term the slope shows is within what the rule "
            f"allows along the direction (rounding, not a wrong gradient): {', '.join(linear_ok)}"
        )
    if failing:
        summary += f"; wrong: {', '.join(f'{n} (slope {slopes[n]}, odd {odd[n]})' for n in failing)}"

    check = CheckResult("taylor", tolerance, None, tuple(records))
    details = {
        "slopes": slopes,
        "curvature_share": shares,
        "odd_slopes": odd,
        "all_tensors_slope": overall,
        "threshold": SLOPE_THRESHOLD,
        "summary": summary,
    }
    verdict = FAIL if failing or overall_fails else PASS
    return OracleReport("taylor", verdict, 0.0, passes, check, details=details)


TAYLOR = OracleSpec(
    "taylor",
    "Taylor remainder |L(θ+hv) - L(θ) - h<g,v>| must fall as h² (slope 2), per tensor",
    kind=JUDGE,
    precedence=6,
    judge=taylor_judge,
)
