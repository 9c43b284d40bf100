"""The loss of K perturbed copies of a case of the LSTM family: each copy's whole forward, batched.

Note [Generic copies]
---------------------
The batched copies forward (Note [Batched copies]) is specialised to the plain LSTM. A case
with peepholes, a projection, a reverse direction or coupled gates takes this path instead:
every copy runs the whole model, written here once more from the contract's equations, with
the perturbed tensor given a leading copy axis (K, ...) and every other array shared, so numpy
broadcasting runs all copies of a chunk together. It computes the full loss, so the constant
C of :func:`lstm_gradcheck.oracles.batched.partial_losses` is 0. It runs in float64 or, for the
complex step, in complex128 (gates from Note [Complex gates]); it costs a full forward per copy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from lstm_gradcheck.oracles.batched_gates import complex_sigmoid, complex_tanh
from lstm_gradcheck.reference.case import Case, step_mask
from lstm_gradcheck.reference.config import LSTMConfig
from lstm_gradcheck.reference.directions import reverse_order
from lstm_gradcheck.reference.head import loss_magnitude as head_magnitude
from lstm_gradcheck.reference.layout import (
    HEAD_BIAS,
    HEAD_WEIGHT,
    direction_param_names,
    gate_slice,
    gradient_shapes,
)
from lstm_gradcheck.reference.losses import ScoredSteps, head_loss, scored_steps
from lstm_gradcheck.reference.lstm import forward

__all__ = ["GenericBase", "prepare_generic", "generic_partial_losses_many", "generic_loss_magnitude", "CHUNK_ELEMENTS"]

#: Copies per chunk are cut so that one chunk's states stay near this many numbers.
CHUNK_ELEMENTS = 1 << 21


@dataclass(frozen=True)
class GenericBase:
    """The unperturbed float64 case of the LSTM family, its loss, the size of the loss's terms and
    its scored steps (the counterpart of :class:`lstm_gradcheck.oracles.batched_forward.Base`)."""

    case: Case
    loss: float
    magnitude: float
    scored: ScoredSteps

    @property
    def config(self) -> LSTMConfig:
        return self.case.config


def prepare_generic(case: Case) -> GenericBase:
    """The base of ``case`` in float64 (a float32 case is promoted exactly)."""
    case = case.astype("float64")
    result, _ = forward(case)
    magnitude = head_magnitude(case, result.y, result.h_n, result.c_n)
    return GenericBase(case, float(result.loss), magnitude, scored_steps(case.config, case.targets, case.lengths))


def generic_loss_magnitude(base: GenericBase) -> float:
    return base.magnitude


def _sigmoid(z: np.ndarray) -> np.ndarray:
    if np.iscomplexobj(z):
        return complex_sigmoid(z, np.empty_like(z))
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-z))


def _tanh(z: np.ndarray) -> np.ndarray:
    return complex_tanh(z, np.empty_like(z)) if np.iscomplexobj(z) else np.tanh(z)


def _mm(a: np.ndarray, w: np.ndarray) -> np.ndarray:
    """a (..., n) @ w: one GEMM over every leading axis when ``w`` (n, m) is shared, stacked products
    when it has a copy axis (K, n, m) (numpy runs a stack of small products one by one)."""
    if w.ndim == 2:
        flat = a.reshape(-1, a.shape[-1])
        if np.iscomplexobj(flat) and not np.iscomplexobj(w):
            # numpy's mixed complex-real product is a slow loop: two real GEMMs instead.
            out = np.empty((flat.shape[0], w.shape[-1]), dtype=flat.dtype)
            out.real, out.imag = flat.real @ w, flat.imag @ w
        else:
            out = flat @ w
        return out.reshape(*a.shape[:-1], w.shape[-1])
    return np.matmul(a, w)


def _reorder(a: np.ndarray, order: np.ndarray | None) -> np.ndarray:
    """``a`` (T, K, B, ...) gathered by the reverse direction's ``order`` (T, B) (None: ``a``)."""
    if order is None:
        return a
    batch = order.shape[1]
    return a[order[:, None, :], np.arange(a.shape[1])[None, :, None], np.arange(batch)[None, None, :]]


@dataclass(frozen=True)
class _Fix:
    """Copy k of weight matrix ``name`` has δ_k added at (rows_k, cols_k): the shared product gets
    δ_k input[cols_k] added on output row rows_k, copy k (every matrix product stays one GEMM)."""

    name: str
    rows: np.ndarray
    cols: np.ndarray
    delta: np.ndarray

    def apply(self, out: np.ndarray, inputs: np.ndarray) -> np.ndarray:
        """``out`` (..., K, B, m) = inputs (..., K or 1, B, n) @ W^T, corrected copy by copy (a new array)."""
        k = len(self.delta)
        out = np.array(
            np.broadcast_to(out, (*out.shape[:-3], k, *out.shape[-2:])), dtype=np.result_type(out, self.delta)
        )
        src = np.broadcast_to(inputs, (*inputs.shape[:-3], k, *inputs.shape[-2:]))
        copies = np.arange(k)
        lead = (slice(None),) * (out.ndim - 3)
        scale = self.delta.reshape(k, *[1] * (out.ndim - 2))  # the picked values have the copy axis first
        out[(*lead, copies, slice(None), self.rows)] += scale * src[(*lead, copies, slice(None), self.cols)]
        return out


def _product(a: np.ndarray, w: np.ndarray, fix: _Fix | None) -> np.ndarray:
    """a @ w^T for a shared ``w``, with ``fix``'s copies corrected where ``fix`` is about ``w``."""
    out = _mm(a, w.T)
    return out if fix is None else fix.apply(out, a)


def _direction(cfg: LSTMConfig, w: Mapping[str, np.ndarray], names, u, h, c, mask, fix: _Fix | None):
    """One direction over its processing order: u (T, K, B, I), h (K, B, P), c (K, B, H), biases
    and peepholes (K, ...) or shared, matrices shared (``fix`` corrects a perturbed one). Returns its
    outputs (T, K, B, P) and final h, c."""
    hidden = cfg.hidden_size
    rows = {g: gate_slice(g, hidden) for g in "ifgo"}
    fixes = {n: (fix if fix is not None and fix.name == n else None) for n in (names[0], names[1], names[-1])}
    bias = w[names[2]] + w[names[3]]
    shift = np.zeros(4 * hidden)
    shift[rows["f"]] = cfg.forget_bias
    projected = _product(u, w[names[0]], fixes[names[0]]) + (bias + shift)[..., None, :][None]
    out = []
    for t in range(u.shape[0]):
        z = projected[t] + _product(h, w[names[1]], fixes[names[1]])
        z_i, z_f, z_g, z_o = (z[..., rows[g]] for g in "ifgo")
        if cfg.peepholes:
            z_i = z_i + w[names[4]][..., None, :] * c
            z_f = z_f + w[names[5]][..., None, :] * c
        f = _sigmoid(z_f)
        i = _sigmoid(-z_f) if cfg.coupled else _sigmoid(z_i)
        c_new = f * c + i * _tanh(z_g)
        if cfg.peepholes:
            z_o = z_o + w[names[6]][..., None, :] * c_new
        m = _sigmoid(z_o) * (_tanh(c_new) if cfg.cell_output == "tanh" else c_new)
        h_new = _product(m, w[names[-1]], fixes[names[-1]]) if cfg.proj_size else m
        if mask is not None:  # padding keeps the state (packed sequences)
            h_new = np.where(mask[t], h_new, h)
            c_new = np.where(mask[t], c_new, c)
        h, c = h_new, c_new
        out.append(h)
    k_copies = max(a.shape[0] for a in out)  # a copy axis may appear at any step (a perturbed state)
    return np.stack([np.broadcast_to(a, (k_copies, *a.shape[1:])) for a in out]), h, c


def copies_loss(base: GenericBase, arrays: Mapping[str, np.ndarray], fix: _Fix | None = None) -> np.ndarray:
    """The loss of each of K copies (K,): ``arrays`` holds perturbed tensors (vectors and x, h0, c0),
    each (K, *shape), ``fix`` a perturbed weight matrix; every other array is the base case's."""
    case, cfg = base.case, base.config
    w = {**case.params, **{n: a for n, a in arrays.items() if n in case.params}}
    k_copies = len(fix.delta) if fix is not None else next(iter(arrays.values())).shape[0]
    x = arrays["x"].transpose(1, 0, 2, 3) if "x" in arrays else case.x[:, None]
    h0 = arrays.get("h0", case.h0[None])  # (K or 1, L*D, B, P)
    c0 = arrays.get("c0", case.c0[None])
    mask = step_mask(case.lengths, cfg.seq_len)
    mask = None if mask is None else mask[:, None]  # (T, 1, B, 1)
    reverse = reverse_order(case.lengths, cfg.seq_len, cfg.batch_size)
    u, finals_h, finals_c = x, [], []
    for layer in range(cfg.num_layers):
        outputs = []
        for d in range(cfg.num_directions):
            state = layer * cfg.num_directions + d
            order = reverse if d else None
            names = direction_param_names(cfg, layer, d)
            out, h_n, c_n = _direction(cfg, w, names, _reorder(u, order), h0[:, state], c0[:, state], mask, fix)
            outputs.append(_reorder(out, order))
            finals_h.append(h_n)
            finals_c.append(c_n)
        k_here = max(o.shape[1] for o in outputs)  # one direction may carry the copies, the other not
        outputs = [np.broadcast_to(o, (o.shape[0], k_here, *o.shape[2:])) for o in outputs]
        u = np.concatenate(outputs, axis=-1) if len(outputs) > 1 else outputs[0]
    if cfg.has_head:
        head_fix = fix if fix is not None and fix.name == HEAD_WEIGHT else None
        y = _product(u, w[HEAD_WEIGHT], head_fix) + w[HEAD_BIAS][..., None, :][None]
    else:
        y = u
    y = np.broadcast_to(y, (y.shape[0], k_copies, *y.shape[2:]))  # (T, K, B, O)
    loss = head_loss(np.moveaxis(y, 1, 0), cfg, base.scored, need_grad=False)[0]
    if cfg.final_state:
        for state, (h_n, c_n) in enumerate(zip(finals_h, finals_c, strict=True)):
            loss = loss + np.sum(case.dh_n[state] * h_n, axis=(-2, -1)) + np.sum(case.dc_n[state] * c_n, axis=(-2, -1))
    return np.broadcast_to(loss, (k_copies,))


def _per_copy_elements(cfg: LSTMConfig) -> int:
    """Numbers one copy's forward keeps at a time (a layer's inputs and outputs, its pre-activations)."""
    width = max(cfg.input_size, cfg.top_width, 4 * cfg.hidden_size)
    return 4 * cfg.seq_len * cfg.batch_size * width


def generic_partial_losses_many(
    base: GenericBase, requests: Sequence[tuple[str, np.ndarray, np.ndarray]]
) -> list[np.ndarray]:
    """The loss of every copy ``θ + δ_k e_{i_k}`` of every request ``(name, index, delta)`` (C = 0,
    Note [Generic copies]); every delta promoted to one dtype (complex128 if any is complex)."""
    dtype = np.result_type(np.float64, *(np.asarray(d).dtype for _, _, d in requests))
    shapes = gradient_shapes(base.config)
    arrays = base.case.arrays()
    per_chunk = max(1, CHUNK_ELEMENTS // _per_copy_elements(base.config))
    outs = []
    for name, elements, steps in requests:
        index = np.asarray(elements, dtype=np.int64).reshape(-1)
        delta = np.asarray(steps).astype(dtype).reshape(-1)
        out = np.empty(len(index), dtype=dtype)
        flat = arrays[name].astype(dtype).reshape(-1)
        matrix = len(shapes[name]) == 2 and name not in ("x", "h0", "c0")
        for start in range(0, len(index), per_chunk):
            part = slice(start, start + per_chunk)
            idx, dlt = index[part], delta[part]
            if matrix:
                rows, cols = np.unravel_index(idx, shapes[name])
                out[part] = copies_loss(base, {}, _Fix(name, rows, cols, dlt))
                continue
            copies = np.tile(flat, (len(idx), 1))
            copies[np.arange(len(idx)), idx] += dlt
            out[part] = copies_loss(base, {name: copies.reshape(len(idx), *shapes[name])})
        outs.append(out)
    return outs
