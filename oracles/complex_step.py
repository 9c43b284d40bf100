"""Oracle ``complex-step``: ∂L/∂θ_i = Im L(θ + i h e_i) / h, every element, no cancellation.

Note [Complex step]
-------------------
For a loss that is analytic in each input (the model's matmuls, tanh,
sigmoid and the loss heads are; see :mod:`lstm_gradcheck.reference.losses` and Note
[Complex gates] in :mod:`lstm_gradcheck.oracles.batched`)::

    L(θ + i h e_i) = L(θ) - h²/2 L''_i + O(h⁴)  +  i (h ∂L/∂θ_i - h³/6 L'''_i + O(h⁵))

so ``Im L(θ + i h e_i) / h`` is the derivative with a truncation error of
``h²/6 |L'''_i|`` and no subtraction at all: with ``h = 1e-20 * max(|θ_i|, 1)``
the truncation is below 1e-38 relative and the result is as accurate as
the forward pass itself (a few eps relative to the gradient's scale). The
error estimate is therefore left to the tolerance rule's ``rtol * scale``
(7.3e-11 of the scale in float64, far above this oracle's own error) and
``FullGradient.errors`` is None.

The forward runs in complex128 through :func:`lstm_gradcheck.oracles.batched.partial_losses_many`:
P copies (one per element), all at GEMM speed.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from lstm_gradcheck.oracles.batched import Base, partial_losses_many, prepare
from lstm_gradcheck.oracles.finite_difference import FDResult, element_steps, estimated_seconds
from lstm_gradcheck.reference.case import Case
from lstm_gradcheck.reference.config import LSTMConfig
from lstm_gradcheck.reference.layout import gradient_shapes, model_gradient_names

__all__ = ["COMPLEX_STEP", "complex_step_gradient", "complex_step_unfit", "MAX_SECONDS"]

#: c in h_i = c * max(|θ_i|, 1): any tiny h works; this keeps h² terms below 1e-38.
COMPLEX_STEP = 1e-20
MAX_SECONDS = 20.0


def complex_step_gradient(case: Case, names: Sequence[str] | None = None, *, base: Base | None = None) -> FDResult:
    """``Im L(θ + i h_i e_i) / h_i`` for every element of ``names`` (default all), in complex128.

    Returns an :class:`~lstm_gradcheck.oracles.finite_difference.FDResult` whose ``errors`` is
    empty (Note [Complex step]); ``forward_passes`` counts one per element.
    """
    base = prepare(case) if base is None else base
    arrays = base.case.arrays()
    shapes = gradient_shapes(base.config)
    every = model_gradient_names(base.config)
    chosen = list(every) if names is None else [n for n in every if n in names]
    steps = {name: element_steps(arrays[name], COMPLEX_STEP) for name in chosen}
    values = partial_losses_many(base, [(name, np.arange(h.size), 1j * h) for name, h in steps.items()])
    grads = {name: (f.imag / steps[name]).reshape(shapes[name]) for name, f in zip(chosen, values, strict=True)}
    passes = 1 + sum(h.size for h in steps.values())

    details = {
        "method": "complex step Im L(θ + i h e_i)/h, h_i = 1e-20 max(|θ_i|, 1), complex128",
        "step": COMPLEX_STEP,
    }
    return FDResult(base.loss, grads, {}, passes, details)


def complex_step_unfit(config: LSTMConfig) -> str | None:
    """Why the full complex-step check does not run by default on ``config`` (None if it does)."""
    seconds = estimated_seconds(config, "complex-step")
    if seconds <= MAX_SECONDS:
        return None
    return (
        f"the full complex-step check would take about {seconds:.0f} s (limit {MAX_SECONDS:g} s); "
        "--oracle directional checks cases of any size"
    )
