"""Finite-difference estimates of one element's derivative, each with a bound on its error.

Note [Difference bounds]
------------------------
Every difference quotient here is returned with a bound, truncation plus roundoff, and the
tolerance rule adds four times that bound to what it allows: finite-difference noise must
never read as a bug. Roundoff comes from ε_L = NOISE_ULPS eps M, M the size of the loss's
terms plus sum |θ_i ∂L/∂θ_i| (what rounding every input by eps moves the loss by); truncation
from the method's own higher differences. The steps are h_i = c max(|θ_i|, 1): relative for
large θ, absolute below 1, where the gates vary on their own O(1) scale.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

__all__ = [
    "EPS",
    "NOISE_ULPS",
    "CENTRAL_STEP",
    "RICHARDSON_STEP",
    "RICHARDSON_MULTIPLES",
    "RICHARDSON_SAFETY",
    "CENTRAL_ROUNDOFF",
    "RICHARDSON_ROUNDOFF",
    "TRUNCATION_SAFETY",
    "element_steps",
    "loss_noise",
    "central_estimate",
    "richardson_estimate",
    "richardson_bound",
    "truncation_sample",
    "sample_top",
]

EPS = float(np.finfo(np.float64).eps)
#: ε_L = NOISE_ULPS * eps * M bounds the roundoff of one loss evaluation (Note [Difference bounds]).
NOISE_ULPS = 4.0
#: c = eps^(1/3) balances a central difference's truncation (∝ h²) against its roundoff (∝ 1/h).
CENTRAL_STEP = EPS ** (1.0 / 3.0)
#: H = eps^(1/5), the balance point of an O(H⁴) method.
RICHARDSON_STEP = EPS ** (1.0 / 5.0)
#: Multiples of H at which Richardson evaluates (:func:`richardson_bound`).
RICHARDSON_MULTIPLES = (0.5, 1.0, 2.0, 4.0)
RICHARDSON_SAFETY = 2.0
#: Each estimate's roundoff in units of ε_L / h: D's ε_L/h plus its truncation estimate's 8/6;
#: R(H)'s (4/H + 1/(2H))/3 = 1.5, plus 0.15 for its error estimate's own noise.
CENTRAL_ROUNDOFF = 1.0 + 8.0 / 6.0
RICHARDSON_ROUNDOFF = 1.65
#: The full central check bounds a tensor's truncation by this many times its sample's largest |Δ3| / h³.
TRUNCATION_SAFETY = 10.0
#: The sample (:func:`truncation_sample`): this share of a tensor's elements, at least MIN, plus the TOP largest.
TRUNCATION_SAMPLE_SHARE = 0.1
TRUNCATION_SAMPLE_MIN = 16
TRUNCATION_SAMPLE_TOP = 8


def element_steps(values: np.ndarray, c: float) -> np.ndarray:
    """``h_i = c * max(|θ_i|, 1)`` for every element of ``values`` (flattened)."""
    return c * np.maximum(np.abs(np.ravel(values)), 1.0)


def loss_noise(magnitude: float, grads: Mapping[str, np.ndarray], arrays: Mapping[str, np.ndarray]) -> float:
    """ε_L = NOISE_ULPS eps (M + sum |θ_i ∂L/∂θ_i|), the roundoff of one loss evaluation: M is the
    size of the loss's terms (:func:`lstm_gradcheck.reference.head.loss_magnitude`), the sum over
    the tensors of ``grads`` (the gradient, or its estimate) present in ``arrays`` (θ)."""
    sensitivity = sum(
        float(np.sum(np.abs(np.asarray(g, dtype=np.float64).ravel() * arrays[n].ravel())))
        for n, g in grads.items()
        if n in arrays
    )
    return NOISE_ULPS * EPS * (magnitude + sensitivity)


def central_estimate(
    f_plus: np.ndarray, f_minus: np.ndarray, f_2h: np.ndarray, f_0: np.ndarray, h: np.ndarray, noise: float
) -> tuple[np.ndarray, np.ndarray]:
    """The central difference and its bound::

        D = (L(θ + h) - L(θ - h)) / 2h = ∂L + (h²/6) L''' + O(h⁴)
        Δ3 = L(θ + 2h) - 3 L(θ + h) + 3 L(θ) - L(θ - h) = h³ L''' + O(h⁴)
        error = |Δ3| / 6h + (1 + 8/6) ε_L / h

    (D's roundoff is ε_L / h, the third difference's 8 ε_L, over 6h)."""
    d = (f_plus - f_minus) / (2.0 * h)
    third = f_2h - 3.0 * f_plus + 3.0 * f_0 - f_minus
    return d, np.abs(third) / (6.0 * h) + CENTRAL_ROUNDOFF * noise / h


def richardson_estimate(
    f: Mapping[float, tuple[np.ndarray, np.ndarray]], h: np.ndarray, noise: float
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`richardson_bound` from ``f[m] = (L(θ + m H e_i), L(θ - m H e_i))``, m = 1/2, 1, 2, 4."""
    return richardson_bound({m: (f[m][0] - f[m][1]) / (2.0 * m * h) for m in RICHARDSON_MULTIPLES}, h, noise)


def richardson_bound(d: Mapping[float, np.ndarray], h: np.ndarray, noise: float) -> tuple[np.ndarray, np.ndarray]:
    """Richardson extrapolation and its bound from the central differences ``d[m] = D(m H)``::

        R(mH) = (4 D(mH) - D(2mH)) / 3 = ∂L + b (mH)⁴ + O(H⁶)
        truncation(R(H)) = max(2 |R(2H) - R(H)| / 15,  (32/15) max(|R(H) - R(H/2)| - 4.95 ε_L/H, 0))
        error(R(H))   = truncation + 1.65 ε_L / H
        error(R(H/2)) = truncation / 16 + 3.3 ε_L / H

    The far side (2H, 4H) can cancel where the expansion fails there, so the near side (H/2)
    bounds it too; the answer is whichever of R(H), R(H/2) has the smaller bound. Where the
    differences themselves stop growing 4x per doubling of the step (more than half off,
    beyond roundoff), no step is asymptotic: the bound is infinite and the caller falls back
    to a central difference at the small step.
    """
    roundoff = RICHARDSON_ROUNDOFF * noise / h
    r_half = (4.0 * d[0.5] - d[1.0]) / 3.0
    r1 = (4.0 * d[1.0] - d[2.0]) / 3.0
    r2 = (4.0 * d[2.0] - d[4.0]) / 3.0
    from_near = (32.0 / 15.0) * np.maximum(np.abs(r1 - r_half) - 3.0 * roundoff, 0.0)
    truncation = np.maximum(RICHARDSON_SAFETY * np.abs(r2 - r1) / 15.0, from_near)
    err = truncation + roundoff
    err_half = truncation / 16.0 + 2.0 * roundoff
    value = np.where(err_half < err, r_half, r1)
    err = np.minimum(err, err_half)
    # Each successive difference's roundoff is at most (1/m + 1/m') ε_L / H; half the difference on top.
    eps_h = noise / h
    steps = (d[1.0] - d[0.5], d[2.0] - d[1.0], d[4.0] - d[2.0])
    slack = (3.0 * eps_h, 1.5 * eps_h, 0.75 * eps_h)
    broken = np.zeros(np.shape(r1), dtype=bool)
    for j in (0, 1):
        excess = np.abs(steps[j + 1] - 4.0 * steps[j]) - 4.0 * slack[j] - slack[j + 1]
        broken |= excess > 0.5 * np.abs(steps[j + 1])
    return value, np.where(broken, np.inf, err)


def truncation_sample(n: int, rng: np.random.Generator) -> np.ndarray:
    """The random part of the elements whose third difference bounds a tensor's truncation in the
    full central check (drawn before any difference is known, so it runs with the first
    evaluations): TRUNCATION_SAMPLE_SHARE of the tensor but at least TRUNCATION_SAMPLE_MIN, less
    the TRUNCATION_SAMPLE_TOP places :func:`sample_top` fills; all of a small tensor."""
    size = min(n, max(TRUNCATION_SAMPLE_MIN, int(np.ceil(TRUNCATION_SAMPLE_SHARE * n))))
    if size == n:
        return np.arange(n)
    return np.sort(rng.choice(n, size=size - TRUNCATION_SAMPLE_TOP, replace=False))


def sample_top(d: np.ndarray, drawn: np.ndarray) -> np.ndarray:
    """The TRUNCATION_SAMPLE_TOP largest |d| not already ``drawn``: the rest of the sample."""
    order = np.argsort(-np.abs(d), kind="stable")
    return np.sort(order[~np.isin(order, drawn)][:TRUNCATION_SAMPLE_TOP])
