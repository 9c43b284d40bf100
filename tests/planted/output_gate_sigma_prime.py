"""A user-style wrong implementation: the output gate's sigma' is written as sigma (o instead of o(1-o)).

Written against the contract only (no project imports): every step's output-gate delta is
wrong, so the error enters at the last step, in the output gate's rows.
"""

import numpy as np


def _sig(z):
    return 1.0 / (1.0 + np.exp(-z))


def grads(case):
    cfg = case.config
    if cfg.num_layers != 1 or case.lengths is not None or cfg.final_state or cfg.loss != "mse":
        raise NotImplementedError("one layer, no lengths, no final state, mse only")
    if cfg.cell_output != "tanh":
        raise NotImplementedError("tanh cell output only")
    p = case.params
    w_ih, w_hh, b = p["weight_ih_l0"], p["weight_hh_l0"], p["bias_ih_l0"] + p["bias_hh_l0"]
    v, c_b = p["head.weight"], p["head.bias"]
    n_h, t_len = cfg.hidden_size, cfg.seq_len
    x, h, c = case.x, [case.h0[0]], [case.c0[0]]
    gates = []
    for t in range(t_len):
        z = x[t] @ w_ih.T + h[-1] @ w_hh.T + b
        i, f = _sig(z[:, :n_h]), _sig(z[:, n_h : 2 * n_h] + cfg.forget_bias)
        g, o = np.tanh(z[:, 2 * n_h : 3 * n_h]), _sig(z[:, 3 * n_h :])
        c.append(f * c[-1] + i * g)
        h.append(o * np.tanh(c[-1]))
        gates.append((i, f, g, o))
    y = np.stack(h[1:]) @ v.T + c_b
    steps = range(t_len) if cfg.loss_at == "every" else [t_len - 1]
    target = case.targets if cfg.loss_at == "every" else None
    dy = np.zeros_like(y)
    loss = 0.0
    count = 0
    for t in steps:
        r = y[t] - (target[t] if target is not None else case.targets)
        loss += float(np.sum(r * r))
        dy[t] = 2 * r
        count += r.size
    if cfg.reduction == "mean":
        loss, dy = loss / count, dy / count
    dw_ih, dw_hh, db = np.zeros_like(w_ih), np.zeros_like(w_hh), np.zeros_like(b)
    dx = np.zeros_like(x)
    dh_next, dc_next = np.zeros_like(h[0]), np.zeros_like(c[0])
    for t in reversed(range(t_len)):
        i, f, g, o = gates[t]
        dh = dy[t] @ v + dh_next
        tc = np.tanh(c[t + 1])
        dc = dh * o * (1 - tc**2) + dc_next
        dz = np.concatenate([dc * g * i * (1 - i), dc * c[t] * f * (1 - f), dc * i * (1 - g**2), dh * tc * o], 1)
        dw_ih += dz.T @ x[t]
        dw_hh += dz.T @ h[t]
        db += dz.sum(0)
        dx[t] = dz @ w_ih
        dh_next, dc_next = dz @ w_hh, dc * f
    out = {"weight_ih_l0": dw_ih, "weight_hh_l0": dw_hh, "bias_ih_l0": db, "bias_hh_l0": db.copy()}
    out.update({"head.weight": np.einsum("tbo,tbh->oh", dy, np.stack(h[1:])), "head.bias": dy.sum((0, 1))})
    out.update({"x": dx, "h0": dh_next[None], "c0": dc_next[None]})
    return loss, out
