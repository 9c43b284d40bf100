"""The complex step along K directions in one forward: Im L(θ + i h v_k) / h for every k.

Note [Complex-step directions]
------------------------------
Along v, Im L(θ + i h v) / h = ⟨∇L, v⟩ + O(h²): no step to tune, no cancellation. As h shrinks
every product of two imaginary parts falls below float64's resolution of the real parts, so each
copy's real parts are the base run's own and only the imaginary parts (over h) are computed: the
forward's equations in complex arithmetic with the real parts fixed, each gate's by Note [Tiny
imaginary parts]. Linear in v, and no derivative of the model is written by hand.

The loss is the head's, evaluated in complex128 at h = 1e-20. The K copies share each step's
GEMM as columns (H, K B); a copy whose tangent is zero below layer l0 starts there. With
``per_row`` each batch row's share of the loss is kept apart: rows never mix, so one copy that
moves x[t, :, j] on every row gives all B of its derivatives.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from lstm_gradcheck.oracles.batched_forward import Base
from lstm_gradcheck.oracles.batched_gates import sigmoid_parts, tanh_parts
from lstm_gradcheck.reference.config import UPSTREAM
from lstm_gradcheck.reference.layout import (
    GATES,
    HEAD_BIAS,
    HEAD_WEIGHT,
    bias_hh,
    bias_ih,
    gate_blocks,
    gate_slice,
    parse_name,
    rows_to_gate_units,
    weight_hh,
    weight_ih,
)
from lstm_gradcheck.reference.losses import ScoredSteps, head_loss

__all__ = ["Outer", "Tangent", "dense_part", "start_layer", "tangent_losses", "COMPLEX_STEP_H", "CHUNK_BYTES"]

#: The complex step of the head's loss (the LSTM's imaginary parts are carried divided by h).
COMPLEX_STEP_H = 1e-20
#: Steps of each layer's base gate values and factors computed at once: about this many bytes.
CHUNK_BYTES = 32 * 2**20


@dataclass(frozen=True)
class Outer:
    """A rank-one part of a direction: for a (4H, C) weight V[r, c] = p[r] q[gate(r), c], p (4H,),
    q (4, C) (a column factor per gate block); for x (T, B, I) V[t, b, j] = p[t, b] q[j]."""

    p: np.ndarray
    q: np.ndarray


Part = np.ndarray | Outer
#: One direction: tensor name -> its part (a dense array of the tensor's shape, or an Outer);
#: a tensor left out is not moved.
Tangent = Mapping[str, Part]


def dense_part(shape: tuple[int, ...], part: Part) -> np.ndarray:
    """The direction's values on a tensor of ``shape``, as a dense array."""
    if not isinstance(part, Outer):
        return np.asarray(part, dtype=np.float64).reshape(shape)
    if len(shape) == 3:  # x: p (T, B), q (I,)
        return part.p[:, :, None] * part.q[None, None, :]
    gates, _ = rows_to_gate_units(np.arange(shape[0]), shape[0] // 4)
    return part.p[:, None] * part.q[gates]


def start_layer(config, tangent: Tangent) -> int:
    """The lowest layer a tangent moves (``num_layers`` for the head alone)."""
    layers = [config.num_layers]
    for name, part in tangent.items():
        kind = parse_name(name).kind
        if kind == "x":
            layers.append(0)
        elif kind in ("h0", "c0"):
            moved = np.flatnonzero(np.any(np.asarray(part).reshape(config.num_layers, -1) != 0, axis=1))
            layers.append(int(moved[0]) if moved.size else config.num_layers)
        elif parse_name(name).layer is not None:
            layers.append(parse_name(name).layer)
    return min(layers)


def tangent_losses(base: Base, tangents: Sequence[Tangent], *, per_row: bool = False) -> np.ndarray:
    """⟨∇L, v_k⟩ = Im L(θ + i h v_k) / h for each tangent (Note [Complex-step directions]): (K,),
    or with ``per_row`` each batch row's share (K, B), which sums to it."""
    cfg = base.config
    out = np.zeros((len(tangents), cfg.batch_size))
    starts = np.array([start_layer(cfg, t) for t in tangents], dtype=np.int64)
    for l0 in np.unique(starts):
        chosen = np.flatnonzero(starts == l0)
        out[chosen] = _run(base, [tangents[k] for k in chosen], int(l0))
    return out if per_row else out.sum(axis=1)


def _stack(tangents: Sequence[Tangent], name: str, shape: tuple[int, ...]) -> np.ndarray | None:
    """Every copy's dense part of ``name`` stacked (K, *shape), or None when no copy moves it."""
    if not any(name in t for t in tangents):
        return None
    return np.stack([dense_part(shape, t[name]) if name in t else np.zeros(shape) for t in tangents])


def _outer_stack(tangents: Sequence[Tangent], name: str, p_shape, q_shape) -> tuple[np.ndarray, np.ndarray] | None:
    """Every copy's Outer factors of ``name``: p (K, *p_shape), q (K, *q_shape); None if none moves it."""
    if not any(name in t for t in tangents):
        return None
    ps = [t[name].p if name in t else np.zeros(p_shape) for t in tangents]
    qs = [t[name].q if name in t else np.zeros(q_shape) for t in tangents]
    return np.stack(ps), np.stack(qs)


class _Layer:
    """One layer's imaginary parts for K copies: its state, and by chunks of steps the base gate
    values and factors (Note [Tiny imaginary parts]) and the drive of the moved weights, biases and x."""

    def __init__(self, base: Base, layer: int, tangents: Sequence[Tangent]):
        cfg = base.config
        hidden, batch, self.layer, self.base = cfg.hidden_size, cfg.batch_size, layer, base
        k = len(tangents)
        self.sources = []  # (P (4H, K), Q (T, 4, K, B)): z_im[r] += P[r] Q[t, gate(r)]
        for name, u in ((weight_ih(layer), base.u[layer]), (weight_hh(layer), base.h[layer][:-1])):
            factors = _outer_stack(tangents, name, (4 * hidden,), (4, u.shape[1]))
            if factors is not None:
                p, q = factors
                self.sources.append((np.ascontiguousarray(p.T), np.einsum("kgc,tcb->tgkb", q, u, optimize=True)))
        biases = [_stack(tangents, n, (4 * hidden,)) for n in (bias_ih(layer), bias_hh(layer))]
        biases = [b for b in biases if b is not None]
        self.bias = None if not biases else np.ascontiguousarray(sum(biases).T)  # (4H, K)
        self.x = None
        if layer == 0:
            x = _outer_stack(tangents, "x", (cfg.seq_len, batch), (cfg.input_size,))
            if x is not None:  # W_ih0 @ (p[t, b] q) = (W_ih0 q) p[t, b]
                self.x = (base.w_ih[0] @ x[1].T, x[0].transpose(1, 0, 2))  # (4H, K), (T, K, B)
        shape = (cfg.num_layers, batch, hidden)
        self.h, self.c = (
            np.zeros((hidden, k, batch)) if a is None else np.ascontiguousarray(a[:, layer].transpose(2, 0, 1))
            for a in (_stack(tangents, "h0", shape), _stack(tangents, "c0", shape))
        )
        self._chunk: tuple[int, int, tuple] = (0, 0, ())
        self._steps = max(1, CHUNK_BYTES // (8 * hidden * batch * (12 + 4 * k)))

    def parts(self, t: int) -> tuple:
        """Step t's base gate values and factors (4H, B), tanh(c_t)'s (H, B) (the identity cell: c_t
        and None), and the drive (4H, K, B) or None."""
        start, stop, arrays = self._chunk
        if not start <= t < stop:
            start, stop = t, min(self.base.config.seq_len, t + self._steps)
            arrays = self._compute(start, stop)
            self._chunk = (start, stop, arrays)
        return tuple(None if a is None else a[:, t - start] for a in arrays)

    def _compute(self, start: int, stop: int) -> tuple:
        base, layer = self.base, self.layer
        hidden, batch, steps = base.config.hidden_size, base.config.batch_size, stop - start
        h = np.ascontiguousarray(base.h[layer][start:stop].transpose(1, 0, 2)).reshape(hidden, -1)
        z = np.matmul(base.w_hh[layer], h).reshape(4 * hidden, steps, batch)  # one GEMM for the chunk
        z += base.zin[layer][start:stop].transpose(1, 0, 2)
        values, factors = np.empty_like(z), np.empty_like(z)
        for gate in GATES:
            rows = gate_slice(gate, hidden)
            values[rows], factors[rows] = tanh_parts(z[rows]) if gate == "g" else sigmoid_parts(z[rows])
        cell = base.c[layer][start + 1 : stop + 1].transpose(1, 0, 2)
        cell_parts = tanh_parts(cell) if base.config.cell_output == "tanh" else (cell, None)
        return (values, factors, *cell_parts, self._drive(start, stop))

    def _drive(self, start: int, stop: int) -> np.ndarray | None:
        """(4H, S, K, B): what the moved weights, biases and x add to z_im at steps start..stop-1."""
        if not self.sources and self.bias is None and self.x is None:
            return None
        hidden, k, batch = self.base.config.hidden_size, self.h.shape[1], self.base.config.batch_size
        drive = np.zeros((4 * hidden, stop - start, k, batch))
        for p, q in self.sources:
            for g, gate in enumerate(GATES):
                rows = gate_slice(gate, hidden)
                drive[rows] += p[rows][:, None, :, None] * q[start:stop, g][None]
        if self.x is not None:
            drive += self.x[0][:, None, :, None] * self.x[1][start:stop][None]
        if self.bias is not None:
            drive += self.bias[:, None, :, None]
        return drive


def _run(base: Base, tangents: Sequence[Tangent], l0: int) -> np.ndarray:
    """(K, B) imaginary parts over h of each row's loss, for copies that move nothing below layer l0."""
    cfg = base.config
    hidden, t_len, batch, k = cfg.hidden_size, cfg.seq_len, cfg.batch_size, len(tangents)
    layers = [_Layer(base, layer, tangents) for layer in range(l0, cfg.num_layers)]
    head = _Head(base, tangents)
    valid = base.valid
    z = np.empty((4 * hidden, k * batch))
    below_z = np.empty_like(z)
    for t in range(t_len):
        below = None
        for layer in layers:
            np.matmul(base.w_hh[layer.layer], layer.h.reshape(hidden, -1), out=z)
            z3 = z.reshape(4 * hidden, k, batch)
            if below is not None:
                np.matmul(base.w_ih[layer.layer], below.reshape(hidden, -1), out=below_z)
                z += below_z
            values, factors, cell_value, cell_factor, drive = layer.parts(t)
            if drive is not None:
                z3 += drive
            z3 *= factors[:, None, :]
            i, f, g, o = gate_blocks(z3, hidden, axis=0)
            vi, vf, vg, vo = (v[:, None, :] for v in gate_blocks(values, hidden, axis=0))
            c = vf * layer.c
            c += f * base.c[layer.layer][t][:, None, :]
            c += vi * g
            c += i * vg
            h = vo * c if cell_factor is None else vo * (c * cell_factor[:, None, :])
            h += o * cell_value[:, None, :]
            if valid is not None:  # padding copies the state forward, exactly like torch's packed sequences
                keep = ~valid[t][None, None, :]
                np.copyto(c, layer.c, where=keep)
                np.copyto(h, layer.h, where=keep)
            layer.h, layer.c = h, c
            below = h
        head.step(t, below)
    total = head.loss()
    if cfg.final_state:
        for layer in layers:
            dh, dc = base.case.dh_n[layer.layer].T, base.case.dc_n[layer.layer].T  # (H, B)
            total += np.einsum("hb,hkb->kb", dh, layer.h) + np.einsum("hb,hkb->kb", dc, layer.c)
    return total


class _Head:
    """The head's logits' imaginary parts step by step, and each row's loss at the end."""

    def __init__(self, base: Base, tangents: Sequence[Tangent]):
        cfg = base.config
        self.base, self.cfg = base, cfg
        k, hidden = len(tangents), cfg.hidden_size
        width = cfg.output_size if cfg.has_head else hidden
        self.y = np.zeros((cfg.seq_len, width, k, cfg.batch_size))
        self.weight = _stack(tangents, HEAD_WEIGHT, (cfg.output_size, hidden)) if cfg.has_head else None
        bias = _stack(tangents, HEAD_BIAS, (cfg.output_size,)) if cfg.has_head else None
        self.bias = None if bias is None else bias.T[:, :, None]  # (O, K, 1)

    def step(self, t: int, h: np.ndarray | None) -> None:
        """Logits' imaginary parts at step t from the top layer's (H, K, B) (None: none there)."""
        base, y = self.base, self.y[t]
        if not self.cfg.has_head:
            if h is not None:
                y[:] = h
            return
        if h is not None:
            y += np.matmul(base.case.params[HEAD_WEIGHT], h.reshape(h.shape[0], -1)).reshape(y.shape)
        if self.weight is not None:
            y += np.einsum("koh,hb->okb", self.weight, base.h[-1][t + 1])
        if self.bias is not None:
            y += self.bias

    def loss(self) -> np.ndarray:
        """(K, B): each row's share of Im L / h."""
        base, cfg, y_im = self.base, self.cfg, self.y
        scored = base.scored
        if cfg.loss == UPSTREAM:  # linear in the top layer's h: no complex arithmetic needed
            w = scored.weight / scored.count  # (T, B)
            return np.einsum("tbh,tb,thkb->kb", scored.targets, w, y_im)
        largest = float(np.max(np.abs(y_im), initial=0.0))
        if largest == 0.0:
            return np.zeros(y_im.shape[2:])
        h = COMPLEX_STEP_H / largest
        # (K, B, T, 1, O): each batch row its own loss, with the whole loss's divisor.
        y = base.y.transpose(2, 0, 1)[None, :, :, None, :] + 1j * h * y_im.transpose(2, 3, 0, 1)[:, :, :, None, :]
        rows = ScoredSteps(scored.weight.T[:, :, None], np.moveaxis(scored.targets, 1, 0)[:, :, None], scored.count)
        return head_loss(y, cfg, rows, need_grad=False)[0].imag / h
