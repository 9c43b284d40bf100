"""Oracles ``fd`` and ``richardson``: central differences of every element, in float64, bounded.

Every element of every parameter and of x, h0, c0 is differenced through the batched
forward (:mod:`lstm_gradcheck.oracles.batched`), with the estimates and bounds of
:mod:`lstm_gradcheck.oracles.fd_bounds`. The full central check takes the third difference
on a sample of each tensor's elements (the 8 largest |D| and a seeded tenth) and bounds every
element by TRUNCATION_SAFETY times the sample's largest |Δ3|/h³, scaled by its own h²/6:
two evaluations per element, a bound per tensor. Richardson bounds every element from both
sides of its step. A float32 case is checked on its values promoted to float64.

Note [Adaptive steps]
---------------------
Roundoff ε_L/h is absolute, so a tensor whose gradient is small against the loss gets it
large against its own scale. An element whose bound is over a target share of its tensor's
scale, and mostly roundoff, is evaluated again at 10x (and, central, 100x) its step; the
estimate with the smaller bound is kept where the two agree within their bounds, since a
bound is honest only while its expansion holds at the larger step.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from lstm_gradcheck.oracles.batched import partial_losses_many
from lstm_gradcheck.oracles.batched_forward import Base, base_copies, loss_magnitude, prepare
from lstm_gradcheck.oracles.cost import fd_costly, richardson_costly
from lstm_gradcheck.oracles.fd_bounds import (
    CENTRAL_ROUNDOFF,
    CENTRAL_STEP,
    EPS,
    RICHARDSON_MULTIPLES,
    RICHARDSON_ROUNDOFF,
    RICHARDSON_STEP,
    TRUNCATION_SAFETY,
    central_estimate,
    element_steps,
    loss_noise,
    richardson_bound,
    sample_top,
    truncation_sample,
)
from lstm_gradcheck.oracles.judging import JudgingContext
from lstm_gradcheck.oracles.smoothness import too_rough
from lstm_gradcheck.oracles.types import FULL, FullGradient, OracleAbstains, OracleSpec
from lstm_gradcheck.reference.case import Case
from lstm_gradcheck.reference.layout import gradient_shapes, model_gradient_names

__all__ = [
    "STEP_MULTIPLIERS",
    "CENTRAL_TARGET",
    "RICHARDSON_TARGET",
    "central_gradient",
    "richardson_gradient",
    "central_with_loss",
    "FD",
    "RICHARDSON",
]

#: Multipliers of the first step tried where the bound is over the target (Note [Adaptive steps]),
#: capped so every step stays where its expansion holds (central 2h <= 1.2e-2, Richardson 4H <= 3e-2).
STEP_MULTIPLIERS = {"central": (1.0, 10.0, 100.0), "richardson": (1.0, 10.0)}
CENTRAL_TARGET = 1e-6
RICHARDSON_TARGET = 1e-10


def _names(case: Case, names: Sequence[str] | None) -> list[str]:
    every = model_gradient_names(case.config)
    return list(every) if names is None else [n for n in every if n in names]


Estimates = dict[str, tuple[np.ndarray, np.ndarray, int]]
"""By gradient name: an estimate, its per-element bound, and the evaluations it took."""


def _central_at(base: Base, todo: Mapping[str, tuple[np.ndarray, np.ndarray]], noise: float) -> Estimates:
    """Central differences and their per-element bounds at steps ``h`` for elements ``idx``,
    ``todo[name] = (idx, h)``; 3 evaluations each plus the δ = 0 copies, in one pool of jobs."""
    pm = [(name, np.tile(idx, 2), np.concatenate([h, -h])) for name, (idx, h) in todo.items()]
    third, place = _third_requests(base, todo)
    values = iter(partial_losses_many(base, pm + third))
    f = {name: next(values).reshape(2, -1) for name in todo}
    out: Estimates = {}
    for name, (idx, h) in todo.items():
        f2, f0 = next(values), next(values)
        d, err = central_estimate(f[name][0], f[name][1], f2, f0[place[name]], h, noise)
        out[name] = (d, err, 3 * len(idx) + len(f0))
    return out


def _third_requests(
    base: Base, todo: Mapping[str, tuple[np.ndarray, np.ndarray]]
) -> tuple[list[tuple[str, np.ndarray, np.ndarray]], dict[str, np.ndarray]]:
    """What the third differences of elements ``idx`` at steps ``h`` (``todo[name] = (idx, h)``)
    need beyond L(θ ± h): L(θ + 2h) at each, and the δ = 0 copies
    (:func:`lstm_gradcheck.oracles.batched_forward.base_copies`), two requests per tensor in ``todo``'s order. Also,
    per tensor, where each element's own δ = 0 value sits in the second request's result."""
    requests, place = [], {}
    for name, (idx, h) in todo.items():
        first, place[name] = base_copies(base.config, name, idx)
        requests += [(name, idx, 2.0 * h), (name, first, np.zeros(len(first)))]
    return requests, place


def _richardson_at(
    base: Base, todo: Mapping[str, tuple[np.ndarray, np.ndarray]]
) -> dict[str, tuple[dict[float, np.ndarray], int]]:
    """Central differences ``D(m h)`` for m in RICHARDSON_MULTIPLES at elements ``idx``,
    ``todo[name] = (idx, h)``; 8 evaluations each, in one pool of jobs."""
    requests = []
    for name, (idx, h) in todo.items():
        steps = np.concatenate([m * s * h for m in RICHARDSON_MULTIPLES for s in (1.0, -1.0)])
        requests.append((name, np.tile(idx, 2 * len(RICHARDSON_MULTIPLES)), steps))
    out = {}
    for (name, (idx, h)), values in zip(todo.items(), partial_losses_many(base, requests), strict=True):
        f = values.reshape(-1, len(idx))
        d = {m: (f[2 * j] - f[2 * j + 1]) / (2.0 * m * h) for j, m in enumerate(RICHARDSON_MULTIPLES)}
        out[name] = (d, 2 * len(RICHARDSON_MULTIPLES) * len(idx))
    return out


def _richardson_bounded(base: Base, todo: Mapping[str, tuple[np.ndarray, np.ndarray]], noise: float) -> Estimates:
    return {
        name: (*richardson_bound(d, todo[name][1], noise), cost)
        for name, (d, cost) in _richardson_at(base, todo).items()
    }


def _refine(base, grads, errors, steps, at, target: float, multipliers, roundoff) -> tuple[int, dict[str, int]]:
    """Retry elements whose bound exceeds ``target`` of their tensor's
    scale at the larger ``multipliers`` of the step; keep, per element, the smaller bound.

    Only elements whose bound is mostly roundoff (``roundoff * noise / h`` is over half
    of it) are retried: a larger step shrinks roundoff but grows truncation. ``at(base,
    {name: (idx, h)})`` gives every tensor's retries at once (:data:`Estimates`)."""
    floor = 64 * EPS * max(float(np.max(np.abs(g), initial=0.0)) for g in grads.values())
    passes = 0
    retried: dict[str, int] = {}
    for mult in multipliers[1:]:
        todos = {}
        for name in grads:
            d, err = grads[name].reshape(-1), errors[name].reshape(-1)
            scale = float(np.max(np.abs(d), initial=0.0))
            todo = np.flatnonzero((err > max(target * scale, floor)) & (2.0 * roundoff[name] > err))
            if todo.size:
                todos[name] = (todo, mult * steps[name][todo])
        if not todos:
            continue
        for name, (d_new, err_new, cost) in at(base, todos).items():
            d, err = grads[name].reshape(-1), errors[name].reshape(-1)
            todo = todos[name][0]
            passes += cost
            retried[name] = retried.get(name, 0) + int(todo.size)
            # Both are bounds on the same number; where the intervals do not meet, the larger
            # step's expansion has broken down (its bound rests on it) and the old value stays.
            consistent = np.abs(d_new - d[todo]) <= err_new + err[todo]
            better = consistent & (err_new < err[todo])

            d[todo[better]] = d_new[better]
            err[todo[better]] = err_new[better]
    return passes, retried


def central_gradient(case: Case, names: Sequence[str] | None = None, *, base: Base | None = None) -> FullGradient:
    """Central differences of every element of ``names`` (default: every parameter and x, h0,
    c0), with error bounds (Note [Difference bounds], Note [Adaptive steps])."""
    base = prepare(case) if base is None else base
    arrays = base.case.arrays()
    shapes = gradient_shapes(base.config)
    rng = np.random.default_rng([0xFD, 0 if case.seed is None else int(case.seed) & 0xFFFFFFFF])
    grads: dict[str, np.ndarray] = {}
    third: dict[str, float] = {}
    passes = 1
    chosen = _names(case, names)
    steps = {name: element_steps(arrays[name], CENTRAL_STEP) for name in chosen}
    # Every tensor's ± evaluations and its random sample's third differences in one pool of jobs
    # (partial_losses_many); then the few largest |D| of each tensor complete the samples.
    drawn = {name: truncation_sample(h.size, rng) for name, h in steps.items()}
    requests = [(name, np.tile(np.arange(h.size), 2), np.concatenate([h, -h])) for name, h in steps.items()]
    sampled, place = _third_requests(base, {name: (idx, steps[name][idx]) for name, idx in drawn.items()})
    values = iter(partial_losses_many(base, requests + sampled))
    f = {name: next(values).reshape(2, -1) for name in steps}
    f2, f0 = {}, {}
    for name, h in steps.items():
        f2[name], f0[name] = next(values), next(values)[place[name]]
        grads[name] = (f[name][0] - f[name][1]) / (2.0 * h)
    top = {name: sample_top(grads[name], drawn[name]) for name in steps}
    sampled, place = _third_requests(base, {name: (idx, steps[name][idx]) for name, idx in top.items()})
    values = iter(partial_losses_many(base, sampled))
    for name, h in steps.items():
        top_f2, top_f0 = next(values), next(values)[place[name]]
        sample = np.concatenate([drawn[name], top[name]])
        at_2h = np.concatenate([f2[name], top_f2])
        at_0 = np.concatenate([f0[name], top_f0])
        delta3 = at_2h - 3.0 * f[name][0][sample] + 3.0 * at_0 - f[name][1][sample]
        third[name] = float(np.max(np.abs(delta3) / h[sample] ** 3, initial=0.0))  # a bound on |L'''|
        passes += 2 * h.size + sample.size + len(np.unique(at_0))
    noise = loss_noise(loss_magnitude(base), grads, arrays)
    errors = {
        name: TRUNCATION_SAFETY * third[name] * h**2 / 6.0 + CENTRAL_ROUNDOFF * noise / h for name, h in steps.items()
    }
    cost, retried = _refine(
        base, grads, errors, steps, lambda b, todo: _central_at(b, todo, noise), CENTRAL_TARGET,
        STEP_MULTIPLIERS["central"], {n: CENTRAL_ROUNDOFF * noise / h for n, h in steps.items()},
    )  # fmt: skip
    passes += cost
    return _result(base, grads, errors, passes, shapes, noise, retried, CENTRAL_STEP, CENTRAL_TARGET, (
        "central differences, step h_i = eps^(1/3) max(|θ_i|, 1) (x10, x100 where the bound exceeds "
        f"{CENTRAL_TARGET:g} of the tensor's scale); error = {TRUNCATION_SAFETY:g} x max sampled |third "
        "difference|/h³ x h_i²/6 + (1 + 8/6) ε_L/h_i (per element where retried)"
    ))  # fmt: skip


def richardson_gradient(case: Case, names: Sequence[str] | None = None, *, base: Base | None = None) -> FullGradient:
    """Richardson-extrapolated central differences at H, 2H, 4H, with error bounds checked at
    H/2 (:func:`lstm_gradcheck.oracles.fd_bounds.richardson_bound`, Note [Adaptive steps])."""
    base = prepare(case) if base is None else base
    arrays = base.case.arrays()
    shapes = gradient_shapes(base.config)
    steps = {name: element_steps(arrays[name], RICHARDSON_STEP) for name in _names(case, names)}
    grads: dict[str, np.ndarray] = {}
    errors: dict[str, np.ndarray] = {}
    passes = 1
    # The noise bound needs the gradient; the bounds are computed once both are known.
    differences = {}
    for name, (d, cost) in _richardson_at(base, {n: (np.arange(len(h)), h) for n, h in steps.items()}).items():
        differences[name] = d
        grads[name] = richardson_bound(d, steps[name], 0.0)[0]
        passes += cost
    noise = loss_noise(loss_magnitude(base), grads, arrays)
    broken = {}
    for name, h in steps.items():
        grads[name], errors[name] = richardson_bound(differences[name], h, noise)
        where = np.flatnonzero(~np.isfinite(errors[name]))
        if where.size:
            # No step >= H/2 is in the asymptotic regime here (richardson_bound's infinite bound).
            broken[name] = (where, element_steps(arrays[name].reshape(-1)[where], CENTRAL_STEP))
    for name, (d, err, cost) in (_central_at(base, broken, noise) if broken else {}).items():
        grads[name][broken[name][0]], errors[name][broken[name][0]] = d, err
        passes += cost
    fallback = {name: int(where.size) for name, (where, _) in broken.items()}
    cost, retried = _refine(
        base, grads, errors, steps, lambda b, todo: _richardson_bounded(b, todo, noise), RICHARDSON_TARGET,
        STEP_MULTIPLIERS["richardson"], {n: RICHARDSON_ROUNDOFF * noise / h for n, h in steps.items()},
    )  # fmt: skip
    passes += cost
    result = _result(base, grads, errors, passes, shapes, noise, retried, RICHARDSON_STEP, RICHARDSON_TARGET, (
        "Richardson extrapolation of central differences at H, 2H, 4H, H = eps^(1/5) max(|θ_i|, 1) (x10 "
        f"where the bound exceeds {RICHARDSON_TARGET:g} of the tensor's scale); error = max(2|R(2H) - R(H)|/15, "
        "(32/15) max(|R(H) - R(H/2)| - 4.95 ε_L/H, 0)) + 1.65 ε_L/H"
    ))  # fmt: skip
    result.details["central_fallback"] = fallback
    return result


def _result(base, grads, errors, passes, shapes, noise, retried, step, target, method) -> FullGradient:
    grads = {n: g.reshape(shapes[n]) for n, g in grads.items()}
    errors = {n: e.reshape(shapes[n]) for n, e in errors.items()}
    roundoff = CENTRAL_ROUNDOFF if step == CENTRAL_STEP else RICHARDSON_ROUNDOFF
    details = {
        "method": method,
        "step": step,
        "target": target,
        "loss_noise": noise,
        # The method's roundoff floor: the bound's noise term at the base step (the
        # counterpart of the tolerance rule's floor for gradients that vanish).
        "resolution": roundoff * noise / step,
        "retried_with_larger_steps": retried,
        "max_relative_error_estimate": _max_relative(errors, grads),
    }
    return FullGradient(base.loss, grads, passes, errors, details)


def _max_relative(errors: Mapping[str, np.ndarray], grads: Mapping[str, np.ndarray]) -> dict[str, float]:
    """Each tensor's largest error estimate relative to its scale (max |gradient|)."""
    out = {}
    for name, err in errors.items():
        scale = float(np.max(np.abs(grads[name]), initial=0.0))
        worst = float(np.max(err, initial=0.0))
        out[name] = worst / scale if scale > 0 else (0.0 if worst == 0 else float("inf"))
    return out


def central_with_loss(case: Case, name: str, loss_fn: Callable[[Case], float]) -> FullGradient:
    """Central differences of one tensor through any loss function (one call per evaluation).

    For checking an implementation against its own forward pass: 3 n + 1
    calls of ``loss_fn`` on float64 cases. The same formulas and error bounds
    as :func:`central_gradient`, with M = |L| + sum |θ_i D_i| over this tensor.
    """
    exact = case.astype("float64")
    array = exact.arrays()[name]
    flat = array.ravel()
    h = element_steps(flat, CENTRAL_STEP)
    loss0 = float(loss_fn(exact))

    def at(i: int, step: float) -> float:
        moved = flat.copy()
        moved[i] += step
        return float(loss_fn(exact.with_arrays({name: moved.reshape(array.shape)})))

    f = np.array([[at(i, m * h[i]) for i in range(flat.size)] for m in (1.0, -1.0, 2.0)])
    # Here θ ± h is materialized, so the step taken is (θ + h) - θ: h up to rounding.
    taken = np.array([(flat + m * h) - flat for m in (1.0, -1.0)])
    d = (f[0] - f[1]) / (taken[0] - taken[1])
    noise = loss_noise(abs(loss0), {name: d}, {name: flat})
    err = central_estimate(f[0], f[1], f[2], np.full(flat.size, loss0), h, noise)[1]
    return FullGradient(
        loss0,
        {name: d.reshape(array.shape)},
        3 * flat.size + 1,
        {name: err.reshape(array.shape)},
        {"method": "central differences through the given loss function", "loss_noise": noise},
    )


def _fd(context: JudgingContext) -> FullGradient:
    reason = too_rough(context, "fd")
    if reason is not None:
        raise OracleAbstains(reason)
    return central_gradient(context.exact_case)


def _richardson(context: JudgingContext) -> FullGradient:
    reason = too_rough(context, "richardson")
    if reason is not None:
        raise OracleAbstains(reason)
    return richardson_gradient(context.exact_case)


FD = OracleSpec(
    "fd",
    "central differences of every element (float64, step eps^(1/3) max(|θ|,1)) with per-element error bounds",
    kind=FULL,
    precedence=4,
    costly=fd_costly,
    gradient=_fd,
)
RICHARDSON = OracleSpec(
    "richardson",
    "Richardson-extrapolated central differences at H, 2H, 4H with per-element error bounds",
    kind=FULL,
    precedence=3,
    costly=richardson_costly,
    gradient=_richardson,
)
