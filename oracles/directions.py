"""Random directions and moved cases for the judging oracles (``taylor``, ``directional``).

A direction ``v`` is a dict gradient name -> array (the tensors it moves).
Entries are ``±U(0.5, 1.5) * max(|θ_i|, 1)``: random signs and magnitudes,
never all ones (an all-ones direction hides errors that cancel across
outputs), never near zero (so one wrong element always shows in ``⟨g, v⟩``),
and on each element's own scale (as the FD step rule ``h_i = c max(|θ_i|, 1)``).
Every direction comes from a private generator seeded by the case's seed, the
oracle and the probe, never from global state.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping

import numpy as np

from lstm_gradcheck.oracles.compare import compare_tensor
from lstm_gradcheck.oracles.fd_bounds import loss_noise
from lstm_gradcheck.oracles.finite_difference import central_gradient, central_with_loss
from lstm_gradcheck.oracles.judging import JudgingContext
from lstm_gradcheck.oracles.records import TensorResult
from lstm_gradcheck.oracles.tolerance import Tolerance
from lstm_gradcheck.oracles.types import LossFn
from lstm_gradcheck.reference.case import Case
from lstm_gradcheck.reference.layout import STATE_INPUTS, gradient_shapes
from lstm_gradcheck.reference.lstm import forward

__all__ = [
    "Direction",
    "random_direction",
    "inner",
    "moved",
    "judging_noise",
    "loss_at",
    "located_check",
    "LOOP_LIMIT",
]

Direction = dict[str, np.ndarray]

#: The full check through a foreign loss function runs 3n + 1 loss calls; above
#: this many elements the failing probe's gate is the finest location given.
LOOP_LIMIT = 4096


def _rng(case: Case, oracle: str, probe: str) -> np.random.Generator:
    seed = 0 if case.seed is None else int(case.seed) & 0xFFFFFFFF
    return np.random.default_rng([zlib.crc32(oracle.encode()), seed, zlib.crc32(probe.encode())])


def random_direction(
    case: Case, oracle: str, probe: str, names: tuple[str, ...], rows: slice | None = None
) -> Direction:
    """A random direction over tensors ``names`` (see the module docstring).

    ``rows`` restricts it to rows ``rows`` of the first axis (a gate block of
    a 4H-row tensor, from :func:`lstm_gradcheck.reference.layout.gate_slice`).
    """
    rng = _rng(case, oracle, probe)
    arrays = case.arrays()
    out: Direction = {}
    for name in names:
        a = np.asarray(arrays[name], dtype=np.float64)
        v = rng.choice([-1.0, 1.0], size=a.shape) * rng.uniform(0.5, 1.5, size=a.shape) * np.maximum(np.abs(a), 1.0)
        if rows is not None:
            mask = np.zeros(a.shape, dtype=bool)
            mask[rows] = True
            v = np.where(mask, v, 0.0)
        out[name] = v
    return out


def inner(grads: Mapping[str, np.ndarray], v: Direction) -> float:
    """⟨g, v⟩ over the tensors of ``v``."""
    return float(sum(np.sum(np.asarray(grads[n], dtype=np.float64) * a) for n, a in v.items()))


def moved(case: Case, v: Direction, h: float) -> Case:
    """The float64 case at ``θ + h v``."""
    arrays = case.arrays()
    return case.with_arrays({n: arrays[n] + h * a for n, a in v.items()})


def judging_noise(context: JudgingContext, loss0: float, grads: Mapping[str, np.ndarray]) -> float:
    """ε_L of one loss evaluation near the case (:func:`lstm_gradcheck.oracles.fd_bounds.loss_noise`),
    the loss's terms' size from the context (at least |L(θ)| of the loss being differenced)."""
    return loss_noise(max(abs(loss0), context.magnitude), grads, context.exact_case.arrays())


def located_check(
    case: Case,
    name: str,
    analytic: np.ndarray,
    tolerance: Tolerance,
    oracle: str,
    loss_fn: LossFn | None = None,
) -> tuple[TensorResult | None, int]:
    """The full central-difference check of one tensor, to locate a failing probe's element.

    For the contract's model (``loss_fn`` None) it runs batched (:func:`central_gradient`);
    through another loss function, one call per evaluation, up to :data:`LOOP_LIMIT`
    elements (else ``(None, 0)``). Returns the record (labelled ``oracle``) and the
    number of forward evaluations.
    """
    exact = case.astype("float64")
    size = int(np.prod(gradient_shapes(case.config)[name]))
    if loss_fn is None:
        fd = central_gradient(exact, [name])
    elif size <= LOOP_LIMIT:
        fd = central_with_loss(exact, name, loss_fn)
    else:
        return None, 0
    record = compare_tensor(name, analytic, fd.grads[name], tolerance, case.config, oracle, fd.errors[name])
    return record, fd.forward_passes


def loss_at(case: Case, loss_fn: LossFn | None) -> float:
    """The loss of the float64 ``case`` through ``loss_fn`` (None: the contract's model, by the reference)."""
    return float(forward(case)[0].loss if loss_fn is None else loss_fn(case))


def tensor_names(case: Case) -> tuple[str, ...]:
    """Every gradient name of the case: parameters, then x, h0, c0."""
    return (*case.params, *STATE_INPUTS)
