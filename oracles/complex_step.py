"""Oracle ``complex-step``: ∂L/∂θ_i = Im L(θ + i h e_i) / h for every element, no cancellation.

For a loss analytic in each input (the matmuls, tanh, sigmoid and the loss heads are)::

    L(θ + i h e_i) = L(θ) - h²/2 L''_i + O(h⁴)  +  i (h ∂L/∂θ_i - h³/6 L'''_i + O(h⁵))

so the imaginary part over h is the derivative with truncation h²/6 |L'''_i| and no
subtraction at all.

Note [Complex step]
-------------------
With h = 1e-20 max(|θ_i|, 1) the truncation is below 1e-38 relative, so the answer is as
accurate as the forward itself: the oracle gives no error estimate of its own and the rule's
rtol (far above its error) judges. The forward runs in complex128 through the batched copies
(Note [Complex gates] in :mod:`lstm_gradcheck.oracles.batched_gates`), one copy per element.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from lstm_gradcheck.oracles.batched import partial_losses_many
from lstm_gradcheck.oracles.batched_forward import Base, prepare
from lstm_gradcheck.oracles.cost import complex_step_costly
from lstm_gradcheck.oracles.fd_bounds import element_steps
from lstm_gradcheck.oracles.judging import JudgingContext
from lstm_gradcheck.oracles.types import FULL, FullGradient, OracleSpec
from lstm_gradcheck.reference.case import Case
from lstm_gradcheck.reference.layout import gradient_shapes, model_gradient_names

__all__ = ["COMPLEX_STEP", "complex_step_gradient", "COMPLEX"]

#: c in h_i = c * max(|θ_i|, 1): any tiny h works; this keeps h² terms below 1e-38.
COMPLEX_STEP = 1e-20


def complex_step_gradient(case: Case, names: Sequence[str] | None = None, *, base: Base | None = None) -> FullGradient:
    """``Im L(θ + i h_i e_i) / h_i`` for every element of ``names`` (default all), in complex128;
    no error estimate (Note [Complex step]); ``forward_passes`` counts one per element."""
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
    return FullGradient(base.loss, grads, passes, None, details)


def _complex_step(context: JudgingContext) -> FullGradient:
    return complex_step_gradient(context.exact_case)


COMPLEX = OracleSpec(
    "complex-step",
    "Im L(θ + i h e_i)/h for every element, complex128 forward, no cancellation",
    kind=FULL,
    precedence=2,
    costly=complex_step_costly,
    gradient=_complex_step,
)
