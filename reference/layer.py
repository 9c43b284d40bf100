"""One LSTM layer (one direction) of the plain LSTM, forward and backward by hand, at BLAS speed.

Layer k, step t (input u_t), with the total bias b = b_ih + b_hh + forget_bias on the forget rows::

    z_t = W_ih u_t + W_hh h_{t-1} + b                       (B, 4H), blocks i, f, g, o
    i_t = sigmoid(z_i)  f_t = sigmoid(z_f)  g_t = tanh(z_g)  o_t = sigmoid(z_o)
    c_t = f_t * c_{t-1} + i_t * g_t
    h_t = o_t * tanh(c_t)          (cell_output "tanh")   or   o_t * c_t   ("identity")

and backwards, t = T-1 .. 0, with dh_out_t the gradient reaching h_t from outside the layer::

    dh_t  = dh_out_t + W_hh^T dz_{t+1}                     (dh_n at t = T-1)
    dc_t  = dc_{t+1} * f_{t+1} + dh_t * o_t * tanh'(c_t)   (dc_n at t = T-1; identity: dh_t * o_t)
    dz_i = dc_t g_t sigma'   dz_f = dc_t c_{t-1} sigma'   dz_g = dc_t i_t tanh'   dz_o = dh_t tanh(c_t) sigma'
    dW_ih = sum_t dz_t u_t^T   dW_hh = sum_t dz_t h_{t-1}^T   db = sum_t dz_t   du_t = W_ih^T dz_t

Padding steps (mask False) copy the state forward, so their gradient passes straight through
and their dz is zero. The LSTM family's settings (peepholes, projection, coupled gates) are
in :mod:`lstm_gradcheck.reference.family_layer`; this module is the plain LSTM's fast path.

Note [Speed]
------------
One GEMM projects every step's input, one GEMM per step runs the recurrence, and each
weight gradient is one GEMM after the loop; elementwise work writes into arrays made once
(``out=``), so the loops allocate nothing. On small cases numpy's per-call overhead, not
arithmetic, is the cost: views are made once per layer, and in-place updates are written
``np.add(a, b, out=a)``, cheaper per call than ``a += b``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from lstm_gradcheck.reference.activations import activate_gates, gate_constants
from lstm_gradcheck.reference.layout import gate_blocks

__all__ = ["LayerCache", "LayerGrads", "StatePerturbation", "layer_forward", "layer_backward"]


@dataclass(frozen=True)
class LayerCache:
    """What one layer's backward needs. T steps, B batch, I_k inputs, H hidden.

    Attributes:
        inputs: (T, B, I_k) the layer's input sequence.
        w_ih, w_hh: (4H, I_k), (4H, H) weights.
        gates: (T, B, 4H) activations i, f, g, o.
        dgates: (T, B, 4H) derivative of each activation wrt its pre-activation.
        h: (T+1, B, H) h[0] = h0, h[t+1] = h_t.
        c: (T+1, B, H) c[0] = c0, c[t+1] = c_t.
        cell: (T, B, H) tanh(c_t), or c_t for cell_output "identity".
        mask: (T, B, 1) bool, True on valid steps, or None (no padding).
    """

    inputs: np.ndarray
    w_ih: np.ndarray
    w_hh: np.ndarray
    gates: np.ndarray
    dgates: np.ndarray
    h: np.ndarray
    c: np.ndarray
    cell: np.ndarray
    mask: np.ndarray | None
    cell_output: str


@dataclass(frozen=True)
class LayerGrads:
    """Gradients of one layer: du (T, B, I_k), dw_ih, dw_hh, db (4H,) (shared by
    b_ih and b_hh), dh0 and dc0 (B, H), and dz (T, B, 4H), the per-step gate
    pre-activation gradients."""

    du: np.ndarray
    dw_ih: np.ndarray
    dw_hh: np.ndarray
    db: np.ndarray
    dh0: np.ndarray
    dc0: np.ndarray
    dz: np.ndarray


#: ``perturb(h_t, c_t)``: changes a layer's new states in place after each step.
StatePerturbation = Callable[[np.ndarray, np.ndarray], None]


def layer_forward(
    inputs: np.ndarray,
    w_ih: np.ndarray,
    w_hh: np.ndarray,
    bias: np.ndarray,
    h0: np.ndarray,
    c0: np.ndarray,
    *,
    cell_output: str = "tanh",
    mask: np.ndarray | None = None,
    perturb: StatePerturbation | None = None,
) -> LayerCache:
    """Run one LSTM layer over a sequence.

    Args:
        inputs: (T, B, I) input sequence.
        w_ih, w_hh: (4H, I) and (4H, H) weights, gate blocks i, f, g, o.
        bias: (4H,) the total bias b_ih + b_hh with forget_bias already added
            to the forget rows (see :func:`effective_bias`).
        h0, c0: (B, H) initial states.
        cell_output: "tanh" (h = o tanh(c)) or "identity" (h = o c).
        mask: (T, B, 1) valid-step mask or None.
        perturb: called as ``perturb(h_t, c_t)`` after every step to change the
            new states in place; the tolerance rule uses it to emulate rounding
            at every step (see ``lstm_gradcheck.oracles.compare.conditioning_allowance``).

    Returns:
        The layer's :class:`LayerCache`; its outputs are ``cache.h[1:]``.
    """
    t_len, batch, _ = inputs.shape
    hidden = w_hh.shape[1]
    dtype = np.result_type(inputs, w_ih, w_hh, h0)
    consts = gate_constants(hidden, dtype)
    # The forward works on e = -s z (Note [Accurate saturated gates]): -s folded into
    # the weights and the bias saves a pass over every step's 4H pre-activations.
    neg_s = consts.neg_s[:, None]
    w_ih_e = neg_s * w_ih
    # Contiguous, so each step's GEMM reads it row by row rather than through a strided view.
    w_hh_e_t = np.ascontiguousarray((neg_s * w_hh).T)
    bias_e = consts.neg_s * bias
    e = (inputs.reshape(t_len * batch, -1) @ w_ih_e.T).reshape(t_len, batch, 4 * hidden)
    gates = np.empty((t_len, batch, 4 * hidden), dtype=dtype)
    h = np.empty((t_len + 1, batch, hidden), dtype=dtype)
    c = np.empty_like(h)
    cell = np.empty((t_len, batch, hidden), dtype=dtype)
    h[0], c[0] = h0, c0
    rec = np.empty((batch, 4 * hidden), dtype=dtype)
    tmp = np.empty((batch, hidden), dtype=dtype)
    identity = cell_output == "identity"
    # Each gate's (T, B, H) view, made once: per-step slicing costs more than the arithmetic
    # on small cases (Note [Speed]).
    gate_i, gate_f, gate_g, gate_o = gate_blocks(gates, hidden)
    for t in range(t_len):
        h_prev, c_prev, h_t, c_t, cell_t = h[t], c[t], h[t + 1], c[t + 1], cell[t]
        np.matmul(h_prev, w_hh_e_t, out=rec)
        # The bias joins here, while rec is in cache, rather than in a pass over all of e.
        np.add(rec, bias_e, out=rec)
        e_t = e[t]
        np.add(e_t, rec, out=e_t)
        # e[t] becomes the derivative of each gate wrt its pre-activation (stored in place).
        activate_gates(e_t, consts, gates[t])
        np.multiply(gate_f[t], c_prev, out=c_t)
        np.multiply(gate_i[t], gate_g[t], out=tmp)
        np.add(c_t, tmp, out=c_t)
        if identity:
            cell_t[...] = c_t
        else:
            np.tanh(c_t, out=cell_t)
        np.multiply(gate_o[t], cell_t, out=h_t)
        if perturb is not None:
            perturb(h_t, c_t)
        if mask is not None:
            # Padding copies the state forward, exactly like torch's packed sequences.
            padded = ~mask[t]
            np.copyto(h_t, h_prev, where=padded)
            np.copyto(c_t, c_prev, where=padded)
    return LayerCache(inputs, w_ih, w_hh, gates, e, h, c, cell, mask, cell_output)


def layer_backward(
    cache: LayerCache,
    dh_out: np.ndarray,
    dh_n: np.ndarray | None = None,
    dc_n: np.ndarray | None = None,
    *,
    overwrite_cache: bool = False,
) -> LayerGrads:
    """Backpropagate through one layer (the recursion in the module docstring).

    Args:
        cache: the layer's :class:`LayerCache`.
        dh_out: (T, B, H) gradient of the loss wrt each output h_t from outside
            the layer (the head or the layer above).
        dh_n, dc_n: (B, H) gradients wrt the final states, or None (zero).
        overwrite_cache: write dz over ``cache.dgates`` instead of a new array
            (Note [Memory]); the cache must not be used again.
    """
    t_len, batch, _ = cache.inputs.shape
    hidden = cache.w_hh.shape[1]
    dtype = cache.gates.dtype
    mask = cache.mask
    identity = cache.cell_output == "identity"
    dz = cache.dgates if overwrite_cache else np.empty((t_len, batch, 4 * hidden), dtype=dtype)
    # dz_t = (what multiplies each gate's derivative) * dgates_t: the factors go to a scratch
    # first, so that dz may be dgates itself.
    factors = np.empty((batch, 4 * hidden), dtype=dtype)
    fac_i, fac_f, fac_g, fac_o = gate_blocks(factors, hidden)
    # The carries into the last step; on exit, the gradients wrt h0 and c0.
    dh_next = np.zeros((batch, hidden), dtype=dtype) if dh_n is None else np.array(dh_n, dtype=dtype)
    dc_next = np.zeros((batch, hidden), dtype=dtype) if dc_n is None else np.array(dc_n, dtype=dtype)
    dh = np.empty_like(dh_next)
    dc = np.empty_like(dh_next)
    tmp = np.empty_like(dh_next)
    dh_prev = np.empty_like(dh_next)
    gate_i, gate_f, gate_g, gate_o = gate_blocks(cache.gates, hidden)  # once, not per step
    c_prev, cells, dgates, w_hh = cache.c, cache.cell, cache.dgates, cache.w_hh
    for t in range(t_len - 1, -1, -1):
        np.add(dh_out[t], dh_next, out=dh)
        cell = cells[t]
        # dc = dc_next + dh * o * d(cell)/dc
        np.multiply(dh, gate_o[t], out=dc)
        if not identity:
            np.multiply(cell, cell, out=tmp)
            np.subtract(1.0, tmp, out=tmp)
            np.multiply(dc, tmp, out=dc)
        np.add(dc, dc_next, out=dc)
        np.multiply(dc, gate_g[t], out=fac_i)
        np.multiply(dc, c_prev[t], out=fac_f)
        np.multiply(dc, gate_i[t], out=fac_g)
        np.multiply(dh, cell, out=fac_o)
        dz_t = dz[t]
        np.multiply(factors, dgates[t], out=dz_t)
        if mask is None:
            np.matmul(dz_t, w_hh, out=dh_next)
            np.multiply(dc, gate_f[t], out=dc_next)
        else:
            valid = mask[t]
            np.multiply(dz_t, valid, out=dz_t)
            np.matmul(dz_t, w_hh, out=dh_prev)
            # A padded step is a copy: its incoming gradients pass through unchanged.
            np.copyto(dh_next, np.where(valid, dh_prev, dh))
            np.copyto(dc_next, np.where(valid, dc * gate_f[t], dc_next))
    flat_dz = dz.reshape(t_len * batch, 4 * hidden)
    # (u^T dz)^T rather than dz^T u: the same product, about 10% faster in OpenBLAS here.
    dw_ih = (cache.inputs.reshape(t_len * batch, -1).T @ flat_dz).T
    dw_hh = (cache.h[:-1].reshape(t_len * batch, hidden).T @ flat_dz).T
    # A GEMV, faster than flat_dz.sum(axis=0) on long cases and no less accurate.
    db = np.ones(t_len * batch, dtype=dtype) @ flat_dz
    du = (flat_dz @ cache.w_ih).reshape(t_len, batch, -1)
    return LayerGrads(du, dw_ih, dw_hh, db, dh_next, dc_next, dz)
