"""One direction of one layer of the LSTM family (peepholes, projection, coupled gates), by hand.

Step t in the direction's own processing order (the reverse direction runs on its sequence
reversed, see :mod:`lstm_gradcheck.reference.directions`), input u_t, P = proj_size or H::

    z_t  = W_ih u_t + W_hh h_{t-1} + b                      (B, 4H), blocks i, f, g, o; b has forget_bias
    z_i += w_ci * c_{t-1}    z_f += w_cf * c_{t-1}          (peepholes: diagonal weights, (H,) each)
    f_t  = sigmoid(z_f)   i_t = sigmoid(z_i), or 1 - f_t when coupled (CIFG: the i rows are unused)
    g_t  = tanh(z_g)      c_t = f_t * c_{t-1} + i_t * g_t
    z_o += w_co * c_t     o_t = sigmoid(z_o)                (the output peephole sees the new cell)
    m_t  = o_t * tanh(c_t)   (or o_t * c_t)      h_t = W_hr m_t  (P,) with a projection, else m_t

Backward, t = T-1 .. 0, with dh_out_t the gradient reaching h_t from outside the layer::

    dr_t  = dh_out_t + W_hh^T dz_{t+1}            dm_t = W_hr^T dr_t (or dr_t)     (dh_n at t = T-1)
    dz_o  = dm_t cell(c_t) sigma'(z_o)
    dc_t  = f_{t+1} dc_{t+1} + w_ci dz_i^{t+1} + w_cf dz_f^{t+1} + dm_t o_t cell'(c_t) + w_co dz_o
    dz_i  = dc_t g_t sigma'(z_i)     dz_f = dc_t c_{t-1} sigma'(z_f)     (coupled: dz_i = 0,
                                     dz_f = dc_t (c_{t-1} - g_t) sigma'(z_f), since di/dz_f = -sigma')
    dz_g  = dc_t i_t tanh'(z_g)
    dW_ih = sum dz u^T   dW_hh = sum dz h_{t-1}^T   db = sum dz   du_t = W_ih^T dz_t
    dw_ci = sum dz_i c_{t-1}   dw_cf = sum dz_f c_{t-1}   dw_co = sum dz_o c_t   dW_hr = sum dr_t m_t^T

Padding steps (mask False) copy the state forward; their dz and dr are zero and the incoming
gradients pass through. Peephole terms are written out per step (the recurrence on c can no
longer be split off the GEMM), so this path is slower than the plain one
(:mod:`lstm_gradcheck.reference.layer`), which every case without these settings takes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lstm_gradcheck.reference.activations import sigmoid_and_grad, tanh_and_grad
from lstm_gradcheck.reference.layer import StatePerturbation
from lstm_gradcheck.reference.layout import gate_blocks, stack_gates

__all__ = ["DirectionParams", "FamilyLayerCache", "FamilyLayerGrads", "family_layer_forward", "family_layer_backward"]


@dataclass(frozen=True)
class DirectionParams:
    """One direction's parameters: ``w_ih`` (4H, I), ``w_hh`` (4H, P), ``bias`` (4H,) = b_ih + b_hh
    with forget_bias on the forget rows; ``w_ci``, ``w_cf``, ``w_co`` (H,) or None (no peepholes);
    ``w_hr`` (P, H) or None (no projection)."""

    w_ih: np.ndarray
    w_hh: np.ndarray
    bias: np.ndarray
    w_ci: np.ndarray | None = None
    w_cf: np.ndarray | None = None
    w_co: np.ndarray | None = None
    w_hr: np.ndarray | None = None

    @property
    def peepholes(self) -> bool:
        return self.w_ci is not None


@dataclass(frozen=True)
class FamilyLayerCache:
    """What the backward of one direction needs, every (T, ...) array in processing order.

    Attributes:
        inputs: (T, B, I) the direction's input sequence.
        p: the :class:`DirectionParams`.
        gates: (T, B, 4H) i, f, g, o (i = 1 - f when coupled).
        dgates: (T, B, 4H) each activation's derivative wrt its own pre-activation (the i rows
            hold sigma'(z_f) when coupled: di/dz_f = -sigma'(z_f)).
        h: (T+1, B, P) and c: (T+1, B, H), index 0 the initial states.
        m: (T, B, H) o * cell, what the projection reads; cell: (T, B, H) tanh(c_t) or c_t.
        mask: (T, B, 1) bool or None; cell_output; coupled.
    """

    inputs: np.ndarray
    p: DirectionParams
    gates: np.ndarray
    dgates: np.ndarray
    h: np.ndarray
    c: np.ndarray
    m: np.ndarray
    cell: np.ndarray
    mask: np.ndarray | None
    cell_output: str
    coupled: bool

    @property
    def w_hh(self) -> np.ndarray:
        return self.p.w_hh


@dataclass(frozen=True)
class FamilyLayerGrads:
    """Gradients of one direction: du (T, B, I), dw_ih, dw_hh, db (shared by b_ih and b_hh), dw_ci,
    dw_cf, dw_co (H,) or None, dw_hr (P, H) or None, dh0 (B, P), dc0 (B, H); and per step, in
    processing order, dz (T, B, 4H) and dr (T, B, P), the gradient wrt each h_t (zero on padding)."""

    du: np.ndarray
    dw_ih: np.ndarray
    dw_hh: np.ndarray
    db: np.ndarray
    dw_ci: np.ndarray | None
    dw_cf: np.ndarray | None
    dw_co: np.ndarray | None
    dw_hr: np.ndarray | None
    dh0: np.ndarray
    dc0: np.ndarray
    dz: np.ndarray
    dr: np.ndarray


def family_layer_forward(
    inputs: np.ndarray,
    p: DirectionParams,
    h0: np.ndarray,
    c0: np.ndarray,
    *,
    cell_output: str = "tanh",
    coupled: bool = False,
    mask: np.ndarray | None = None,
    perturb: StatePerturbation | None = None,
) -> FamilyLayerCache:
    """Run one direction over its sequence (the module docstring's forward).

    Args:
        inputs: (T, B, I) in processing order; p: the direction's parameters.
        h0: (B, P), c0: (B, H) its initial states.
        mask: (T, B, 1) valid steps or None; perturb: ``perturb(h_t, c_t)`` after every step
            (the tolerance rule's rounding probes).
    """
    t_len, batch, _ = inputs.shape
    hidden = p.w_hh.shape[0] // 4
    dtype = np.result_type(inputs, p.w_ih, p.w_hh, h0)
    projected = (inputs.reshape(t_len * batch, -1) @ p.w_ih.T + p.bias).reshape(t_len, batch, 4 * hidden)
    gates = np.empty((t_len, batch, 4 * hidden), dtype=dtype)
    dgates = np.empty_like(gates)
    h = np.empty((t_len + 1, batch, h0.shape[-1]), dtype=dtype)
    c = np.empty((t_len + 1, batch, hidden), dtype=dtype)
    m = np.empty((t_len, batch, hidden), dtype=dtype)
    cell = np.empty_like(m)
    h[0], c[0] = h0, c0
    g_i, g_f, g_g, g_o = gate_blocks(gates, hidden)
    d_i, d_f, d_g, d_o = gate_blocks(dgates, hidden)
    w_hh_t = p.w_hh.T
    for t in range(t_len):
        z_i, z_f, z_g, z_o = gate_blocks(projected[t] + h[t] @ w_hh_t, hidden)
        if p.peepholes:
            z_i, z_f = z_i + p.w_ci * c[t], z_f + p.w_cf * c[t]
        g_f[t], d_f[t] = sigmoid_and_grad(z_f)
        if coupled:
            g_i[t], d_i[t] = sigmoid_and_grad(-z_f)  # 1 - f, without the cancellation
        else:
            g_i[t], d_i[t] = sigmoid_and_grad(z_i)
        g_g[t], d_g[t] = tanh_and_grad(z_g)
        c[t + 1] = g_f[t] * c[t] + g_i[t] * g_g[t]
        if p.peepholes:
            z_o = z_o + p.w_co * c[t + 1]
        g_o[t], d_o[t] = sigmoid_and_grad(z_o)
        cell[t] = c[t + 1] if cell_output == "identity" else np.tanh(c[t + 1])
        m[t] = g_o[t] * cell[t]
        h[t + 1] = m[t] if p.w_hr is None else m[t] @ p.w_hr.T
        if perturb is not None:
            perturb(h[t + 1], c[t + 1])
        if mask is not None:
            # Padding copies the state forward, exactly like torch's packed sequences.
            h[t + 1] = np.where(mask[t], h[t + 1], h[t])
            c[t + 1] = np.where(mask[t], c[t + 1], c[t])
    return FamilyLayerCache(inputs, p, gates, dgates, h, c, m, cell, mask, cell_output, coupled)


def family_layer_backward(
    cache: FamilyLayerCache, dh_out: np.ndarray, dh_n: np.ndarray | None = None, dc_n: np.ndarray | None = None
) -> FamilyLayerGrads:
    """Backpropagate through one direction (the module docstring's backward).

    Args:
        cache: its :class:`FamilyLayerCache`.
        dh_out: (T, B, P) gradient wrt each h_t from outside the layer, in processing order.
        dh_n, dc_n: (B, P), (B, H) gradients wrt the direction's final states, or None (zero).
    """
    p, mask = cache.p, cache.mask
    t_len, batch, _ = cache.inputs.shape
    hidden = p.w_hh.shape[0] // 4
    dtype = cache.gates.dtype
    identity = cache.cell_output == "identity"
    dz = np.zeros((t_len, batch, 4 * hidden), dtype=dtype)
    dr_all = np.zeros((t_len, batch, cache.h.shape[-1]), dtype=dtype)
    dh_next = np.zeros_like(cache.h[0]) if dh_n is None else np.array(dh_n, dtype=dtype)
    dc_next = np.zeros_like(cache.c[0]) if dc_n is None else np.array(dc_n, dtype=dtype)
    g_i, g_f, g_g, g_o = gate_blocks(cache.gates, hidden)
    d_i, d_f, d_g, d_o = gate_blocks(cache.dgates, hidden)
    zero = np.zeros((batch, hidden), dtype=dtype)
    for t in range(t_len - 1, -1, -1):
        c_prev, cell = cache.c[t], cache.cell[t]
        dr = dh_out[t] + dh_next
        dm = dr if p.w_hr is None else dr @ p.w_hr
        dz_o = dm * cell * d_o[t]
        dcell = 1.0 if identity else 1.0 - cell * cell
        dc = dc_next + dm * g_o[t] * dcell
        if p.peepholes:
            dc = dc + p.w_co * dz_o
        if cache.coupled:
            dz_i, dz_f = zero, dc * (c_prev - g_g[t]) * d_f[t]
        else:
            dz_i, dz_f = dc * g_g[t] * d_i[t], dc * c_prev * d_f[t]
        dz_t = stack_gates({"i": dz_i, "f": dz_f, "g": dc * g_i[t] * d_g[t], "o": dz_o}, axis=-1)
        dc_prev = dc * g_f[t]
        if p.peepholes:
            dc_prev = dc_prev + p.w_ci * dz_t[:, :hidden] + p.w_cf * dz_t[:, hidden : 2 * hidden]
        if mask is None:
            dz[t], dr_all[t] = dz_t, dr
            dh_next, dc_next = dz_t @ p.w_hh, dc_prev
        else:
            valid = mask[t]
            dz[t], dr_all[t] = dz_t * valid, dr * valid
            # A padded step is a copy: its incoming gradients pass through unchanged.
            dh_next = np.where(valid, dz[t] @ p.w_hh, dr)
            dc_next = np.where(valid, dc_prev, dc_next)
    flat_dz = dz.reshape(t_len * batch, 4 * hidden)
    dw_ih = flat_dz.T @ cache.inputs.reshape(t_len * batch, -1)
    dw_hh = flat_dz.T @ cache.h[:-1].reshape(t_len * batch, -1)
    db = flat_dz.sum(axis=0)
    du = (flat_dz @ p.w_ih).reshape(t_len, batch, -1)
    dw_ci = dw_cf = dw_co = dw_hr = None
    if p.peepholes:
        dz_i, dz_f, _, dz_o = gate_blocks(dz, hidden)
        dw_ci = np.einsum("tbh,tbh->h", dz_i, cache.c[:-1])
        dw_cf = np.einsum("tbh,tbh->h", dz_f, cache.c[:-1])
        dw_co = np.einsum("tbh,tbh->h", dz_o, cache.c[1:])
    if p.w_hr is not None:
        dw_hr = dr_all.reshape(t_len * batch, -1).T @ cache.m.reshape(t_len * batch, hidden)
    return FamilyLayerGrads(du, dw_ih, dw_hh, db, dw_ci, dw_cf, dw_co, dw_hr, dh_next, dc_next, dz, dr_all)
