"""Gate activations and their derivatives, written once for float32, float64 and complex128.

Note [Accurate saturated gates]
-------------------------------
With ``E = exp(-s z)`` (s = 1 on the sigmoid rows i, f, o; s = 2 on the tanh
rows g) and ``r = 1 / (1 + E)``::

    sigmoid(z)  = r                    sigmoid'(z) = E * r^2      (s = 1)
    tanh'(z)    = 4 E r^2 = sech^2(z)  tanh(z) by np.tanh        (s = 2)

Each is accurate to a few ulps *relative* to its own value for every z: no
``1 - x`` cancellation anywhere. The textbook forms lose that where gates
saturate: ``0.5 + 0.5 * tanh(z / 2)`` and ``s * (1 - s)`` give only absolute
accuracy for a gate near 0 or 1 (sigmoid(-20) becomes exactly 0 in float32,
and a forget gate driven by ``forget_bias = -20`` then zeroes ``dc0``
entirely). The exponent is clamped at 0.9 ln(max float) (638 in float64, 79 in float32)
so that ``E`` stays finite and ``E * r^2`` never becomes ``inf * 0``; that
changes only values below 1e-277 (float64) or 2e-35 (float32).
The formulas are analytic, so the complex-step oracle runs them in complex128
(where the clamp is skipped: complex-step perturbations are tiny and real
parts moderate).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from reference.layout import gate_blocks, gate_row_vector

__all__ = ["GateConstants", "gate_constants", "activate_gates", "sigmoid", "sigmoid_and_grad"]


class GateConstants:
    """Per-row (4H,) constants: ``neg_s = -s`` scales z in the exponent (-1 on the
    sigmoid rows i, f, o; -2 on the tanh rows g) and ``d`` multiplies E r^2 (1 or 4)."""

    __slots__ = ("neg_s", "d", "hidden_size", "max_exponent")

    def __init__(self, hidden_size: int, dtype: np.dtype) -> None:
        real = np.empty(0, dtype=dtype).real.dtype
        self.hidden_size = hidden_size
        self.max_exponent = _max_exponent(real)
        self.neg_s = gate_row_vector({"i": -1.0, "f": -1.0, "g": -2.0, "o": -1.0}, hidden_size, real)
        self.d = gate_row_vector({"i": 1.0, "f": 1.0, "g": 4.0, "o": 1.0}, hidden_size, real)
        self.neg_s.setflags(write=False)
        self.d.setflags(write=False)


@lru_cache(maxsize=64)
def gate_constants(hidden_size: int, dtype: np.dtype) -> GateConstants:
    return GateConstants(hidden_size, np.dtype(dtype))


def _max_exponent(dtype: np.dtype) -> float:
    """Largest exponent kept: 0.9 ln(max float), so E and E r^2 stay finite (638 in float64, 79 in float32)."""
    return 0.9 * float(np.log(np.finfo(dtype).max))


def activate_gates(
    z: np.ndarray, consts: GateConstants, out: np.ndarray, dout: np.ndarray, scratch: np.ndarray
) -> None:
    """Gate activations of pre-activations ``z`` (..., 4H) and their derivatives.

    Writes ``out = [sigmoid(z_i), sigmoid(z_f), tanh(z_g), sigmoid(z_o)]`` and
    ``dout`` = the derivative of each activation wrt its own pre-activation
    (Note [Accurate saturated gates]). ``scratch`` has the shape of ``z``;
    ``z`` itself is left unchanged.
    """
    e = np.multiply(z, consts.neg_s, out=scratch)
    if not np.iscomplexobj(e):
        np.minimum(e, consts.max_exponent, out=e)
    np.exp(e, out=e)  # E
    np.add(e, 1.0, out=out)
    np.reciprocal(out, out=out)  # r: the sigmoid rows are done
    np.multiply(e, out, out=dout)
    dout *= out
    dout *= consts.d  # d E r^2
    hidden = consts.hidden_size
    np.tanh(gate_blocks(z, hidden)[2], out=gate_blocks(out, hidden)[2])


def sigmoid_and_grad(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """sigmoid(z) and sigmoid'(z), both accurate to a few ulps relative (see the Note)."""
    e = -z if np.iscomplexobj(z) else np.minimum(-z, _max_exponent(z.dtype))
    e = np.exp(e)
    r = 1.0 / (1.0 + e)
    return r, e * r * r


def sigmoid(z: np.ndarray) -> np.ndarray:
    """Logistic sigmoid, overflow-free and relatively accurate (see the Note)."""
    return sigmoid_and_grad(z)[0]
