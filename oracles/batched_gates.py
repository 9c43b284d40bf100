"""The gate arithmetic of the batched forward: real gates by division, complex gates from real parts.

Note [Real gates]
-----------------
In float64 the sigmoid gates are never formed: the GEMM yields -z on their rows, one
pass makes d = 1 + exp(-z), and the cell update divides by d where it would multiply by
sigmoid(z) = 1/d (c_t = c_{t-1}/d_f + g/d_i, h_t = tanh(c_t)/d_o): numpy's float64 divide
is vectorised where reciprocal is not, each gate rounds once, and exp overflowing to inf
makes a gate exactly 0, as 1 / (1 + exp(-z)) does.

Note [Complex gates]
--------------------
The complex step runs this forward in complex128, where numpy's tanh and exp are slow:
tanh(a + ib) and sigmoid(a + ib) are evaluated from real operations on a and b (exact
identities, not linearizations; see :func:`complex_tanh`), with sin, cos, tan of |b| < 1e-3
by their series to full double precision. The reference's activate_gates also forms the
derivatives, which a forward does not need.

Note [Tiny imaginary parts]
---------------------------
Below |b| = TINY_IMAGINARY = 1e-8 those series are exactly 1, b and b in float64, and so are
1 + τ² and 1 + (t tan b)²: the complex functions reduce, bit for bit, to a few real passes
(:func:`sigmoid_parts`, :func:`tanh_parts`): the real part is the real function of a, the
imaginary part b times a factor of a alone. The complex step's h = 1e-20 keeps every
imaginary part there, so the full complex-step oracle takes that path, and the screen's
directions share the factors of the base run across copies.
"""

from __future__ import annotations

import numpy as np

from lstm_gradcheck.reference.layout import GATES, gate_blocks, gate_row_vector

__all__ = [
    "complex_tanh",
    "complex_sigmoid",
    "complex_sigmoid_of_negated",
    "complex_activate_",
    "TINY_IMAGINARY",
    "sigmoid_parts",
    "tanh_parts",
    "real_activate_",
    "gate_signs",
    "matmul_into",
]

_TAYLOR_LIMIT = 1e-3  # |b| below which sin, cos, tan are their series to full double precision
_EXP_LIMIT = 700.0  # exp(700) is finite; sigmoid(-700) ~ 1e-304 is below every term it meets
#: Below this |imaginary part| cos, sin and tan of it are 1, itself, itself in float64 (Note [Tiny imaginary parts]).
TINY_IMAGINARY = 1e-8


def _tiny(b: np.ndarray) -> bool:
    return b.size == 0 or float(np.max(np.abs(b))) < TINY_IMAGINARY


def sigmoid_parts(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For real ``z``: sigmoid(z) and the factor s with Im sigmoid(z + i b) = b s for |b| < TINY_IMAGINARY
    (:func:`complex_sigmoid_of_negated` at w = -z, Note [Tiny imaginary parts]): s = e / p², p = 1 + e, e = exp(-z)."""
    e = np.minimum(-z, _EXP_LIMIT)
    np.exp(e, out=e)
    p = e + 1.0
    value = np.reciprocal(p)
    e /= p
    e *= value
    return value, e


def tanh_parts(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For real ``z``: tanh(z) and the factor s with Im tanh(z + i b) = b s for |b| < TINY_IMAGINARY
    (:func:`complex_tanh`, Note [Tiny imaginary parts]): s = 4 e / (1 + e)², e = exp(-2 |z|)."""
    e = np.abs(z)
    e *= -2.0
    np.exp(e, out=e)
    return np.tanh(z), 4.0 * e / ((1.0 + e) * (1.0 + e))


def _small_sin_cos_tan(b: np.ndarray, want: str) -> np.ndarray:
    """sin, cos or tan of ``b``: series when every |b| < 1e-3 (exact in double), else numpy."""
    if b.size and float(np.max(np.abs(b))) < _TAYLOR_LIMIT:
        b2 = b * b
        if want == "sin":  # b - b³/6 + b⁵/120; the next term is b⁷/5040 < 2e-22 |b|
            return b * (1.0 - b2 / 6.0 * (1.0 - b2 / 20.0))
        if want == "cos":  # 1 - b²/2 + b⁴/24; the next term b⁶/720 < 2e-21
            return 1.0 - b2 / 2.0 * (1.0 - b2 / 12.0)
        return b * (1.0 + b2 / 3.0 * (1.0 + 0.4 * b2))  # tan: b + b³/3 + 2b⁵/15; next 17b⁷/315
    return {"sin": np.sin, "cos": np.cos, "tan": np.tan}[want](b)


def complex_tanh(z: np.ndarray, out: np.ndarray) -> np.ndarray:
    """tanh of complex ``z`` into ``out`` from real operations (Note [Complex gates])."""
    a, b = z.real, z.imag
    if _tiny(b):  # Note [Tiny imaginary parts]: the same numbers, fewer passes
        t, sech2 = tanh_parts(a)
        sech2 *= b
        out.real = t
        out.imag = sech2
        return out
    t = np.tanh(a)
    tb = _small_sin_cos_tan(b, "tan")
    e = np.abs(a)
    e *= -2.0
    np.exp(e, out=e)
    sech2 = 4.0 * e / ((1.0 + e) * (1.0 + e))
    tt = t * tb
    den = tt * tt
    den += 1.0
    re = tb * tb
    re += 1.0
    re *= t
    re /= den
    sech2 *= tb
    sech2 /= den
    out.real = re
    out.imag = sech2
    return out


def complex_sigmoid(z: np.ndarray, out: np.ndarray) -> np.ndarray:
    """sigmoid of complex ``z`` into ``out`` from real operations (Note [Complex gates])."""
    return complex_sigmoid_of_negated(-z, out)


def complex_sigmoid_of_negated(w: np.ndarray, out: np.ndarray) -> np.ndarray:
    """sigmoid(-w) = 1 / (1 + e^w) = (1 - i τ) / (p (1 + τ²)), p = 1 + e^α cos β, τ = e^α sin β / p."""
    a, b = w.real, w.imag
    e = np.minimum(a, _EXP_LIMIT)
    np.exp(e, out=e)
    if _tiny(b):  # Note [Tiny imaginary parts]: the same numbers, fewer passes
        p = e + 1.0
        den = np.reciprocal(p)
        e *= b
        e /= p
        e *= den
        np.negative(e, out=e)
        out.real = den
        out.imag = e
        return out
    p = _small_sin_cos_tan(b, "cos") * e
    p += 1.0
    tau = _small_sin_cos_tan(b, "sin") * e
    tau /= p
    den = tau * tau
    den += 1.0
    den *= p
    np.reciprocal(den, out=den)
    tau *= den
    np.negative(tau, out=tau)
    out.real = den
    out.imag = tau
    return out


def complex_activate_(z: np.ndarray, hidden: int) -> None:
    """In place: signed complex pre-activations (4H, N) -> gates i, f, g, o.

    The sigmoid rows arrive negated (see :func:`gate_signs`), which saves a pass.
    """
    for gate, block in zip(GATES, gate_blocks(z, hidden, axis=0), strict=True):
        (complex_tanh if gate == "g" else complex_sigmoid_of_negated)(block, block)


def real_activate_(z: np.ndarray, hidden: int) -> None:
    """In place: signed real pre-activations (4H, N) -> ``1 + exp(-z)`` on the sigmoid rows, tanh on g.

    The sigmoid gates stay as their denominators (Note [Real gates]): the cell update divides
    by them. ``exp`` overflowing to inf gives a gate of exactly 0 there (run_group ignores the
    warning).
    """
    for gate, block in zip(GATES, gate_blocks(z, hidden, axis=0), strict=True):
        if gate == "g":
            np.tanh(block, out=block)
        else:
            np.exp(block, out=block)
            np.add(block, 1.0, out=block)


def gate_signs(hidden: int) -> np.ndarray:
    """(4H,) -1 on the sigmoid rows (i, f, o), +1 on the tanh rows (g).

    The batched forward multiplies weights, biases and corrections by these, so
    its GEMM yields ``-z`` on the sigmoid rows and ``sigmoid(z) = 1 / (1 + exp(-z))``
    needs no negation pass.
    """
    return gate_row_vector({"i": -1.0, "f": -1.0, "g": 1.0, "o": -1.0}, hidden)


def matmul_into(w: np.ndarray, v: np.ndarray, out: np.ndarray) -> None:
    """out = w @ v for real w; a complex v runs as one real GEMM on its interleaved parts."""
    if np.iscomplexobj(v):
        np.matmul(w, v.view(np.float64), out=out.view(np.float64))
    else:
        np.matmul(w, v, out=out)
