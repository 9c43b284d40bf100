"""Gate activations and their derivatives, written once for float32, float64 and complex128.

With ``E = exp(-s z)`` (s = 1 on the sigmoid rows i, f, o; s = 2 on the tanh rows g)
and ``r = 1 / (1 + E)``::

    sigmoid(z)  = r                    sigmoid'(z) = E * r^2      (s = 1)
    tanh'(z)    = 4 E r^2 = sech^2(z)  tanh(z) by np.tanh        (s = 2)

The exponent is clamped at 0.9 ln(max float) (638 in float64, 79 in float32), so E stays
finite and E r^2 is never inf * 0; that changes only values below 1e-277 (float64) or
2e-35 (float32). The formulas are analytic: the complex-step oracle runs them in
complex128, unclamped (its perturbations are tiny and real parts moderate).

Note [Accurate saturated gates]
-------------------------------
Each of these is accurate to a few ulps relative to its own value for every z: there is
no 1 - x cancellation anywhere. The textbook 0.5 + 0.5 tanh(z/2) and s (1 - s) are only
absolutely accurate near 0 or 1: sigmoid(-20) is exactly 0 in float32, and a forget gate
driven by forget_bias = -20 would then zero dc0 entirely.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from lstm_gradcheck.reference.layout import gate_row_vector, gate_slice

__all__ = ["GateConstants", "gate_constants", "activate_gates", "sigmoid", "sigmoid_and_grad", "tanh_and_grad"]


class GateConstants:
    """Per-row (4H,) constants of Note [Accurate saturated gates]: ``neg_s = -s``
    (-1 on the sigmoid rows i, f, o; -2 on the tanh rows g), folded into the
    forward's weights and biases so that one GEMM yields ``e = -s z``."""

    __slots__ = ("neg_s", "max_exponent", "g_rows", "clamp")

    def __init__(self, hidden_size: int, dtype: np.dtype) -> None:
        real = np.empty(0, dtype=dtype).real.dtype
        self.max_exponent = _max_exponent(real)
        self.g_rows = gate_slice("g", hidden_size)
        self.clamp = np.dtype(dtype).kind != "c"  # complex step: no clamp (see the Note)
        self.neg_s = gate_row_vector({"i": -1.0, "f": -1.0, "g": -2.0, "o": -1.0}, hidden_size, real)
        self.neg_s.setflags(write=False)


@lru_cache(maxsize=64)
def gate_constants(hidden_size: int, dtype: np.dtype) -> GateConstants:
    return GateConstants(hidden_size, np.dtype(dtype))


def _max_exponent(dtype: np.dtype) -> float:
    """Largest exponent kept: 0.9 ln(max float), so E and E r^2 stay finite (638 in float64, 79 in float32)."""
    return 0.9 * float(np.log(np.finfo(dtype).max))


def activate_gates(e: np.ndarray, consts: GateConstants, out: np.ndarray) -> np.ndarray:
    """Gate activations and their derivatives from ``e = -s z`` (..., 4H) (see the Note).

    Writes ``out = [sigmoid(z_i), sigmoid(z_f), tanh(z_g), sigmoid(z_o)]`` and
    overwrites ``e`` with the derivative of each activation wrt its own
    pre-activation (``E r^2`` on the sigmoid rows, ``4 E r^2`` on the tanh rows),
    which it returns.
    """
    # Called once per step: the g rows come from a slice made once per (H, dtype), not gate_blocks.
    e_g, out_g = e[..., consts.g_rows], out[..., consts.g_rows]
    tanh_g = np.multiply(e_g, -0.5)  # z_g, before e is clamped and exponentiated
    # Clamping is rarely needed: a read-only max is four times cheaper than np.minimum.
    if consts.clamp and e.max() > consts.max_exponent:
        np.minimum(e, consts.max_exponent, out=e)
    np.exp(e, out=e)  # E
    np.add(e, 1.0, out=out)
    np.divide(1.0, out, out=out)  # r: the sigmoid rows are done (divide: twice np.reciprocal's speed here)

    # Explicit ufunc calls, not a *= b: see Note [Speed] in reference/layer.py.
    np.multiply(e, out, out=e)
    np.multiply(e, out, out=e)  # E r^2
    np.multiply(e_g, 4.0, out=e_g)  # a view of e's tanh rows

    np.tanh(tanh_g, out=out_g)
    return e


def sigmoid_and_grad(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """sigmoid(z) and sigmoid'(z), both accurate to a few ulps relative (see the Note)."""
    e = -z if np.iscomplexobj(z) else np.minimum(-z, _max_exponent(z.dtype))
    e = np.exp(e)
    r = 1.0 / (1.0 + e)
    return r, e * r * r


def sigmoid(z: np.ndarray) -> np.ndarray:
    """Logistic sigmoid, overflow-free and relatively accurate (see the Note)."""
    return sigmoid_and_grad(z)[0]


def tanh_and_grad(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """tanh(z) and tanh'(z) = 4 E r^2 (E = exp(-2|z|), r = 1 / (1 + E)): no 1 - tanh^2 cancellation
    where tanh saturates (see the Note)."""
    e = np.exp(-2.0 * np.abs(z))
    r = 1.0 / (1.0 + e)
    return np.tanh(z), 4.0 * e * r * r
