"""Gate activations and their derivatives, written once for float32, float64 and complex128.

Note [Accurate saturated gates]
-------------------------------
With ``e = exp(-|z|)`` and ``r = 1 / (1 + e)``::

    sigmoid(z)  = r      (z >= 0)      e * r   (z < 0)
    sigmoid'(z) = e * r^2              (= sigmoid(z) * sigmoid(-z), symmetric)
    tanh'(z)    = 4 * e2 * r2^2        with e2 = exp(-2|z|), r2 = 1 / (1 + e2)

Each is accurate to a few ulps *relative* to its own value for every z. The
textbook forms lose that where gates saturate: ``0.5 + 0.5 * tanh(z / 2)`` and
``s * (1 - s)`` return an absolute-error-only value for a gate near 0 or 1
(sigmoid(-20) becomes exactly 0 in float32), and a forget gate driven by
``forget_bias = -20`` then zeroes ``dc0`` entirely. ``exp(-|z|)`` never
overflows. For complex z (complex-step oracle) ``|z|`` is replaced by
``z * sign(Re z)``, which is analytic near every point the oracle visits.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from reference.layout import gate_blocks, gate_row_vector

__all__ = ["GateConstants", "gate_constants", "activate_gates", "sigmoid", "sigmoid_and_grad"]


class GateConstants:
    """Per-row (4H,) constants: ``s`` scales |z| in the exponent (1 on the sigmoid
    rows i, f, o; 2 on the tanh rows g) and ``d`` the derivative e * r^2 (1 or 4)."""

    __slots__ = ("s", "d", "hidden_size")

    def __init__(self, hidden_size: int, dtype: np.dtype) -> None:
        real = np.empty(0, dtype=dtype).real.dtype
        self.hidden_size = hidden_size
        self.s = gate_row_vector({"i": 1.0, "f": 1.0, "g": 2.0, "o": 1.0}, hidden_size, real)
        self.d = gate_row_vector({"i": 1.0, "f": 1.0, "g": 4.0, "o": 1.0}, hidden_size, real)
        self.s.setflags(write=False)
        self.d.setflags(write=False)


@lru_cache(maxsize=64)
def gate_constants(hidden_size: int, dtype: np.dtype) -> GateConstants:
    return GateConstants(hidden_size, np.dtype(dtype))


def _minus_abs(z: np.ndarray, out: np.ndarray) -> np.ndarray:
    """out = -|z| (real) or -z * sign(Re z) (complex, analytic)."""
    if np.iscomplexobj(z):
        np.copyto(out, np.where(z.real >= 0, -z, z))
    else:
        np.abs(z, out=out)
        np.negative(out, out=out)
    return out


def activate_gates(
    z: np.ndarray, consts: GateConstants, out: np.ndarray, dout: np.ndarray, scratch: np.ndarray
) -> None:
    """Gate activations of pre-activations ``z`` (..., 4H) and their derivatives.

    Writes ``out = [sigmoid(z_i), sigmoid(z_f), tanh(z_g), sigmoid(z_o)]`` and
    ``dout`` = the derivative of each activation wrt its own pre-activation
    (Note [Accurate saturated gates]). ``scratch`` has the shape of ``z``;
    ``z`` itself is left unchanged.
    """
    e = _minus_abs(z, scratch)
    e *= consts.s
    np.exp(e, out=e)
    np.add(e, 1.0, out=out)
    np.reciprocal(out, out=out)  # out = r
    np.multiply(e, out, out=dout)  # dout = e * r = sigmoid(-|z|)
    np.multiply(dout, out, out=e)  # e = e * r^2
    np.copyto(out, dout, where=z.real < 0)
    np.multiply(e, consts.d, out=dout)
    hidden = consts.hidden_size
    np.tanh(gate_blocks(z, hidden)[2], out=gate_blocks(out, hidden)[2])


def sigmoid_and_grad(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """sigmoid(z) and sigmoid'(z), both accurate to a few ulps relative (see the Note)."""
    e = np.exp(_minus_abs(z, np.empty_like(z)))
    r = 1.0 / (1.0 + e)
    value = np.where(z.real >= 0, r, e * r)
    return value, e * r * r


def sigmoid(z: np.ndarray) -> np.ndarray:
    """Logistic sigmoid, overflow-free and relatively accurate (see the Note)."""
    return sigmoid_and_grad(z)[0]
