"""A correct, independent, vectorised single-layer LSTM that refuses most cases.

It supports only num_layers == 1, no lengths, no final-state term and
cross_entropy (any sizes, loss_at, reduction, forget_bias, cell_output and
dtype); for anything else it raises NotImplementedError saying what it lacks.
Written in a different style from textbook_lstm.py (whole (T, B, 4H) arrays,
one gate-activation array, einsum for the weight gradients), it is also a
second opinion on the textbook code.
"""

from typing import Any

import numpy as np


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return np.exp(-np.logaddexp(0.0, -z))


def _unsupported(case: Any) -> list[str]:
    cfg = case.config
    missing = []
    if cfg.num_layers != 1:
        missing.append(f"num_layers={cfg.num_layers} (only 1 layer)")
    if case.lengths is not None:
        missing.append("variable lengths")
    if cfg.final_state:
        missing.append("the final-state term")
    if cfg.loss != "cross_entropy":
        missing.append(f"loss={cfg.loss!r} (only cross_entropy)")
    return missing


def grads(case: Any) -> tuple[float, dict[str, np.ndarray]]:
    """Loss and gradients of a one-layer LSTM with a cross-entropy head."""
    missing = _unsupported(case)
    if missing:
        raise NotImplementedError(
            "this is a single-layer cross-entropy LSTM without lengths; not supported: " + ", ".join(missing)
        )
    cfg = case.config
    p = case.params
    x = case.x
    T, B, _ = x.shape
    H = cfg.hidden_size
    w_ih, w_hh = p["weight_ih_l0"], p["weight_hh_l0"]
    bias = p["bias_ih_l0"] + p["bias_hh_l0"]
    w_out, b_out = p["head.weight"], p["head.bias"]
    gi, gf, gg, go = (slice(k * H, (k + 1) * H) for k in range(4))

    # Forward: A[t] holds the four gate activations side by side.
    A = np.empty((T, B, 4 * H), dtype=x.dtype)
    hs = np.empty((T + 1, B, H), dtype=x.dtype)
    cs = np.empty((T + 1, B, H), dtype=x.dtype)
    hs[0], cs[0] = case.h0[0], case.c0[0]
    for t in range(T):
        z = x[t] @ w_ih.T + hs[t] @ w_hh.T + bias
        z[:, gf] += cfg.forget_bias
        A[t] = _sigmoid(z)
        A[t][:, gg] = np.tanh(z[:, gg])
        cs[t + 1] = A[t][:, gf] * cs[t] + A[t][:, gi] * A[t][:, gg]
        hs[t + 1] = A[t][:, go] * (cs[t + 1] if cfg.cell_output == "identity" else np.tanh(cs[t + 1]))

    # Cross-entropy head on every step or on the last one.
    steps = np.arange(T) if cfg.loss_at == "every" else np.array([T - 1])
    targets = case.targets if cfg.loss_at == "every" else case.targets[None]
    logits = hs[steps + 1] @ w_out.T + b_out  # (S, B, O)
    logits = logits - logits.max(axis=-1, keepdims=True)
    log_probs = logits - np.log(np.exp(logits).sum(axis=-1, keepdims=True))
    onehot = np.zeros_like(log_probs)
    np.put_along_axis(onehot, targets[..., None], 1, axis=-1)
    count = len(steps) * B if cfg.reduction == "mean" else 1
    loss = -(onehot * log_probs).sum() / count
    d_logits = (np.exp(log_probs) - onehot) / count

    d_hs = np.zeros_like(hs)
    d_hs[steps + 1] = d_logits @ w_out
    d_w_out = np.einsum("sbo,sbh->oh", d_logits, hs[steps + 1])
    d_b_out = d_logits.sum(axis=(0, 1))

    # Backward through time over whole gate arrays.
    dZ = np.empty_like(A)
    dh_next = np.zeros((B, H), dtype=x.dtype)
    dc_next = np.zeros((B, H), dtype=x.dtype)
    for t in reversed(range(T)):
        i, f, g, o = A[t][:, gi], A[t][:, gf], A[t][:, gg], A[t][:, go]
        dh = d_hs[t + 1] + dh_next
        if cfg.cell_output == "identity":
            out_c, dc = cs[t + 1], dc_next + dh * o
        else:
            out_c = np.tanh(cs[t + 1])
            dc = dc_next + dh * o * (1 - out_c**2)
        dZ[t][:, gi] = dc * g * i * (1 - i)
        dZ[t][:, gf] = dc * cs[t] * f * (1 - f)
        dZ[t][:, gg] = dc * i * (1 - g**2)
        dZ[t][:, go] = dh * out_c * o * (1 - o)
        dh_next = dZ[t] @ w_hh
        dc_next = dc * f

    d_bias = dZ.sum(axis=(0, 1))
    return float(loss), {
        "weight_ih_l0": np.einsum("tbg,tbi->gi", dZ, x),
        "weight_hh_l0": np.einsum("tbg,tbh->gh", dZ, hs[:-1]),
        "bias_ih_l0": d_bias,
        "bias_hh_l0": d_bias.copy(),
        "head.weight": d_w_out,
        "head.bias": d_b_out,
        "x": dZ @ w_ih,
        "h0": dh_next[None],
        "c0": dc_next[None],
    }
