"""The loss of K perturbed copies of one case at GEMM speed: shared weights, rank-1 corrections.

Note [Batched copies]
---------------------
A full finite-difference check evaluates the loss at ``θ + δ_k e_{i_k}`` for
thousands of single-element perturbations. Every copy shares the base
weights, so one GEMM per step over all copies' rows runs them together, and
each copy's own perturbation is a correction of one row of its
pre-activations (row ``r`` of layer ``l``, gate block ``r // H``)::

    weight_ih_l[r, c] += δ:  z_t[r] += δ u_t[c]        (u = the layer's input, shared below the layer)
    weight_hh_l[r, c] += δ:  z_t[r] += δ h_{t-1}[c]    (the copy's own previous h)
    bias_{ih,hh}_l[r] += δ:  z_t[r] += δ
    x[t0, b, j]       += δ:  z_t0 += δ W_ih_0[:, j]    (row b only, from step t0 on)
    h0/c0[l, b, u]    += δ:  the initial state of layer l, row b only
    head.weight[o, c] += δ:  y_t[o] += δ h_t^top[c]    (head and loss only)
    head.bias[o]      += δ:  y_t[o] += δ

so ``K`` copies cost one pass over ``K * rows`` columns, not K forward passes
of Python. What a perturbation cannot change is never recomputed: layers
below the perturbed one, steps before ``t0``, and the batch rows other than
``b`` (the loss is a sum over rows; ``mean`` divides by a fixed count). Copies
of x start a little early, at one of ``X_BUCKETS`` fixed steps, so that 8
groups run instead of T small ones (per-group costs and the GIL dominate
groups of a few hundred one-row columns).

:func:`partial_losses` therefore returns ``L(θ + δ_k e_{i_k}) - C(i_k)``: the
loss minus a constant that depends on the perturbed element, never on δ.
Differences of copies of the same element (finite differences) and
imaginary parts (the complex step) are exactly those of the full loss.

Layout: states are stored transposed, ``(H, N)`` with ``N = K * rows``
columns, so each gate block ``gate_blocks(z, H, axis=0)`` is one contiguous
``(H, N)`` array and every elementwise pass runs at full speed. The copies
run in chunks (bounded memory; a request's chunks cut small enough that a
few copies still make several jobs) on a two-thread pool, largest first: numpy's
ufuncs and BLAS release the GIL.

Note [Sparse first step]
------------------------
A copy of a weight or bias of layer l differs from the base, at step 0, in
one pre-activation row r only, so after step 0 in one unit ``u = r mod H``
of c_1 and h_1. :meth:`_Partial._first_step` therefore takes every copy's
h_1, c_1 from the base and recomputes unit u alone from the base's four gate
pre-activations of that unit plus the copy's correction: 4 values per column
instead of a GEMM and a 4H-row step, one of T steps of the costliest copies.

Note [Real gates]
-----------------
In float64 the sigmoid gates are never formed: the GEMM yields ``-z`` on
their rows, one pass makes ``d = 1 + exp(-z)``, and the cell update divides
by ``d`` where it would multiply by ``sigmoid(z) = 1 / d``::

    c_t = c_{t-1} / d_f + g / d_i,      h_t = tanh(c_t) / d_o

numpy's float64 division costs about half a ``reciprocal`` (0.38 against 0.70
ns an element here: only ``divide`` has a vectorised loop), and each gate
then costs one rounding instead of two. ``exp`` overflowing to inf makes a
gate exactly 0, as ``1 / (1 + exp(-z))`` does.

Note [Complex gates]
--------------------
The complex-step oracle runs this forward in complex128. numpy's complex
``tanh`` and ``exp`` cost 17-36 ns per element; :func:`complex_tanh` and
:func:`complex_sigmoid` evaluate the same complex functions from real
operations on the real and imaginary parts::

    tanh(a + ib)    = (t (1 + T²) + i T sech²a) / (1 + t² T²),   t = tanh a, T = tan b
    sigmoid(a + ib) = (1 + i τ) / (p (1 + τ²)),   p = 1 + e^{-a} cos b,  τ = e^{-a} sin b / p

with ``sech² a = 4 e / (1 + e)²``, ``e = exp(-2|a|)`` (accurate where tanh
saturates), and sin, cos, tan of ``|b| < 1e-3`` by their Taylor series to
full double precision (numpy's take 7 ns an element). They are exact
identities, not linearizations: any imaginary part gives the complex value.
The real forward divides by ``1 + exp(-z)`` (Note [Real gates]), relatively accurate
for every z (a saturated gate keeps all its digits). These are written here,
not taken from :func:`lstm_gradcheck.reference.activations.activate_gates`, because the
forward needs no derivatives: that function also computes them, at about
three times the cost of the activations alone.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from threadpoolctl import ThreadpoolController

from lstm_gradcheck.reference.case import Case
from lstm_gradcheck.reference.config import LSTMConfig
from lstm_gradcheck.reference.layout import (
    GATES,
    HEAD_BIAS,
    HEAD_WEIGHT,
    gate_blocks,
    gate_row_vector,
    gradient_shapes,
    parse_name,
    rows_to_gate_units,
    unit_rows,
    weight_hh,
    weight_ih,
)
from lstm_gradcheck.reference.layout import bias_hh as bias_hh_name
from lstm_gradcheck.reference.layout import bias_ih as bias_ih_name
from lstm_gradcheck.reference.losses import ScoredSteps, head_loss, scored_steps
from lstm_gradcheck.reference.lstm import effective_bias, step_mask

__all__ = [
    "Base",
    "prepare",
    "partial_losses",
    "partial_losses_many",
    "base_partial_losses",
    "base_copies",
    "copy_count",
    "loss_magnitude",
    "row_steps",
    "complex_tanh",
    "complex_sigmoid",
    "gate_signs",
    "TARGET_COLUMNS",
    "WORKERS",
]

#: Columns (copies x rows) per chunk: measured best of 384-4096 with two workers on the benchmark
#: case (2048: 0.51 s median of 12 against 0.57 s at 1024; fewer jobs, less fixed cost per column).
TARGET_COLUMNS = 2048
#: Copies of x start at one of this many steps (:func:`x_bucket_start`), not at their own:
#: fewer, larger groups (a copy of x[t] runs from its bucket's start, at most T / X_BUCKETS
#: steps early, where it equals the base).
X_BUCKETS = 8
#: Every request's jobs are cut to about 1/JOBS_PER_WORKER of a worker's share of the
#: columns (at least MIN_COLUMNS), so a few copies still make several jobs for the pool.
JOBS_PER_WORKER = 4
MIN_COLUMNS = 256
#: A chunk keeps the top layer's h for every column and step (H x T x columns) for the head;
#: long or wide cases get fewer columns per chunk so each worker stays within this.
CHUNK_BYTES = 64 * 2**20
#: Threads over chunks (numpy releases the GIL in ufuncs and BLAS).
WORKERS = max(1, min(2, os.cpu_count() or 1))
_TAYLOR_LIMIT = 1e-3  # |b| below which sin, cos, tan are their series to full double precision
_EXP_LIMIT = 700.0  # exp(700) is finite; sigmoid(-700) ~ 1e-304 is below every term it meets


# ----------------------------------------------------------------------------- activations


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
    return _complex_sigmoid_of_negated(-z, out)


def _complex_sigmoid_of_negated(w: np.ndarray, out: np.ndarray) -> np.ndarray:
    """sigmoid(-w) = 1 / (1 + e^w) = (1 - i τ) / (p (1 + τ²)), p = 1 + e^α cos β, τ = e^α sin β / p."""
    a, b = w.real, w.imag
    e = np.minimum(a, _EXP_LIMIT)
    np.exp(e, out=e)
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


def _complex_activate_(z: np.ndarray, hidden: int) -> None:
    """In place: signed complex pre-activations (4H, N) -> gates i, f, g, o.

    The sigmoid rows arrive negated (see :func:`gate_signs`), which saves a pass.
    """
    for gate, block in zip(GATES, gate_blocks(z, hidden, axis=0), strict=True):
        (complex_tanh if gate == "g" else _complex_sigmoid_of_negated)(block, block)


def _real_activate_(z: np.ndarray, hidden: int) -> None:
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


def _matmul(w: np.ndarray, v: np.ndarray, out: np.ndarray) -> None:
    """out = w @ v for real w; a complex v runs as one real GEMM on its interleaved parts."""
    if np.iscomplexobj(v):
        np.matmul(w, v.view(np.float64), out=out.view(np.float64))
    else:
        np.matmul(w, v, out=out)


# ----------------------------------------------------------------------------- the base run


@dataclass(frozen=True)
class Base:
    """The unperturbed float64 forward, stored transposed for the batched runs.

    Per layer l (lists of length L): ``w_ih`` (4H, I_l), ``w_hh`` (4H, H),
    ``bias`` (4H,) = b_ih + b_hh + forget_bias on the forget rows, ``u``
    (T, I_l, B) the layer's input, ``zin`` (T, 4H, B) = W_ih u_t + bias,
    ``h``/``c`` (T+1, H, B) the states (index 0 = h0, c0). ``y`` (T, O, B)
    the logits, ``loss`` the full loss, ``scored`` the scored steps,
    ``valid`` (T, B) bool or None (no padding).
    """

    case: Case
    w_ih: tuple[np.ndarray, ...]
    w_hh: tuple[np.ndarray, ...]
    bias: tuple[np.ndarray, ...]
    u: tuple[np.ndarray, ...]
    zin: tuple[np.ndarray, ...]
    h: tuple[np.ndarray, ...]
    c: tuple[np.ndarray, ...]
    y: np.ndarray
    loss: float
    scored: ScoredSteps
    valid: np.ndarray | None

    @property
    def config(self) -> LSTMConfig:
        return self.case.config


def prepare(case: Case) -> Base:
    """The base forward of ``case`` in float64 (a float32 case is promoted exactly)."""
    if case.config.dtype != "float64":
        case = case.astype("float64")
    cfg = case.config
    p = case.params
    w_ih, w_hh, bias = [], [], []
    for k in range(cfg.num_layers):
        w_ih.append(np.ascontiguousarray(p[weight_ih(k)]))
        w_hh.append(np.ascontiguousarray(p[weight_hh(k)]))
        bias.append(effective_bias(p[bias_ih_name(k)], p[bias_hh_name(k)], cfg.forget_bias))
    mask = step_mask(case.lengths, cfg.seq_len)
    valid = None if mask is None else mask[..., 0]
    scored = scored_steps(cfg, case.targets, case.lengths)
    head = (p.get(HEAD_WEIGHT), p.get(HEAD_BIAS))  # None, None for the loss "upstream"
    partial = _Partial(cfg, tuple(w_ih), tuple(w_hh), tuple(bias), *head, scored, valid, case)
    u0 = np.ascontiguousarray(case.x.transpose(0, 2, 1))
    h0 = tuple(np.ascontiguousarray(case.h0[k].T) for k in range(cfg.num_layers))
    c0 = tuple(np.ascontiguousarray(case.c0[k].T) for k in range(cfg.num_layers))
    run = partial.run_plain(u0, h0, c0)
    us, zins = [], []
    for k in range(cfg.num_layers):
        u = u0 if k == 0 else run.h[k - 1][1:]
        us.append(u)
        zins.append(np.matmul(w_ih[k], u) + bias[k][:, None])
    return Base(
        case, tuple(w_ih), tuple(w_hh), tuple(bias), tuple(us), tuple(zins), run.h, run.c, run.y,
        float(run.loss), scored, valid,
    )  # fmt: skip


@dataclass(frozen=True)
class _PlainRun:
    h: tuple[np.ndarray, ...]
    c: tuple[np.ndarray, ...]
    y: np.ndarray
    loss: float


# ----------------------------------------------------------------------------- one group of copies


@dataclass(frozen=True)
class _Group:
    """K copies that start at layer ``l0``, step ``t0``, on batch ``rows`` (K,) (one row
    each) or all B rows (``rows`` None); ``perturb`` applies each copy's change."""

    l0: int
    t0: int
    k: int
    rows: np.ndarray | None
    perturb: _Perturbation


class _Perturbation:
    """How K copies differ from the base: initial states and per-step corrections."""

    def init(self, layer: int, h: np.ndarray, c: np.ndarray) -> None:  # (H, K, R) views
        """Change the copies' initial states of ``layer`` (default: none)."""

    def correct(self, t: int, z: np.ndarray, h_prev: np.ndarray) -> None:  # (4H, K, R), (H, K, R)
        """Add the copies' corrections to the perturbed layer's pre-activations at step t."""


class _RowCorrection(_Perturbation):
    """Weights and biases of the perturbed layer: z_t[r_k] += δ_k * coef_k(t) (Note [Batched copies]).

    ``source`` is "input" (weight_ih: coef = u_t[c_k], the layer's shared input
    ``u`` (T, I_l, B)), "state" (weight_hh: coef = the copy's own h_{t-1}[c_k])
    or "bias" (coef = 1); ``rows`` (K,) are the 4H rows r_k, ``cols`` (K,) the c_k.
    """

    def __init__(self, source: str, rows: np.ndarray, cols: np.ndarray | None, delta: np.ndarray, u=None):
        self.source, self.rows, self.cols, self.delta, self.u = source, rows, cols, delta, u
        self._flat: tuple[np.ndarray, np.ndarray | None, np.ndarray] | None = None

    def sliced(self, part: slice) -> _RowCorrection:
        cols = None if self.cols is None else self.cols[part]
        return _RowCorrection(self.source, self.rows[part], cols, self.delta[part], self.u)

    def _flat_indices(self, k: int, r: int) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        """Flat positions of (r_k, k, :) in z (4H, K, R) and of (c_k, k, :) in h (H, K, R), and δ per
        position: one gather and one scatter per step instead of three-axis fancy indexing."""
        if self._flat is None:
            within = np.arange(k)[:, None] * r + np.arange(r)
            z_at = (self.rows[:, None] * (k * r) + within).ravel()
            h_at = None if self.cols is None else (self.cols[:, None] * (k * r) + within).ravel()
            self._flat = (z_at, h_at, np.repeat(self.delta, r))
        return self._flat

    def correct(self, t: int, z: np.ndarray, h_prev: np.ndarray) -> None:
        _, k, r = z.shape
        z_at, h_at, delta = self._flat_indices(k, r)
        flat = z.reshape(-1)  # a view: z is a reshape of a contiguous (4H, N) buffer
        if self.source == "bias":
            flat[z_at] += delta
        elif self.source == "input":
            flat[z_at] += (self.delta[:, None] * self.u[t][self.cols]).ravel()
        else:
            flat[z_at] += delta * h_prev.reshape(-1)[h_at]


class _InputCorrection(_Perturbation):
    """x[t_k, b_k, j_k] += δ_k: z_{t_k}[:, k] += δ_k W_ih_0[:, j_k], each copy at its own step t_k
    (a group of x copies starts at its bucket's first step, Note [Batched copies])."""

    def __init__(self, steps: np.ndarray, value: np.ndarray):
        self.steps, self.value = steps, value  # steps (K,) the t_k; value (4H, K) = W_ih_0[:, j_k] * δ_k

    def sliced(self, part: slice) -> _InputCorrection:
        return _InputCorrection(self.steps[part], self.value[:, part])

    def correct(self, t: int, z: np.ndarray, h_prev: np.ndarray) -> None:
        hit = np.flatnonzero(self.steps == t)
        if hit.size:
            z[:, hit, 0] += self.value[:, hit]


class _StateCorrection(_Perturbation):
    """h0 or c0 [l0, b_k, u_k] += δ_k (the group starts at layer l0 with rows b_k)."""

    def __init__(self, which: str, layer: int, units: np.ndarray, delta: np.ndarray):
        self.which, self.layer, self.units, self.delta = which, layer, units, delta
        self.copies = np.arange(len(units))

    def init(self, layer: int, h: np.ndarray, c: np.ndarray) -> None:
        if layer == self.layer:
            target = h if self.which == "h0" else c
            target[self.units, self.copies, 0] += self.delta


class _Partial:
    """The model's equations over (H, N) columns; shared by the base and the groups."""

    def __init__(self, cfg, w_ih, w_hh, bias, w_head, b_head, scored, valid, case):
        self.cfg = cfg
        self.sign = gate_signs(cfg.hidden_size)
        self.w_ih = tuple(self.sign[:, None] * w for w in w_ih)
        self.w_hh = tuple(self.sign[:, None] * w for w in w_hh)
        self.bias = tuple(self.sign * b for b in bias)
        # No head for the loss "upstream": its logits are the top layer's h itself.
        self.w_head = None if w_head is None else np.ascontiguousarray(w_head)
        self.b_head = None if b_head is None else np.asarray(b_head)
        self.scored, self.valid, self.case = scored, valid, case
        self._first: dict[int, np.ndarray] = {}

    def _step(self, z: np.ndarray, c: np.ndarray, h: np.ndarray, valid: np.ndarray | None, scratch: np.ndarray):
        """Gates from signed pre-activations z (4H', N); updates c and h (H', N) in place
        (H' = H, or 1 for the one unit of :meth:`_first_step`)."""
        if np.iscomplexobj(z):
            self._complex_step(z, c, h, valid, scratch)
            return
        hidden = z.shape[0] // 4
        # Note [Real gates]: i, f, o hold 1 + exp(-z); dividing by them is multiplying by the gate.
        _real_activate_(z, hidden)
        i, f, g, o = gate_blocks(z, hidden, axis=0)
        np.divide(g, i, out=g)
        if valid is None:
            np.divide(c, f, out=c)
            c += g
            cell = c
        else:  # padding copies the state forward, exactly like torch's packed sequences
            np.divide(c, f, out=f)
            f += g
            np.copyto(c, f, where=valid)
            cell = f
        if self.cfg.cell_output == "tanh":
            np.tanh(cell, out=scratch)
            cell = scratch
        if valid is None:
            np.divide(cell, o, out=h)
        else:
            np.divide(cell, o, out=o)
            np.copyto(h, o, where=valid)

    def _complex_step(self, z: np.ndarray, c: np.ndarray, h: np.ndarray, valid: np.ndarray | None, scratch):
        """:meth:`_step` in complex128, with the gates themselves (Note [Complex gates])."""
        hidden = z.shape[0] // 4
        _complex_activate_(z, hidden)
        i, f, g, o = gate_blocks(z, hidden, axis=0)
        f *= c
        i *= g
        if valid is None:
            np.add(f, i, out=c)
            cell = c
            if self.cfg.cell_output == "tanh":
                complex_tanh(c, scratch)
                cell = scratch
            np.multiply(o, cell, out=h)
            return
        # Padding copies the state forward, exactly like torch's packed sequences.
        f += i
        np.copyto(c, f, where=valid)
        cell = f
        if self.cfg.cell_output == "tanh":
            complex_tanh(f, scratch)
            cell = scratch
        o *= cell
        np.copyto(h, o, where=valid)

    def run_plain(self, u0: np.ndarray, h0: Sequence[np.ndarray], c0: Sequence[np.ndarray]) -> _PlainRun:
        """The unperturbed forward over B columns, storing every state (for :func:`prepare`)."""
        cfg = self.cfg
        t_len, hidden = cfg.seq_len, cfg.hidden_size
        batch = u0.shape[-1]
        hs = [np.empty((t_len + 1, hidden, batch)) for _ in range(cfg.num_layers)]
        cs = [np.empty((t_len + 1, hidden, batch)) for _ in range(cfg.num_layers)]
        z = np.empty((4 * hidden, batch))
        scratch = np.empty((hidden, batch))

        for k in range(cfg.num_layers):
            hs[k][0], cs[k][0] = h0[k], c0[k]
            for t in range(t_len):
                u = u0[t] if k == 0 else hs[k - 1][t + 1]
                np.matmul(self.w_ih[k], u, out=z)
                z += np.matmul(self.w_hh[k], hs[k][t])
                z += self.bias[k][:, None]
                hs[k][t + 1], cs[k][t + 1] = hs[k][t], cs[k][t]
                self._step(z, cs[k][t + 1], hs[k][t + 1], None if self.valid is None else self.valid[t], scratch)
        y = hs[-1][1:] if self.w_head is None else np.matmul(self.w_head, hs[-1][1:]) + self.b_head[:, None]
        loss = (
            self._head(y[None], None, 0)[0]
            + self._final_state(
                [hs[k][-1][:, None, :] for k in range(cfg.num_layers)],
                [cs[k][-1][:, None, :] for k in range(cfg.num_layers)],
                None,
                0,
            )[0]
        )
        return _PlainRun(tuple(hs), tuple(cs), y, float(loss))

    def _head(self, y: np.ndarray, rows: np.ndarray | None, t0: int) -> np.ndarray:
        """Per-copy loss of logits y (K, T', O, R) over steps >= t0 of ``rows`` (fixed divisor)."""
        weight, targets = self.scored.weight[t0:], self.scored.targets[t0:]
        if rows is not None:  # one row per copy: (K, T', 1)
            weight = weight[:, rows].T[:, :, None]
            targets = np.moveaxis(targets[:, rows], 1, 0)[:, :, None]
        scored = ScoredSteps(weight, targets, self.scored.count)
        return head_loss(np.swapaxes(y, -1, -2), self.cfg, scored, need_grad=False)[0]

    def _final_state(self, h: Sequence[np.ndarray], c: Sequence[np.ndarray], rows, l0: int) -> np.ndarray:
        """sum(dh_n h_n) + sum(dc_n c_n) over layers >= l0, per copy; h[k] (H, K, R)."""
        k_copies = h[0].shape[1]
        if not self.cfg.final_state:
            return np.zeros(k_copies)
        total = 0.0
        for offset, layer in enumerate(range(l0, self.cfg.num_layers)):
            dh, dc = self.case.dh_n[layer].T, self.case.dc_n[layer].T  # (H, B)
            dh = dh[:, rows][:, :, None] if rows is not None else dh[:, None, :]
            dc = dc[:, rows][:, :, None] if rows is not None else dc[:, None, :]
            total = total + np.sum(dh * h[offset], axis=(0, 2)) + np.sum(dc * c[offset], axis=(0, 2))
        return total

    def _first_weights(self, base: Base, layer: int) -> np.ndarray:
        """(T, 4H, H + B) = [W_hh | zin_t] per step, signed; built once per layer and shared."""
        cached = self._first.get(layer)
        if cached is None:
            hidden = self.cfg.hidden_size
            cached = np.empty((self.cfg.seq_len, 4 * hidden, hidden + self.cfg.batch_size))
            cached[:, :, :hidden] = self.w_hh[layer]
            cached[:, :, hidden:] = self.sign[None, :, None] * base.zin[layer]
            cached.setflags(write=False)
            self._first[layer] = cached  # a benign race: two threads may build the same array
        return cached

    def _first_step(self, base: Base, group: _Group, h: np.ndarray, c: np.ndarray, dtype: np.dtype) -> None:
        """Step 0 of the perturbed layer for weight and bias copies (Note [Sparse first step]):
        writes every copy's h_1, c_1 (H, K * B) into ``h`` and ``c``."""
        p, layer, batch = group.perturb, group.l0, self.cfg.batch_size
        hidden, k = self.cfg.hidden_size, group.k
        columns = np.tile(np.arange(batch), k)
        h[:] = base.h[layer][1][:, columns]
        c[:] = base.c[layer][1][:, columns]
        gates, units = rows_to_gate_units(p.rows, hidden)
        # The base's signed pre-activations at step 0 of each copy's unit, its four gates: (4, K, B).
        z0 = self.w_hh[layer] @ base.h[layer][0] + self.sign[:, None] * base.zin[layer][0]
        z = z0[unit_rows(units, hidden)].astype(dtype)
        if p.source == "bias":
            z[gates, np.arange(k)] += p.delta[:, None]
        else:  # the copy's own u_0 or h_0 (both the base's at step 0)
            coef = (base.u[layer] if p.source == "input" else base.h[layer])[0][p.cols]
            z[gates, np.arange(k)] += p.delta[:, None] * coef
        c_unit = base.c[layer][0][units].astype(dtype).reshape(1, -1)
        h_unit = np.empty_like(c_unit)
        self._step(z.reshape(4, -1), c_unit, h_unit, None, np.empty_like(c_unit))  # every row is valid at t = 0
        h.reshape(hidden, k, batch)[units, np.arange(k)] = h_unit.reshape(k, batch)
        c.reshape(hidden, k, batch)[units, np.arange(k)] = c_unit.reshape(k, batch)

    def run_group(self, base: Base, group: _Group, dtype: np.dtype) -> np.ndarray:
        with np.errstate(over="ignore"):  # per thread: numpy's error state is thread-local
            return self._run_group(base, group, dtype)

    def _run_group(self, base: Base, group: _Group, dtype: np.dtype) -> np.ndarray:
        """Partial losses (K,) of one group of copies (Note [Batched copies]).

        The perturbed layer's state lives in a buffer ``[h; E]`` of (H + B, N)
        whose last B rows are the one-hot batch row of each column, so one GEMM
        ``[W_hh | zin_t] @ [h; E]`` adds the shared input projection ``zin_t``
        (4H, B) to every copy's recurrent term.
        """
        cfg = self.cfg
        hidden, t_len, batch = cfg.hidden_size, cfg.seq_len, cfg.batch_size
        l0, t0, k, rows = group.l0, group.t0, group.k, group.rows
        r = batch if rows is None else 1
        n = k * r
        layers = range(l0, cfg.num_layers)
        top = len(layers) - 1
        column_rows = np.tile(np.arange(batch), k) if rows is None else rows
        first = np.zeros((hidden + batch, n), dtype=dtype)
        first[hidden + column_rows, np.arange(n)] = 1.0
        h, c = [], []
        for offset, layer in enumerate(layers):
            hb, cb = base.h[layer][t0], base.c[layer][t0]  # (H, B)
            hs = first[:hidden] if offset == 0 else np.empty((hidden, n), dtype=dtype)
            cs = np.empty((hidden, n), dtype=dtype)
            hs[:] = hb[:, column_rows]
            cs[:] = cb[:, column_rows]
            group.perturb.init(layer, hs.reshape(hidden, k, r), cs.reshape(hidden, k, r))
            h.append(hs)
            c.append(cs)
        w_first = self._first_weights(base, l0)
        z = np.empty((4 * hidden, n), dtype=dtype)
        tmp = np.empty_like(z) if top > 0 else None
        scratch = np.empty((hidden, n), dtype=dtype)
        outputs = np.empty((hidden, t_len - t0, n), dtype=dtype)  # the top layer's h_t, for the head
        sparse_first = isinstance(group.perturb, _RowCorrection)  # these groups start at t0 = 0
        if sparse_first:
            self._first_step(base, group, h[0], c[0], dtype)
        for t in range(t0, t_len):
            valid = None if self.valid is None else self.valid[t][column_rows][None, :]
            for offset, layer in enumerate(layers):
                if offset == 0 and t == 0 and sparse_first:
                    continue
                if offset == 0:
                    _matmul(w_first[t], first, z)
                    group.perturb.correct(t, z.reshape(4 * hidden, k, r), h[0].reshape(hidden, k, r))
                else:
                    _matmul(self.w_ih[layer], h[offset - 1], z)
                    _matmul(self.w_hh[layer], h[offset], tmp)
                    z += tmp
                    z += self.bias[layer][:, None]
                self._step(z, c[offset], h[offset], valid, scratch)
            outputs[:, t - t0] = h[top]
        if self.w_head is None:
            y = outputs.reshape(hidden, t_len - t0, k, r).transpose(2, 1, 0, 3)  # (K, T', H, R)
        else:
            y = np.empty((cfg.output_size, (t_len - t0) * n), dtype=dtype)
            _matmul(self.w_head, outputs.reshape(hidden, -1), y)
            y += self.b_head[:, None]
            y = y.reshape(cfg.output_size, t_len - t0, k, r).transpose(2, 1, 0, 3)  # (K, T', O, R)
        loss = self._head(y, rows, t0)
        finals_h = [a.reshape(hidden, k, r) for a in h]
        finals_c = [a.reshape(hidden, k, r) for a in c]
        return loss + self._final_state(finals_h, finals_c, rows, l0)


# ----------------------------------------------------------------------------- public entry points


def _partial_of(base: Base) -> _Partial:
    return _Partial(
        base.config, base.w_ih, base.w_hh, base.bias, base.case.params.get(HEAD_WEIGHT),
        base.case.params.get(HEAD_BIAS),
        base.scored, base.valid, base.case,
    )  # fmt: skip


@lru_cache(maxsize=1)
def _pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="lstm-gradcheck-fd")


@lru_cache(maxsize=1)
def _blas_controller() -> ThreadpoolController:
    # Finding the loaded BLAS libraries reads /proc/self/maps: about 1 ms, once, not per call.
    return ThreadpoolController()


@contextmanager
def _one_blas_thread() -> Iterator[int]:
    """Yield how many pool workers to use, with BLAS on one thread meanwhile.

    Two workers each calling a multi-threaded GEMM oversubscribe two cores
    (measured: 3-20x slower), so the workers run with BLAS on one thread.
    """
    with _blas_controller().limit(limits=1, user_api="blas"):
        yield WORKERS


def x_bucket_start(config: LSTMConfig, steps: np.ndarray) -> np.ndarray:
    """The step at which the group of a copy of x[t] starts: t rounded down to one of
    X_BUCKETS evenly spaced steps. It depends on t alone, so the constant C of a copy
    (the loss before its group's start) is the same in every request."""
    width = -(-config.seq_len // X_BUCKETS)
    return (np.asarray(steps) // width) * width


def _groups(base: Base, name: str, index: np.ndarray, delta: np.ndarray) -> list[tuple[np.ndarray, _Group]]:
    """Split the copies of tensor ``name`` into groups that share a start (layer, step, rows)."""
    cfg = base.config
    shape = gradient_shapes(cfg)[name]
    parsed = parse_name(name)
    kind, layer = parsed.kind, parsed.layer
    out: list[tuple[np.ndarray, _Group]] = []
    if kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
        if kind.startswith("weight"):
            r_idx, c_idx = np.unravel_index(index, shape)
        else:
            r_idx, c_idx = index, None
        source = {"weight_ih": "input", "weight_hh": "state"}.get(kind, "bias")
        signed = delta * gate_signs(cfg.hidden_size)[r_idx]
        pert = _RowCorrection(source, r_idx, c_idx, signed, base.u[layer])
        out.append((np.arange(len(index)), _Group(layer, 0, len(index), None, pert)))
        return out
    if kind == "x":
        steps, rows, cols = np.unravel_index(index, shape)
        starts = x_bucket_start(cfg, steps)
        for t0 in np.unique(starts):
            sel = np.flatnonzero(starts == t0)
            signs = gate_signs(cfg.hidden_size)[:, None]
            pert = _InputCorrection(steps[sel], signs * base.w_ih[0][:, cols[sel]] * delta[sel][None, :])
            out.append((sel, _Group(0, int(t0), len(sel), rows[sel], pert)))
        return out
    if kind in ("h0", "c0"):
        layers, rows, units = np.unravel_index(index, shape)
        for lay in np.unique(layers):
            sel = np.flatnonzero(layers == lay)
            pert = _StateCorrection(kind, int(lay), units[sel], delta[sel])
            out.append((sel, _Group(int(lay), 0, len(sel), rows[sel], pert)))
        return out
    raise ValueError(f"not an LSTM tensor: {name!r}")


def _head_losses(base: Base, name: str, index: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """head.weight / head.bias copies: y_t[o] += δ h_t[c] (or δ); the loss only."""
    cfg = base.config
    top = base.h[-1][1:]  # (T, H, B)
    partial = _partial_of(base)
    out = np.empty(len(index), dtype=delta.dtype)
    per_chunk = max(1, 16 * TARGET_COLUMNS // max(1, cfg.seq_len * cfg.batch_size))
    for start in range(0, len(index), per_chunk):
        part = slice(start, start + per_chunk)
        idx, dlt = index[part], delta[part]
        if name == HEAD_WEIGHT:
            o_idx, c_idx = np.unravel_index(idx, (cfg.output_size, cfg.hidden_size))
            shift = dlt[:, None, None] * top[:, c_idx, :].transpose(1, 0, 2)  # (K, T, B)
        else:
            o_idx = idx
            shift = np.broadcast_to(dlt[:, None, None], (len(idx), cfg.seq_len, cfg.batch_size))
        y = np.broadcast_to(base.y, (len(idx), *base.y.shape)).astype(delta.dtype)  # (K, T, O, B)
        y[np.arange(len(idx)), :, o_idx, :] += shift
        out[part] = partial._head(y, None, 0)
    return out


def loss_magnitude(base: Base) -> float:
    """|head loss| + sum |dh_n h_n| + sum |dc_n c_n|: the size of what the loss adds up.

    The contract's heads add terms of one sign; the layer-only ``upstream`` loss adds
    dh_top h_top of either sign, so its size is the sum of their magnitudes."""
    cfg = base.config
    head = abs(base.loss)
    if not cfg.has_head:
        scored = base.scored
        head = float(np.sum(np.abs(scored.targets * base.y.transpose(0, 2, 1)) * scored.weight[..., None]))
    if not cfg.final_state:
        return head
    final = 0.0
    absolute = 0.0
    for k in range(cfg.num_layers):
        for grad, state in ((base.case.dh_n[k].T, base.h[k][-1]), (base.case.dc_n[k].T, base.c[k][-1])):
            final += float(np.sum(grad * state))
            absolute += float(np.sum(np.abs(grad * state)))
    return (abs(base.loss - final) if cfg.has_head else head) + absolute


def copy_count(config: LSTMConfig, name: str) -> int:
    """Number of elements of gradient ``name`` (one copy per element and step)."""
    return int(np.prod(gradient_shapes(config)[name]))


def row_steps(config: LSTMConfig, name: str) -> int:
    """Work of one copy of every element of ``name``, in (row, step, layer) units: a cost model."""
    parsed = parse_name(name)
    t, b, n_layers = config.seq_len, config.batch_size, config.num_layers
    size = copy_count(config, name)
    if parsed.kind in ("head_weight", "head_bias"):
        return size * b * t // max(1, config.hidden_size)
    if parsed.kind == "x":
        return size * (t + 1) // 2 * n_layers
    if parsed.kind in ("h0", "c0"):
        return size * t * (n_layers + 1) // 2
    return size * b * t * (n_layers - parsed.layer)


def partial_losses(base: Base, name: str, index: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """``L(θ + δ_k e_{i_k}) - C(i_k)`` for each copy k (Note [Batched copies]).

    Args:
        base: :func:`prepare` of the case.
        name: the perturbed gradient name (a parameter, ``x``, ``h0`` or ``c0``).
        index: (K,) flat element indices into that tensor.
        delta: (K,) steps, float64 or complex128 (the complex step runs in complex128).

    Returns:
        (K,) partial losses of ``delta``'s dtype; ``C`` depends only on the element.
    """
    return partial_losses_many(base, [(name, index, delta)])[0]


def partial_losses_many(base: Base, requests: Sequence[tuple[str, np.ndarray, np.ndarray]]) -> list[np.ndarray]:
    """:func:`partial_losses` of several ``(name, index, delta)`` requests, run as one pool of jobs.

    One pool for every request keeps both workers busy to the end (a small
    tensor alone is one job on one core) and the largest jobs go first, so the
    last ones to finish are short. Requests of the same tensor are merged
    before they are grouped (fewer, larger groups). Every delta is promoted to
    one dtype (complex128 if any is complex).
    """
    dtype = np.result_type(np.float64, *(np.asarray(d).dtype for _, _, d in requests))
    partial = _partial_of(base)
    cfg = base.config
    merged: dict[str, tuple[list[np.ndarray], list[np.ndarray]]] = {}
    for name, elements, steps in requests:
        merged.setdefault(name, ([], []))
        merged[name][0].append(np.asarray(elements, dtype=np.int64).reshape(-1))
        merged[name][1].append(np.asarray(steps).astype(dtype).reshape(-1))
    flat: dict[str, np.ndarray] = {}
    groups: list[tuple[np.ndarray, str, _Group]] = []
    heads: list[tuple[str, np.ndarray, np.ndarray]] = []
    for name, (indices, deltas) in merged.items():
        index, delta = np.concatenate(indices), np.concatenate(deltas)
        flat[name] = np.empty(len(index), dtype=dtype)
        if name in (HEAD_WEIGHT, HEAD_BIAS):
            heads.append((name, index, delta))
        else:
            groups += [(sel, name, group) for sel, group in _groups(base, name, index, delta)]
    share = -(-sum(_columns(cfg, g) for _, _, g in groups) // (JOBS_PER_WORKER * WORKERS))
    jobs: list[tuple[np.ndarray, str, _Group]] = []
    for sel, name, group in groups:
        r = cfg.batch_size if group.rows is None else 1
        columns = min(_chunk_columns(cfg, group.t0, dtype), max(MIN_COLUMNS, share))
        per_chunk = max(1, columns // r)
        for start in range(0, group.k, per_chunk):
            part = slice(start, min(group.k, start + per_chunk))
            jobs.append((sel[part], name, _slice_group(group, part)))
    jobs.sort(key=lambda job: -_job_cost(cfg, job[2]))
    with _one_blas_thread() as workers:
        if workers > 1 and len(jobs) > 1:
            results = _pool().map(lambda job: partial.run_group(base, job[2], dtype), jobs)
        else:
            results = (partial.run_group(base, job[2], dtype) for job in jobs)
        for name, index, delta in heads:  # cheap; on this thread while the pool works
            flat[name][:] = _head_losses(base, name, index, delta)
        for (sel, name, _), value in zip(jobs, results, strict=True):
            flat[name][sel] = value
    outs, used = [], dict.fromkeys(flat, 0)
    for name, elements, _ in requests:
        size = np.size(elements)
        outs.append(flat[name][used[name] : used[name] + size])
        used[name] += size
    return outs


def _chunk_columns(config: LSTMConfig, t0: int, dtype: np.dtype) -> int:
    """Columns per chunk: TARGET_COLUMNS, fewer where the stored outputs would pass CHUNK_BYTES."""
    per_column = config.hidden_size * (config.seq_len - t0) * np.dtype(dtype).itemsize
    return max(1, min(TARGET_COLUMNS, CHUNK_BYTES // per_column))


def _columns(config: LSTMConfig, group: _Group) -> int:
    return group.k * (config.batch_size if group.rows is None else 1)


def _job_cost(config: LSTMConfig, group: _Group) -> int:
    """Columns x steps x layers that a group runs: the order of the pool's queue."""
    return _columns(config, group) * (config.seq_len - group.t0) * (config.num_layers - group.l0)


def _slice_group(group: _Group, part: slice) -> _Group:
    """The copies ``part`` of ``group`` (its perturbation sliced alike)."""
    p = group.perturb
    rows = None if group.rows is None else group.rows[part]
    if isinstance(p, _RowCorrection):
        new: _Perturbation = p.sliced(part)
    elif isinstance(p, _InputCorrection):
        new = p.sliced(part)
    else:
        new = _StateCorrection(p.which, p.layer, p.units[part], p.delta[part])
    return _Group(group.l0, group.t0, len(range(*part.indices(group.k))), rows, new)


def base_partial_losses(base: Base, name: str, index: np.ndarray) -> np.ndarray:
    """``L(θ) - C(i_k)`` for each element (the δ = 0 copy), one evaluation per group."""
    first, inverse = base_copies(base.config, name, index)
    return partial_losses(base, name, first, np.zeros(len(first)))[inverse]


def base_copies(config: LSTMConfig, name: str, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The δ = 0 copies that :func:`base_partial_losses` needs: one element per distinct constant
    ``C`` (per (step, row) of x, per (layer, row) of h0/c0, one for a parameter), and for each of
    ``index`` the position of its own among them. Returns ``(elements, inverse)``."""
    index = np.asarray(index, dtype=np.int64)
    shape = gradient_shapes(config)[name]
    if parse_name(name).kind in ("x", "h0", "c0"):  # C depends on (step, row) or (layer, row)
        key = np.ravel_multi_index(np.unravel_index(index, shape)[:2], shape[:2])
    else:
        key = np.zeros(len(index), dtype=np.int64)
    _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    return index[first], inverse.reshape(-1)
