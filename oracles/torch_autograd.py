"""Oracle ``torch``: the contract's equations written in torch, float64, under autograd.

A thin adapter and deliberately independent of the reference: torch's own
sigmoid/tanh, ``log_softmax``, ``mse_loss`` and ``binary_cross_entropy_with_logits``,
an explicit Python loop over steps, and ``torch.where`` for padding. It
expresses every setting of the contract (identity cell output included) and of the LSTM
family: peepholes, projection, coupled gates, and a reverse direction run step by step from
the last step down (padding keeps the state, so each sequence starts at its own last step).

With ``per_step=True`` every step gets its own leaf copy of each layer's
weights and biases, so autograd returns each step's contribution to each
parameter gradient: the report uses it to find the step where an error enters.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from lstm_gradcheck.reference.case import Case
from lstm_gradcheck.reference.config import UPSTREAM
from lstm_gradcheck.reference.layout import HEAD_BIAS, HEAD_WEIGHT, STATE_INPUTS, direction_param_names, gate_slice

__all__ = ["TorchResult", "final_state_term", "reduced_loss", "scored_logits", "threads_for", "torch_grads"]

_DTYPE = torch.float64


@dataclass(frozen=True)
class TorchResult:
    """loss, gradients by contract name (float64), and, if asked, per-step
    contributions name -> (T, *shape) for each LSTM parameter; torch.nn's
    oracle also times its bare forward and backward (seconds, float64)."""

    loss: float
    grads: dict[str, np.ndarray]
    per_step: dict[str, np.ndarray] | None = None
    forward_backward_seconds: float | None = None


def _leaf(a: np.ndarray, dtype: torch.dtype = _DTYPE, device: str = "cpu") -> torch.Tensor:
    return torch.tensor(np.asarray(a, dtype=np.float64), device=device).to(dtype).requires_grad_(True)


def _numpy(g: torch.Tensor) -> np.ndarray:
    """A gradient as NumPy: float64 stays float64, lower precisions come back as float32."""
    return g.detach().to(torch.float64 if g.dtype == torch.float64 else torch.float32).cpu().numpy()


def scored_logits(y: torch.Tensor, case: Case) -> tuple[torch.Tensor, torch.Tensor]:
    """The scored logits (N, O) of y (T, B, O) and their targets, per the contract."""
    cfg = case.config
    t_len, batch = cfg.seq_len, cfg.batch_size
    device = y.device
    lengths = (
        torch.full((batch,), t_len, dtype=torch.long, device=device)
        if case.lengths is None
        else torch.tensor(np.array(case.lengths), dtype=torch.long, device=device)
    )
    targets = torch.tensor(np.array(case.targets), device=device)
    if cfg.loss_at == "every":
        valid = torch.arange(t_len, device=device)[:, None] < lengths[None, :]
        logits, tgt = y[valid], targets[valid]
    else:
        logits, tgt = y[lengths - 1, torch.arange(batch, device=device)], targets
    return logits, (tgt.long() if cfg.loss == "cross_entropy" else tgt.to(y.dtype))


def reduced_loss(y: torch.Tensor, case: Case) -> torch.Tensor:
    """The contract's loss of the logits y (T, B, O) (the top layer's h for ``upstream``), reduced."""
    cfg = case.config
    logits, tgt = scored_logits(y, case)
    if cfg.loss == UPSTREAM:
        return (logits * tgt).sum()
    if cfg.loss == "cross_entropy":
        return F.cross_entropy(logits, tgt, reduction=cfg.reduction)
    if cfg.loss == "mse":
        return F.mse_loss(logits, tgt, reduction=cfg.reduction)
    return F.binary_cross_entropy_with_logits(logits, tgt, reduction=cfg.reduction)


def final_state_term(case: Case, h_n: torch.Tensor, c_n: torch.Tensor) -> torch.Tensor:
    """sum(dh_n * h_n) + sum(dc_n * c_n), added after the reduction."""
    dh_n = torch.tensor(np.array(case.dh_n), device=h_n.device).to(h_n.dtype)
    dc_n = torch.tensor(np.array(case.dc_n), device=c_n.device).to(c_n.dtype)
    return (dh_n * h_n).sum() + (dc_n * c_n).sum()


#: Below this many multiply-adds per step, torch's intra-op threads cost more than they
#: save: a small case's steps are too short to split.
_SMALL_STEP = 1 << 16


@contextlib.contextmanager
def threads_for(case: Case) -> Iterator[None]:
    """Run torch single-threaded for small cases, restoring the thread count afterwards."""
    cfg = case.config
    work = cfg.batch_size * 4 * cfg.hidden_size * (max(cfg.input_size, cfg.hidden_size) + cfg.hidden_size)
    before = torch.get_num_threads()
    if work >= _SMALL_STEP or before == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def torch_grads(case: Case, per_step: bool = False, dtype: torch.dtype = _DTYPE, device: str = "cpu") -> TorchResult:
    """Loss and gradients of ``case`` under torch autograd, in float64 (as an oracle), or in
    ``dtype`` on ``device`` (torch's own error there: Note [Same-precision rule])."""
    with threads_for(case):
        return _torch_grads(case, per_step, dtype, device)


def _cell(
    cfg, names: tuple[str, ...], w: dict[str, torch.Tensor], projected: torch.Tensor, h: torch.Tensor, c: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """One step of one direction: the contract's cell with the family's settings (CONTRACT.md).

    ``names`` are the direction's parameter names (weight_ih, weight_hh, bias_ih, bias_hh, then the
    peepholes ci, cf, co and the projection hr where the config has them); ``w`` maps them to tensors
    (:func:`_with_transposes`); ``projected`` is W_ih u_t + b_ih + b_hh + forget_bias."""
    hidden = cfg.hidden_size
    z = projected + h @ w["hh_t"]
    z_i, z_f, z_g, z_o = z.split(hidden, dim=-1)
    if cfg.peepholes:
        z_i = z_i + w[names[4]] * c
        z_f = z_f + w[names[5]] * c
    f_t = torch.sigmoid(z_f)
    i_t = 1.0 - f_t if cfg.coupled else torch.sigmoid(z_i)
    c_new = f_t * c + i_t * torch.tanh(z_g)
    if cfg.peepholes:
        z_o = z_o + w[names[6]] * c_new
    m = torch.sigmoid(z_o) * (torch.tanh(c_new) if cfg.cell_output == "tanh" else c_new)
    h_new = m @ w["hr_t"] if cfg.proj_size else m
    return h_new, c_new


def _with_transposes(w: dict[str, torch.Tensor], names: tuple[str, ...]) -> dict[str, torch.Tensor]:
    """``w`` plus W_hh^T (``"hh_t"``) and, for a projection (the last name), W_hr^T (``"hr_t"``)."""
    w["hh_t"] = w[names[1]].T
    if names[-1].startswith("weight_hr"):
        w["hr_t"] = w[names[-1]].T
    return w


def _torch_grads(case: Case, per_step: bool, dtype: torch.dtype = _DTYPE, device: str = "cpu") -> TorchResult:
    cfg = case.config
    hidden, t_len = cfg.hidden_size, cfg.seq_len
    params = {name: _leaf(a, dtype, device) for name, a in case.params.items()}
    states = {name: _leaf(getattr(case, name), dtype, device) for name in STATE_INPUTS}
    mask = None
    if case.lengths is not None:
        lengths = torch.tensor(np.array(case.lengths), dtype=torch.long, device=device)
        mask = (torch.arange(t_len, device=device)[:, None] < lengths[None, :])[..., None]  # (T, B, 1)
    step_leaves: dict[str, list[torch.Tensor]] = {}
    # forget_bias is a constant inside the forget gate's sigmoid: a constant shift of z_f.
    shift = torch.zeros(4 * hidden, dtype=dtype, device=device)
    shift[gate_slice("f", hidden)] = cfg.forget_bias
    inputs = states["x"]  # (T, B, I), then each layer's outputs (T, B, D * P)
    h_n, c_n = [], []
    for k in range(cfg.num_layers):
        outputs = []
        for d in range(cfg.num_directions):
            names = direction_param_names(cfg, k, d)
            if per_step:
                # Each step its own leaf copy of the direction's parameters: autograd then returns
                # every step's contribution to each parameter gradient (by time step).
                copies = {n: [params[n].detach().clone().requires_grad_(True) for _ in range(t_len)] for n in names}
                step_leaves.update(copies)
                weights = [_with_transposes({n: copies[n][t] for n in names}, names) for t in range(t_len)]
                projected = [
                    inputs[t] @ w[names[0]].T + w[names[2]] + w[names[3]] + shift for t, w in enumerate(weights)
                ]
            else:
                w_ih, b_ih, b_hh = params[names[0]], params[names[2]], params[names[3]]
                # Every step's input at once, split into steps by one unbind: indexing step by step
                # would give autograd T select nodes, each scattering into a zero (T, B, 4H) gradient.
                projected = (inputs @ w_ih.T + (b_ih + b_hh + shift)).unbind(0)
                # One transpose node per weight, not one per step.
                weights = [_with_transposes({n: params[n] for n in names}, names)] * t_len
            state = k * cfg.num_directions + d
            h, c = states["h0"][state], states["c0"][state]
            out: list[torch.Tensor | None] = [None] * t_len
            # The reverse direction runs from the last step down; padding steps (t >= lengths[b]) keep
            # the state, so each sequence starts at its own last valid step (packed sequences).
            for t in range(t_len) if d == 0 else range(t_len - 1, -1, -1):
                h_new, c_new = _cell(cfg, names, weights[t], projected[t], h, c)
                if mask is not None:
                    h_new = torch.where(mask[t], h_new, h)
                    c_new = torch.where(mask[t], c_new, c)
                h, c = h_new, c_new
                out[t] = h
            h_n.append(h)
            c_n.append(c)
            outputs.append(torch.stack(out))
        inputs = torch.cat(outputs, dim=-1) if len(outputs) > 1 else outputs[0]
    top = inputs
    y = top @ params[HEAD_WEIGHT].T + params[HEAD_BIAS] if cfg.has_head else top
    loss = reduced_loss(y, case)
    if cfg.final_state:
        loss = loss + final_state_term(case, torch.stack(h_n), torch.stack(c_n))
    leaves = {**params, **states}
    order = list(leaves)
    flat_steps = [(n, t) for n, copies in step_leaves.items() for t in range(t_len)]
    targets = [leaves[n] for n in order] + [step_leaves[n][t] for n, t in flat_steps]
    got = torch.autograd.grad(loss, targets, allow_unused=True)
    grads = {}
    for n, g in zip(order, got[: len(order)], strict=True):
        grads[n] = np.zeros(leaves[n].shape) if g is None else _numpy(g)
    result_steps = None
    if per_step:
        result_steps = {}
        for n in step_leaves:
            result_steps[n] = np.zeros((t_len, *params[n].shape))
        for (n, t), g in zip(flat_steps, got[len(order) :], strict=True):
            if g is not None:
                result_steps[n][t] = _numpy(g)
        for n, steps in result_steps.items():
            grads[n] = steps.sum(axis=0)
    return TorchResult(float(loss.detach().to(torch.float64).cpu()), grads, result_steps)
