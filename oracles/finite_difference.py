"""Oracles ``fd`` and ``richardson``: central differences of every element, in float64.

Note [Central differences and their error]
------------------------------------------
For every element θ_i of every parameter and of x, h0, c0, with the step
``h_i = c * max(|θ_i|, 1)``::

    D_i = (L(θ + h_i e_i) - L(θ - h_i e_i)) / (2 h_i)          = ∂L/∂θ_i + (h_i²/6) L'''_i + O(h⁴)

The step is relative for large |θ_i| (so θ ± h stays representable to the
same relative precision) and absolute below 1, where the gates vary on
their own O(1) scale, not on θ's (θ_i = 0 must not give a zero step).
``c = eps^(1/3) ≈ 6e-6`` balances truncation (∝ h²) against roundoff (∝ 1/h).

Each D_i carries an error estimate, truncation plus roundoff:

* truncation from the third difference
  ``Δ3 = L(θ+2h) - 3 L(θ+h) + 3 L(θ) - L(θ-h) = h³ L''' + O(h⁴)``, so
  ``|D_i - ∂L/∂θ_i| ≈ |Δ3| / (6 h_i)``. The full check (two evaluations per
  element, the speed the issue asks for) takes Δ3 on a sample of each tensor's
  elements (the 8 with the largest |D| and a seeded random tenth, at least 16)
  and bounds every element by ``TRUNCATION_SAFETY`` (10) times the sample's
  largest ``|Δ3| / h³``, scaled by its own ``h_i² / 6``: a per-tensor bound,
  statistical rather than per element. Elements retried at larger steps (Note
  [Adaptive steps]) and the Richardson oracle get Δ3 (or its counterpart) for
  every element;
* roundoff: every evaluation of the loss is exact to ``ε_L = 4 eps M``
  with ``M = |loss terms| + sum_i |θ_i ∂L/∂θ_i|`` (what rounding every input and
  intermediate by eps can move the loss by; measured on 150 random cases the
  noise of ``(L(θ+h) - L(θ-h))/2`` stayed below 1.6 eps M). It adds ``ε_L / h_i``
  to D_i and up to ``8 ε_L / (6 h_i)`` to the truncation estimate, so

      error_i = |Δ3| / (6 h_i) + (1 + 8/6) ε_L / h_i

  bounds ``|D_i - ∂L/∂θ_i|`` whenever the noise bound holds.

Richardson (oracle ``richardson``): central differences at ``H, 2H, 4H``
with ``H = eps^(1/5) * max(|θ_i|, 1) ≈ 7e-4`` (the balance point of an
O(H⁴) method), ``R(H) = (4 D(H) - D(2H)) / 3 = ∂L/∂θ_i + b H⁴ + O(H⁶)``.
The answer is R(H); ``R(2H) - R(H) = 15 b H⁴ + 63 c H⁶`` estimates its
truncation ``b H⁴ + c H⁶``, doubled for the H⁶ term it misjudges where
``c H²`` is not small against b (measured: 1.13x short at 4H = 0.03 on a
saturated case); its roundoff is at most ``(4 ε_L/H + ε_L/(2H)) / 3 = 1.5 ε_L / H``
(plus ``0.15 ε_L / H`` of noise in the estimate), so::

    error_i = 2 |R(2H) - R(H)| / 15 + 1.65 ε_L / H_i

Note [Adaptive steps]
---------------------
A fixed step cannot serve every element: the roundoff ε_L/h is absolute, so
a tensor whose gradient is 1e-5 of the loss (a vanishing path, a final
state barely reaching the loss) gets it at 1e-5 of ITS scale. Where an
element's bound exceeds a target fraction of its tensor's scale
(``CENTRAL_TARGET`` 1e-6, ``RICHARDSON_TARGET`` 1e-10; never below the
rule's floor 64 eps G), the element is evaluated again at 10x, then 100x
its step (Richardson only 10x: its 4H must stay where the O(H⁴) expansion
holds), and the estimate with the smaller bound is kept. Each candidate's
bound is honest on its own, so the smaller one is too. Elements whose bound
is already small are never re-evaluated, so the common case costs nothing.
What no step can beat is the method's roundoff floor, reported as
``details["resolution"]`` (the bound's noise term at the base step): a
gradient below it is resolved only to that absolute level.

The evaluations come from :mod:`oracles.batched`: the loss of every
perturbed copy at GEMM speed. A float32 case is checked on its values
promoted to float64: the oracle's answer is the exact gradient at those inputs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from oracles.batched import (
    WORKERS,
    Base,
    base_partial_losses,
    loss_magnitude,
    partial_losses,
    prepare,
    row_steps,
)
from reference.case import Case
from reference.config import LSTMConfig
from reference.layout import gradient_names, gradient_shapes

__all__ = [
    "EPS",
    "CENTRAL_STEP",
    "RICHARDSON_STEP",
    "NOISE_ULPS",
    "FDResult",
    "element_steps",
    "central_estimate",
    "truncation_sample",
    "TRUNCATION_SAFETY",
    "richardson_estimate",
    "central_gradient",
    "richardson_gradient",
    "central_with_loss",
    "estimated_seconds",
    "fd_unfit",
    "richardson_unfit",
    "MAX_SECONDS",
    "STEP_MULTIPLIERS",
    "CENTRAL_TARGET",
    "RICHARDSON_TARGET",
]

EPS = float(np.finfo(np.float64).eps)
CENTRAL_STEP = EPS ** (1.0 / 3.0)
RICHARDSON_STEP = EPS ** (1.0 / 5.0)
#: ε_L = NOISE_ULPS * eps * M bounds the roundoff of one loss evaluation (see the Note).
NOISE_ULPS = 4.0
#: Note [Adaptive steps]: multipliers of the first step tried where the bound is over the target.
#: Capped so every step stays in the asymptotic regime its error estimate assumes
#: (central 2h <= 1.2e-2, Richardson 4H <= 3e-2, times max(|θ|, 1)).
STEP_MULTIPLIERS = {"central": (1.0, 10.0, 100.0), "richardson": (1.0, 10.0)}
CENTRAL_TARGET = 1e-6
#: The full central check takes the third difference on this share of each tensor's elements
#: (at least TRUNCATION_SAMPLE_MIN, plus the TRUNCATION_SAMPLE_TOP largest |D|) and trusts
#: TRUNCATION_SAFETY times the sample's largest |Δ3| / h³ for the rest (Note [Central differences]).
TRUNCATION_SAMPLE_SHARE = 0.1
TRUNCATION_SAMPLE_MIN = 16
TRUNCATION_SAMPLE_TOP = 8
TRUNCATION_SAFETY = 10.0
RICHARDSON_SAFETY = 2.0
RICHARDSON_TARGET = 1e-10
#: Full checks estimated to take longer than this do not run by default (``unfit``).
MAX_SECONDS = 20.0


@dataclass(frozen=True)
class FDResult:
    """A full finite-difference gradient: loss, gradients and per-element error
    estimates by gradient name (float64, the tensors' shapes), the number of
    whole-case forward evaluations, and how it was computed."""

    loss: float
    grads: dict[str, np.ndarray]
    errors: dict[str, np.ndarray]
    forward_passes: int
    details: dict[str, object] = field(default_factory=dict)


def element_steps(values: np.ndarray, c: float) -> np.ndarray:
    """``h_i = c * max(|θ_i|, 1)`` for every element of ``values`` (flattened)."""
    return c * np.maximum(np.abs(np.ravel(values)), 1.0)


def central_estimate(
    f_plus: np.ndarray, f_minus: np.ndarray, f_2h: np.ndarray, f_0: np.ndarray, h: np.ndarray, noise: float
) -> tuple[np.ndarray, np.ndarray]:
    """D = (f(+h) - f(-h)) / 2h and its error bound |Δ3| / 6h + (1 + 8/6) ε_L / h (the Note)."""
    d = (f_plus - f_minus) / (2.0 * h)
    third = f_2h - 3.0 * f_plus + 3.0 * f_0 - f_minus
    return d, np.abs(third) / (6.0 * h) + (1.0 + 8.0 / 6.0) * noise / h


def richardson_estimate(
    f: Mapping[int, tuple[np.ndarray, np.ndarray]], h: np.ndarray, noise: float
) -> tuple[np.ndarray, np.ndarray]:
    """R(H) = (4 D(H) - D(2H)) / 3 and 2 |R(2H) - R(H)| / 15 + 1.65 ε_L / H (the Note).

    ``f[m] = (L(θ + m H e_i), L(θ - m H e_i))`` for m = 1, 2, 4.
    """
    d = {m: (f[m][0] - f[m][1]) / (2.0 * m * h) for m in (1, 2, 4)}
    r1 = (4.0 * d[1] - d[2]) / 3.0
    r2 = (4.0 * d[2] - d[4]) / 3.0
    return r1, RICHARDSON_SAFETY * np.abs(r2 - r1) / 15.0 + 1.65 * noise / h


def _noise(base_magnitude: float, grads: Mapping[str, np.ndarray], arrays: Mapping[str, np.ndarray]) -> float:
    """ε_L = NOISE_ULPS * eps * (|loss terms| + sum |θ_i ∂L/∂θ_i|)."""
    sensitivity = sum(float(np.sum(np.abs(grads[n].ravel() * arrays[n].ravel()))) for n in grads)
    return NOISE_ULPS * EPS * (base_magnitude + sensitivity)


def _names(case: Case, names: Sequence[str] | None) -> list[str]:
    every = gradient_names(case.config.num_layers)
    return list(every) if names is None else [n for n in every if n in names]


def _central_at(base: Base, name: str, idx: np.ndarray, h: np.ndarray, noise: float):
    """Central difference and its per-element bound at steps ``h`` for elements ``idx`` (3 evaluations each)."""
    n = len(idx)
    f = partial_losses(base, name, np.concatenate([idx, idx, idx]), np.concatenate([h, -h, 2.0 * h]))
    f0 = base_partial_losses(base, name, idx)
    d, err = central_estimate(f[:n], f[n : 2 * n], f[2 * n :], f0, h, noise)
    return d, err, 3 * n + len(np.unique(f0))


def truncation_sample(d: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Indices of the elements whose third difference bounds a tensor's truncation:
    the TRUNCATION_SAMPLE_TOP largest |d| and random others, TRUNCATION_SAMPLE_SHARE
    of the tensor but at least TRUNCATION_SAMPLE_MIN (all of a small tensor)."""
    n = d.size
    size = min(n, max(TRUNCATION_SAMPLE_MIN, int(np.ceil(TRUNCATION_SAMPLE_SHARE * n))))
    top = np.argsort(-np.abs(d), kind="stable")[:TRUNCATION_SAMPLE_TOP]
    rest = np.setdiff1d(np.arange(n), top)
    extra = rng.choice(rest, size=max(0, size - top.size), replace=False) if rest.size else rest
    return np.union1d(top, extra)


def _richardson_at(base: Base, name: str, idx: np.ndarray, h: np.ndarray, noise: float):
    """Richardson's value and bound at base steps ``h`` for elements ``idx`` (6 evaluations each)."""
    n = len(idx)
    steps = np.concatenate([m * s * h for m in (1, 2, 4) for s in (1.0, -1.0)])
    f = partial_losses(base, name, np.tile(idx, 6), steps).reshape(6, n)
    split = {m: (f[2 * j], f[2 * j + 1]) for j, m in enumerate((1, 2, 4))}
    d, err = richardson_estimate(split, h, noise)
    return d, err, 6 * n


def _refine(base, grads, errors, steps, at, target: float, multipliers, roundoff) -> tuple[int, dict[str, int]]:
    """Note [Adaptive steps]: retry elements whose bound exceeds ``target`` of their tensor's
    scale at the larger ``multipliers`` of the step; keep, per element, the smaller bound.

    Only elements whose bound is mostly roundoff (``roundoff * noise / h`` is over half
    of it) are retried: a larger step shrinks roundoff but grows truncation."""
    floor = 64 * EPS * max(float(np.max(np.abs(g), initial=0.0)) for g in grads.values())
    passes = 0
    retried: dict[str, int] = {}
    for mult in multipliers[1:]:
        for name in grads:
            d, err = grads[name].reshape(-1), errors[name].reshape(-1)
            scale = float(np.max(np.abs(d), initial=0.0))
            todo = np.flatnonzero((err > max(target * scale, floor)) & (2.0 * roundoff[name] > err))

            if todo.size == 0:
                continue
            d_new, err_new, cost = at(base, name, todo, mult * steps[name][todo])
            passes += cost
            retried[name] = retried.get(name, 0) + int(todo.size)
            better = err_new < err[todo]
            d[todo[better]] = d_new[better]
            err[todo[better]] = err_new[better]
    return passes, retried


def central_gradient(case: Case, names: Sequence[str] | None = None, *, base: Base | None = None) -> FDResult:
    """Central differences of every element of ``names`` (default: every parameter and x, h0,
    c0), with error bounds (Note [Central differences and their error], Note [Adaptive steps])."""
    base = prepare(case) if base is None else base
    arrays = base.case.arrays()
    shapes = gradient_shapes(base.config)
    rng = np.random.default_rng([0xFD, 0 if case.seed is None else int(case.seed) & 0xFFFFFFFF])
    steps: dict[str, np.ndarray] = {}
    grads: dict[str, np.ndarray] = {}
    third: dict[str, float] = {}
    passes = 1
    for name in _names(case, names):
        idx = np.arange(int(np.prod(shapes[name])))
        h = steps[name] = element_steps(arrays[name], CENTRAL_STEP)
        f = partial_losses(base, name, np.concatenate([idx, idx]), np.concatenate([h, -h]))
        grads[name] = d = (f[: idx.size] - f[idx.size :]) / (2.0 * h)
        sample = truncation_sample(d, rng)
        f2 = partial_losses(base, name, sample, 2.0 * h[sample])
        f0 = base_partial_losses(base, name, sample)
        delta3 = f2 - 3.0 * f[sample] + 3.0 * f0 - f[idx.size + sample]
        third[name] = float(np.max(np.abs(delta3) / h[sample] ** 3, initial=0.0))  # a bound on |L'''|
        passes += 2 * idx.size + sample.size + len(np.unique(f0))
    noise = _noise(loss_magnitude(base), grads, arrays)
    errors = {
        name: TRUNCATION_SAFETY * third[name] * h**2 / 6.0 + (1.0 + 8.0 / 6.0) * noise / h for name, h in steps.items()
    }
    cost, retried = _refine(
        base, grads, errors, steps, lambda b, n, i, h: _central_at(b, n, i, h, noise), CENTRAL_TARGET,
        STEP_MULTIPLIERS["central"], {n: (1.0 + 8.0 / 6.0) * noise / h for n, h in steps.items()},
    )  # fmt: skip
    passes += cost
    return _result(base, grads, errors, passes, shapes, noise, retried, CENTRAL_STEP, CENTRAL_TARGET, (
        "central differences, step h_i = eps^(1/3) max(|θ_i|, 1) (x10, x100 where the bound exceeds "
        f"{CENTRAL_TARGET:g} of the tensor's scale); error = {TRUNCATION_SAFETY:g} x max sampled |third "
        "difference|/h³ x h_i²/6 + (1 + 8/6) ε_L/h_i (per element where retried)"
    ))  # fmt: skip


def richardson_gradient(case: Case, names: Sequence[str] | None = None, *, base: Base | None = None) -> FDResult:
    """Richardson-extrapolated central differences at H, 2H, 4H, with error bounds
    (Note [Central differences and their error], Note [Adaptive steps])."""
    base = prepare(case) if base is None else base
    arrays = base.case.arrays()
    shapes = gradient_shapes(base.config)
    steps = {name: element_steps(arrays[name], RICHARDSON_STEP) for name in _names(case, names)}
    grads: dict[str, np.ndarray] = {}
    errors: dict[str, np.ndarray] = {}
    passes = 1
    # A first pass without noise gives the gradient that the noise bound needs; the
    # bounds are then recomputed from the same evaluations (noise enters them linearly).
    cache = {}
    for name, h in steps.items():
        d, err0, cost = _richardson_at(base, name, np.arange(len(h)), h, 0.0)
        passes += cost
        grads[name] = d
        cache[name] = err0
    noise = _noise(loss_magnitude(base), grads, arrays)
    for name, h in steps.items():
        errors[name] = cache[name] + 1.65 * noise / h
    cost, retried = _refine(
        base, grads, errors, steps, lambda b, n, i, h: _richardson_at(b, n, i, h, noise), RICHARDSON_TARGET,
        STEP_MULTIPLIERS["richardson"], {n: 1.65 * noise / h for n, h in steps.items()},
    )  # fmt: skip
    passes += cost
    return _result(base, grads, errors, passes, shapes, noise, retried, RICHARDSON_STEP, RICHARDSON_TARGET, (
        "Richardson extrapolation of central differences at H, 2H, 4H, H = eps^(1/5) max(|θ_i|, 1) (x10 "
        f"where the bound exceeds {RICHARDSON_TARGET:g} of the tensor's scale); error = 2|R(2H) - R(H)|/15 + 1.65 ε_L/H"
    ))  # fmt: skip


def _result(base, grads, errors, passes, shapes, noise, retried, step, target, method) -> FDResult:
    grads = {n: g.reshape(shapes[n]) for n, g in grads.items()}
    errors = {n: e.reshape(shapes[n]) for n, e in errors.items()}
    roundoff = (1.0 + 8.0 / 6.0) if step == CENTRAL_STEP else 1.65
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
    return FDResult(base.loss, grads, errors, passes, details)


def _max_relative(errors: Mapping[str, np.ndarray], grads: Mapping[str, np.ndarray]) -> dict[str, float]:
    """Each tensor's largest error estimate relative to its scale (max |gradient|)."""
    out = {}
    for name, err in errors.items():
        scale = float(np.max(np.abs(grads[name]), initial=0.0))
        worst = float(np.max(err, initial=0.0))
        out[name] = worst / scale if scale > 0 else (0.0 if worst == 0 else float("inf"))
    return out


def central_with_loss(case: Case, name: str, loss_fn: Callable[[Case], float]) -> FDResult:
    """Central differences of one tensor through any loss function (one call per evaluation).

    For checking an implementation against its own forward pass: 3 n + 1
    calls of ``loss_fn`` on float64 cases. The same formulas and error bounds
    as :func:`central_gradient`, with M = |L| + sum |θ_i D_i| over this tensor.
    """
    exact = case if case.config.dtype == "float64" else case.astype("float64")
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
    noise = NOISE_ULPS * EPS * (abs(loss0) + float(np.sum(np.abs(d * flat))))
    err = central_estimate(f[0], f[1], f[2], np.full(flat.size, loss0), h, noise)[1]
    return FDResult(
        loss0,
        {name: d.reshape(array.shape)},
        {name: err.reshape(array.shape)},
        3 * flat.size + 1,
        {"method": "central differences through the given loss function", "loss_noise": noise},
    )


# ----------------------------------------------------------------------------- cost model


_SECONDS_PER_GEMM_FLOP = 1.0 / 3.0e10  # one core's DGEMM on these thin shapes
_SECONDS_PER_GATE = 4.5e-9  # activations and cell update per pre-activation element
_EVALUATIONS = {"fd": 2.2, "richardson": 6, "complex-step": 1}
_COMPLEX_FACTOR = 2.5  # a complex128 copy costs about this many real ones


def estimated_seconds(config: LSTMConfig, method: str) -> float:
    """Rough wall time of the full check by ``method`` ("fd", "richardson", "complex-step")."""
    hidden = config.hidden_size
    per_row_step = 2 * 4 * hidden * (max(config.input_size, hidden) + hidden + config.batch_size)
    per_row_step = per_row_step * _SECONDS_PER_GEMM_FLOP + 4 * hidden * _SECONDS_PER_GATE
    work = sum(row_steps(config, name) for name in gradient_shapes(config))
    factor = _EVALUATIONS[method] * (_COMPLEX_FACTOR if method == "complex-step" else 1.0)
    return work * per_row_step * factor / WORKERS


def _unfit(config: LSTMConfig, method: str, instead: str) -> str | None:
    seconds = estimated_seconds(config, method)
    if seconds <= MAX_SECONDS:
        return None
    size = sum(int(np.prod(s)) for s in gradient_shapes(config).values())
    return (
        f"the full check of {size} elements would take about {seconds:.0f} s (limit {MAX_SECONDS:g} s); "
        f"{instead} checks cases of any size"
    )


def fd_unfit(config: LSTMConfig) -> str | None:
    """Why the full central-difference check does not run by default on ``config`` (None if it does)."""
    return _unfit(config, "fd", "--oracle directional")


def richardson_unfit(config: LSTMConfig) -> str | None:
    """As :func:`fd_unfit` for the Richardson variant (twice the evaluations)."""
    return _unfit(config, "richardson", "--oracle directional")
