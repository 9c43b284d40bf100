"""Whether a case's loss is smooth at a finite-difference oracle's step (else the oracle abstains).

Note [Smooth enough for finite differences]
-------------------------------------------
Every difference bound rests on the loss being a low-order polynomial at the step's scale.
A long identity-cell recurrence with large weights can be chaotic down to steps of 1e-5 while
its exact gradient is well defined, and then no difference quotient approximates it and every
bound built from them can be fooled. So the exact gradient is taken at θ ± one step of every
element: where its even part (the expansion's second-order term) exceeds ROUGHNESS_LIMIT of a
tensor's scale, the oracle abstains with that figure rather than give an answer it cannot bound.
"""

from __future__ import annotations

import math

import numpy as np

from lstm_gradcheck.oracles.fd_bounds import CENTRAL_STEP, RICHARDSON_STEP, element_steps
from lstm_gradcheck.oracles.judging import JudgingContext
from lstm_gradcheck.reference.lstm import grads

__all__ = ["ROUGHNESS_LIMIT", "roughness", "too_rough"]

#: The largest even part of the gradient's change over one step, relative to each tensor's scale.
ROUGHNESS_LIMIT = 1e-2


def roughness(context: JudgingContext, c: float) -> tuple[str, float]:
    """The tensor whose exact gradient's even part moves most, relative to its scale, under a step
    ``c max(|θ_i|, 1)`` of every element (random signs seeded from the case), and that fraction."""
    exact = context.exact_case
    arrays = exact.arrays()
    g0 = context.exact_grads
    with np.errstate(all="ignore"):
        rng = np.random.default_rng([0x5300, 0 if exact.seed is None else int(exact.seed) & 0xFFFFFFFF])
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


def too_rough(context: JudgingContext, method: str) -> str | None:
    """Why ``method`` ("fd" or "richardson") cannot bound its answer on the case (None if it can)."""
    c = CENTRAL_STEP if method == "fd" else RICHARDSON_STEP
    name, fraction = roughness(context, c)
    if fraction <= ROUGHNESS_LIMIT:
        return None
    return (
        f"the loss is too rough at this oracle's step ({c:.1e} relative): a step that size changes d{name} "
        f"by {fraction:.2g} of its scale at second order, beyond the {ROUGHNESS_LIMIT:g} its error bound "
        "allows; use --oracle complex-step or torch"
    )
