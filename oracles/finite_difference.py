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

Note [Richardson's half step]
-----------------------------
That bound assumes the O(H⁴) expansion holds at steps up to 4H. Where it
does not (exploding states, saturated gates with 10x weights), the H⁴ and H⁶
terms can cancel between 2H and 4H, so R(2H) and R(H) agree while both are
wrong (measured: R(H) off by 1.6e-4 with a bound of 4e-6, on a 200-step
identity-cell case). Every element therefore also gets D(H/2) and
``R(H/2) = (4 D(H/2) - D(H)) / 3``, whose truncation is 1/16 of R(H)'s where
the expansion holds: ``|R(H) - R(H/2)|`` then estimates R(H)'s error from the
small side, where the expansion is most trustworthy. The part of that gap
that the two estimates' roundoff (``(1.65 + 3.3) ε_L / H``) cannot explain,
times ``2 * 16/15``, is a second truncation estimate; the bound takes the
larger of the two::

    error_i = max(2 |R(2H) - R(H)| / 15, (32/15) max(|R(H) - R(H/2)| - 4.95 ε_L/H_i, 0)) + 1.65 ε_L / H_i

Where that truncation estimate dominates the bound, R(H/2) is the answer
instead: its truncation is a sixteenth, its roundoff twice (3.3 ε_L / H), and
it is kept where that sum is the smaller bound (a 3-layer case with 2x weights:
R(H) off by 3.7e-9, R(H/2) by 2.2e-10).

Two more evaluations per element (8 in all). And where the differences
themselves stop behaving like ``b h²`` (successive differences D(2m H) - D(m H)
should grow 4x per doubling; more than half off, beyond roundoff), no step
>= H/2 is asymptotic: the bound is infinite and the element is taken from a
central difference at the small step ``eps^(1/3) max(|θ|, 1)`` with its own
bound instead (``details["central_fallback"]`` counts them).


Note [Smooth enough for finite differences]
-------------------------------------------
Every bound above rests on the loss being a low-order polynomial at the
scale of the step. A long identity-cell recurrence with large weights can
be chaotic down to steps of 1e-5: its exact gradient is well defined (the
tolerance rule's eps-level probes see nothing), but no difference quotient
at steps >= 1e-5 approximates it, and every error estimate built from such
quotients can be fooled (measured: 200 steps, 3 layers, an error of 23%
under a bound of 0.3%). Before an FD oracle runs, the exact float64 gradient is taken
at θ ± δ with δ_i = c max(|θ_i|, 1) random signs over every parameter and
x, h0, c0 (c the oracle's step: eps^(1/3) central, eps^(1/5) Richardson).
Its even part ``(g(θ+δ) + g(θ-δ))/2 - g(θ)`` is the second-order term of
the expansion the differences rely on; where it exceeds
``ROUGHNESS_LIMIT`` (1%) of a tensor's scale, the oracle abstains for the
case with the measured figure instead of giving an answer it cannot bound.
On 400 ``thorough`` examples the Richardson step was that rough in 20
(exploding identity cells, 10x weights) and the central step in 1.

Note [Adaptive steps]
---------------------
A fixed step cannot serve every element: the roundoff ε_L/h is absolute, so
a tensor whose gradient is 1e-5 of the loss (a vanishing path, a final
state barely reaching the loss) gets it at 1e-5 of ITS scale. Where an
element's bound exceeds a target fraction of its tensor's scale
(``CENTRAL_TARGET`` 1e-6, ``RICHARDSON_TARGET`` 1e-10; never below the
rule's floor 64 eps G), the element is evaluated again at 10x, then 100x
its step (Richardson only 10x: its 4H must stay where the O(H⁴) expansion
holds), and the estimate with the smaller bound is kept, provided the two
estimates agree within their two bounds: a bound is honest only while its
expansion holds, and where the larger step's value falls outside the base
step's interval (saturated gates with 10x weights do this at 10H) that
expansion has broken down and the base estimate stays. Elements whose bound
is already small are never re-evaluated, so the common case costs nothing.
What no step can beat is the method's roundoff floor, reported as
``details["resolution"]`` (the bound's noise term at the base step): a
gradient below it is resolved only to that absolute level.

The evaluations come from :mod:`lstm_gradcheck.oracles.batched`: the loss of every
perturbed copy at GEMM speed. A float32 case is checked on its values
promoted to float64: the oracle's answer is the exact gradient at those inputs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from lstm_gradcheck.oracles.batched import (
    WORKERS,
    Base,
    base_copies,
    loss_magnitude,
    partial_losses_many,
    prepare,
    row_steps,
)
from lstm_gradcheck.reference.case import Case
from lstm_gradcheck.reference.config import LSTMConfig
from lstm_gradcheck.reference.layout import gradient_shapes, model_gradient_names

__all__ = [
    "EPS",
    "CENTRAL_STEP",
    "RICHARDSON_STEP",
    "RICHARDSON_MULTIPLES",
    "NOISE_ULPS",
    "FDResult",
    "element_steps",
    "central_estimate",
    "truncation_sample",
    "sample_top",
    "TRUNCATION_SAFETY",
    "richardson_estimate",
    "central_gradient",
    "richardson_gradient",
    "central_with_loss",
    "estimated_seconds",
    "fd_unfit",
    "ROUGHNESS_LIMIT",
    "roughness",
    "too_rough",
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
#: Note [Smooth enough for finite differences]: the largest even part of the gradient's change
#: over one step of every element, relative to each tensor's scale, that an FD oracle accepts.
ROUGHNESS_LIMIT = 1e-2
RICHARDSON_SAFETY = 2.0
#: Multiples of H at which Richardson evaluates (Note [Richardson's half step]).
RICHARDSON_MULTIPLES = (0.5, 1.0, 2.0, 4.0)
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
    f: Mapping[float, tuple[np.ndarray, np.ndarray]], h: np.ndarray, noise: float
) -> tuple[np.ndarray, np.ndarray]:
    """R(H) = (4 D(H) - D(2H)) / 3 and its bound (Note [Richardson's half step]); the
    bound is infinite where the differences do not behave as the expansion says.

    ``f[m] = (L(θ + m H e_i), L(θ - m H e_i))`` for m = 1/2, 1, 2, 4.
    """
    return richardson_bound({m: (f[m][0] - f[m][1]) / (2.0 * m * h) for m in RICHARDSON_MULTIPLES}, h, noise)


def richardson_bound(d: Mapping[float, np.ndarray], h: np.ndarray, noise: float) -> tuple[np.ndarray, np.ndarray]:
    """R(H), or R(H/2) where that is sharper, and its bound from the central differences
    ``d[m] = D(m H)`` (Note [Richardson's half step])."""
    roundoff = 1.65 * noise / h
    r_half = (4.0 * d[0.5] - d[1.0]) / 3.0
    r1 = (4.0 * d[1.0] - d[2.0]) / 3.0
    r2 = (4.0 * d[2.0] - d[4.0]) / 3.0
    from_near = (32.0 / 15.0) * np.maximum(np.abs(r1 - r_half) - 3.0 * roundoff, 0.0)
    truncation = np.maximum(RICHARDSON_SAFETY * np.abs(r2 - r1) / 15.0, from_near)
    err = truncation + roundoff
    # Where truncation dominates, R(H/2) is the sharper answer: a sixteenth of R(H)'s H⁴ term,
    # twice its roundoff (Note [Richardson's half step]).
    err_half = truncation / 16.0 + 2.0 * roundoff
    value = np.where(err_half < err, r_half, r1)
    err = np.minimum(err, err_half)
    # D(h) = ∂L + b h² + ...: successive differences grow 4x per doubling of the step. Each
    # difference's roundoff is at most (1/m + 1/m') ε_L / H; allow half the difference on top.
    eps_h = noise / h
    steps = (d[1.0] - d[0.5], d[2.0] - d[1.0], d[4.0] - d[2.0])
    slack = (3.0 * eps_h, 1.5 * eps_h, 0.75 * eps_h)
    broken = np.zeros(np.shape(r1), dtype=bool)
    for j in (0, 1):
        excess = np.abs(steps[j + 1] - 4.0 * steps[j]) - 4.0 * slack[j] - slack[j + 1]
        broken |= excess > 0.5 * np.abs(steps[j + 1])
    return value, np.where(broken, np.inf, err)


def _noise(base_magnitude: float, grads: Mapping[str, np.ndarray], arrays: Mapping[str, np.ndarray]) -> float:
    """ε_L = NOISE_ULPS * eps * (|loss terms| + sum |θ_i ∂L/∂θ_i|)."""
    sensitivity = sum(float(np.sum(np.abs(grads[n].ravel() * arrays[n].ravel()))) for n in grads)
    return NOISE_ULPS * EPS * (base_magnitude + sensitivity)


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


def truncation_sample(n: int, rng: np.random.Generator) -> np.ndarray:
    """The random part of the elements whose third difference bounds a tensor's truncation
    (drawn before any difference is known, so it runs with the tensor's first evaluations):
    TRUNCATION_SAMPLE_SHARE of the tensor but at least TRUNCATION_SAMPLE_MIN, less the
    TRUNCATION_SAMPLE_TOP places :func:`sample_top` fills; all of a small tensor."""
    size = min(n, max(TRUNCATION_SAMPLE_MIN, int(np.ceil(TRUNCATION_SAMPLE_SHARE * n))))
    if size == n:
        return np.arange(n)
    return np.sort(rng.choice(n, size=size - TRUNCATION_SAMPLE_TOP, replace=False))


def sample_top(d: np.ndarray, drawn: np.ndarray) -> np.ndarray:
    """The TRUNCATION_SAMPLE_TOP largest |d| not already ``drawn``: the rest of the sample."""
    order = np.argsort(-np.abs(d), kind="stable")
    return np.sort(order[~np.isin(order, drawn)][:TRUNCATION_SAMPLE_TOP])


def _third_requests(
    base: Base, todo: Mapping[str, tuple[np.ndarray, np.ndarray]]
) -> tuple[list[tuple[str, np.ndarray, np.ndarray]], dict[str, np.ndarray]]:
    """What the third differences of elements ``idx`` at steps ``h`` (``todo[name] = (idx, h)``)
    need beyond L(θ ± h): L(θ + 2h) at each, and the δ = 0 copies
    (:func:`lstm_gradcheck.oracles.batched.base_copies`), two requests per tensor in ``todo``'s order. Also,
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
    """Note [Adaptive steps]: retry elements whose bound exceeds ``target`` of their tensor's
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


def central_gradient(case: Case, names: Sequence[str] | None = None, *, base: Base | None = None) -> FDResult:
    """Central differences of every element of ``names`` (default: every parameter and x, h0,
    c0), with error bounds (Note [Central differences and their error], Note [Adaptive steps])."""
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
    noise = _noise(loss_magnitude(base), grads, arrays)
    errors = {
        name: TRUNCATION_SAFETY * third[name] * h**2 / 6.0 + (1.0 + 8.0 / 6.0) * noise / h for name, h in steps.items()
    }
    cost, retried = _refine(
        base, grads, errors, steps, lambda b, todo: _central_at(b, todo, noise), CENTRAL_TARGET,
        STEP_MULTIPLIERS["central"], {n: (1.0 + 8.0 / 6.0) * noise / h for n, h in steps.items()},
    )  # fmt: skip
    passes += cost
    return _result(base, grads, errors, passes, shapes, noise, retried, CENTRAL_STEP, CENTRAL_TARGET, (
        "central differences, step h_i = eps^(1/3) max(|θ_i|, 1) (x10, x100 where the bound exceeds "
        f"{CENTRAL_TARGET:g} of the tensor's scale); error = {TRUNCATION_SAFETY:g} x max sampled |third "
        "difference|/h³ x h_i²/6 + (1 + 8/6) ε_L/h_i (per element where retried)"
    ))  # fmt: skip


def richardson_gradient(case: Case, names: Sequence[str] | None = None, *, base: Base | None = None) -> FDResult:
    """Richardson-extrapolated central differences at H, 2H, 4H, with error bounds checked at
    H/2 (Note [Central differences and their error], Note [Richardson's half step],
    Note [Adaptive steps])."""
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
    noise = _noise(loss_magnitude(base), grads, arrays)
    broken = {}
    for name, h in steps.items():
        grads[name], errors[name] = richardson_bound(differences[name], h, noise)
        where = np.flatnonzero(~np.isfinite(errors[name]))
        if where.size:
            # Note [Richardson's half step]: no step >= H/2 is in the asymptotic regime here.
            broken[name] = (where, element_steps(arrays[name].reshape(-1)[where], CENTRAL_STEP))
    for name, (d, err, cost) in (_central_at(base, broken, noise) if broken else {}).items():
        grads[name][broken[name][0]], errors[name][broken[name][0]] = d, err
        passes += cost
    fallback = {name: int(where.size) for name, (where, _) in broken.items()}
    cost, retried = _refine(
        base, grads, errors, steps, lambda b, todo: _richardson_bounded(b, todo, noise), RICHARDSON_TARGET,
        STEP_MULTIPLIERS["richardson"], {n: 1.65 * noise / h for n, h in steps.items()},
    )  # fmt: skip
    passes += cost
    result = _result(base, grads, errors, passes, shapes, noise, retried, RICHARDSON_STEP, RICHARDSON_TARGET, (
        "Richardson extrapolation of central differences at H, 2H, 4H, H = eps^(1/5) max(|θ_i|, 1) (x10 "
        f"where the bound exceeds {RICHARDSON_TARGET:g} of the tensor's scale); error = max(2|R(2H) - R(H)|/15, "
        "(32/15) max(|R(H) - R(H/2)| - 4.95 ε_L/H, 0)) + 1.65 ε_L/H"
    ))  # fmt: skip
    result.details["central_fallback"] = fallback
    return result


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
_EVALUATIONS = {"fd": 2.2, "richardson": 8, "complex-step": 1}
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


def roughness(case: Case, c: float) -> tuple[str, float]:
    """The tensor whose exact gradient's even part moves most, relative to its scale, under
    a step ``c`` of every element, and that fraction (Note [Smooth enough for finite differences])."""
    from lstm_gradcheck.reference.lstm import grads  # noqa: PLC0415

    exact = case.astype("float64")
    arrays = exact.arrays()
    with np.errstate(all="ignore"):
        g0 = grads(exact)[1]
        rng = np.random.default_rng([0x5300, 0 if case.seed is None else int(case.seed) & 0xFFFFFFFF])
        delta = {
            n: element_steps(a, c).reshape(a.shape) * rng.choice([-1.0, 1.0], size=a.shape)
            for n, a in arrays.items()
            if n in g0
        }
        plus = grads(exact.with_arrays({n: a + delta[n] if n in delta else a for n, a in arrays.items()}))[1]
        minus = grads(exact.with_arrays({n: a - delta[n] if n in delta else a for n, a in arrays.items()}))[1]
    worst, fraction = "", 0.0
    for name, g in g0.items():
        scale = float(np.max(np.abs(g), initial=0.0))
        if scale == 0.0:
            continue
        even = float(np.max(np.abs((plus[name] + minus[name]) / 2.0 - g), initial=0.0))
        share = even / scale if np.isfinite(even) else math.inf
        if share > fraction or not worst:
            worst, fraction = name, share
    return worst, fraction


def too_rough(case: Case, method: str) -> str | None:
    """Why ``method`` ("fd" or "richardson") cannot bound its answer on ``case`` (None if it can)."""
    c = CENTRAL_STEP if method == "fd" else RICHARDSON_STEP
    name, fraction = roughness(case, c)
    if fraction <= ROUGHNESS_LIMIT:
        return None
    return (
        f"the loss is too rough at this oracle's step ({c:.1e} relative): a step that size changes d{name} "
        f"by {fraction:.2g} of its scale at second order, beyond the {ROUGHNESS_LIMIT:g} its error bound "
        "allows; use --oracle complex-step or torch"
    )


def fd_unfit(config: LSTMConfig) -> str | None:
    """Why the full central-difference check does not run by default on ``config`` (None if it does)."""
    return _unfit(config, "fd", "--oracle directional")


def richardson_unfit(config: LSTMConfig) -> str | None:
    """As :func:`fd_unfit` for the Richardson variant (twice the evaluations)."""
    return _unfit(config, "richardson", "--oracle directional")
