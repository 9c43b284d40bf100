"""A stacked LSTM's loss and gradients, written the way a careful student follows a textbook.

This file is what a *user* of lstm-gradcheck writes: it imports only NumPy and
implements the contract's ``grads(case)`` on its own (per-layer loops, per-gate
weight slices taken once, explicit caches as lists, ``dh_next``/``dc_next``).
``hs[0]`` is the initial state, so step ``t``'s hidden state is ``hs[t + 1]``.

Model (layer k, step t, input u_t = x_t for layer 0, the layer below's h_t otherwise)::

    z_g = W_g u_t + U_g h_{t-1} + b_g      for the gates g in i, f, g, o (b = bias_ih + bias_hh)
    i = sigmoid(z_i)   f = sigmoid(z_f + forget_bias)   g = tanh(z_g)   o = sigmoid(z_o)
    c_t = f c_{t-1} + i g        h_t = o tanh(c_t)   (or o c_t for cell_output "identity")

Padding steps (t >= lengths[b]) keep the state as it is, score no loss and get
no input gradient, like torch's packed sequences.

``make_grads(mistake)`` returns the same implementation with one named mistake
planted (see :data:`MISTAKES`); each planting point carries a ``# MISTAKE <name>``
comment. ``grads = make_grads(None)`` is the correct implementation.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["GATES", "MISTAKES", "make_grads", "grads"]

GATES = ("i", "f", "g", "o")  # torch's order of the four row blocks of every 4H array

#: Every mistake make_grads can plant: name -> what the planted line does wrong.
MISTAKES: dict[str, str] = {
    "forget_bias_backward": "the backward recomputes f = sigmoid(z_f) from the cached z, without forget_bias",
    "truncated_bptt_k4": "truncated BPTT in chunks of 4 steps: dh_next and dc_next are reset to 0 at every 4th step",
    "layers_wrong_weight": "the gradient passed to the layer below uses W_hh instead of W_ih (both are 4H x H there)",
    "mean_divides_by_batch": "reduction mean divides the loss and its gradient by the batch size, not by torch's count",
    "mean_head_weight_not_divided": "reduction mean: head.weight's gradient is never divided by the count",
    "mean_per_pair": "reduction mean for mse/bce divides by the scored (t, b) pairs, not the (t, b, o) elements",
    "lengths_backward_unmasked": "the backward ignores lengths: padding steps are backpropagated as real LSTM steps",
    "lengths_padding_scored": "with loss_at every the loss mask ignores lengths, so padding steps are scored too",
    "last_step_off_by_one": "loss_at last: the head's gradient is added to hs[t_last] instead of hs[t_last + 1]",
    "tiny_error_one_element": "bias_hh_l0's gradient of input-gate unit 0 is off by a relative 1e-5",
    "final_state_ignores_dc_n": "the final-state term's dc_n is ignored: the c-gradient starts at zero",
    "mse_missing_factor_2": "the mse gradient is written y - target, without the factor 2",
    "bce_double_sigmoid_prime": "the bce gradient is multiplied by sigmoid'(y) again (sigmoid differentiated twice)",
    "identity_cell_tanh_prime": "cell_output identity: the backward still multiplies by tanh'(c)",
    "head_bias_batch_mean": "head.bias's gradient averages over the batch (dy.mean(0)) instead of summing",
    # Slips of the kinds the report's diagnosis names (catalogue.SLIPS):
    "cell_gate_sigmoid": "the cell gate g is sigmoid(z_g) in the forward, and the backward differentiates that",
    "forget_bias_ignored": "no forget_bias anywhere (code without one, not folded into the bias)",
    "cell_gate_tanh_prime": "the cell gate's backward writes tanh'(z_g) as 1 - tanh(z_g), not 1 - tanh(z_g)^2",
    "float32_gate_buffer": "the backward keeps the gate pre-activation gradients dz in a float32 buffer",
}

Grads = dict[str, np.ndarray]


def sigmoid(z: np.ndarray) -> np.ndarray:
    """1 / (1 + e^-z) without overflow for large |z| (exp(-softplus(-z)))."""
    return np.exp(-np.logaddexp(0.0, -z))


def make_grads(mistake: str | None = None) -> Callable[[Any], tuple[float, Grads]]:
    """The contract's ``grads(case)``, correct for ``None``, else with ``mistake`` planted."""
    if mistake is not None and mistake not in MISTAKES:
        raise ValueError(f"unknown mistake {mistake!r}; choose from {', '.join(MISTAKES)}")

    def grads(case: Any) -> tuple[float, Grads]:
        return _loss_and_grads(case, mistake)

    grads.__name__ = "grads" if mistake is None else f"grads_{mistake}"
    grads.__doc__ = "Loss and gradients of the case" + ("" if mistake is None else f" (planted: {MISTAKES[mistake]})")
    return grads


# ----------------------------------------------------------------------------- forward


def _split_gates(a: np.ndarray, hidden: int) -> dict[str, np.ndarray]:
    """The four gate blocks of a 4H-row array, taken once per layer."""
    return {gate: a[k * hidden : (k + 1) * hidden] for k, gate in enumerate(GATES)}


def _layer_forward(
    inputs: list[np.ndarray],
    h0: np.ndarray,
    c0: np.ndarray,
    W: dict[str, np.ndarray],
    U: dict[str, np.ndarray],
    b: dict[str, np.ndarray],
    valid: np.ndarray,
    forget_bias: float,
    identity_cell: bool,
    mistake: str | None = None,
) -> tuple[list[np.ndarray], list[np.ndarray], list[dict[str, np.ndarray]]]:
    """Run one layer over the sequence; return hs, cs (T + 1 entries each, [0] = initial) and the caches."""
    hs, cs, caches = [h0], [c0], []
    for t, u in enumerate(inputs):
        h_prev, c_prev = hs[-1], cs[-1]
        z = {gate: u @ W[gate].T + h_prev @ U[gate].T + b[gate] for gate in GATES}
        i, f = sigmoid(z["i"]), sigmoid(z["f"] + forget_bias)
        g, o = np.tanh(z["g"]), sigmoid(z["o"])
        if mistake == "cell_gate_sigmoid":
            g = sigmoid(z["g"])  # MISTAKE cell_gate_sigmoid: every gate squashed alike
        c = f * c_prev + i * g
        s = c if identity_cell else np.tanh(c)  # s is what the output gate scales
        h = o * s
        keep = valid[t][:, None]  # padding steps leave the state unchanged
        hs.append(np.where(keep, h, h_prev))
        cs.append(np.where(keep, c, c_prev))
        # Only the pre-activations are cached; the backward recomputes the gates from them.
        caches.append({"u": u, "h_prev": h_prev, "c_prev": c_prev, "z": z, "c": c, "valid": keep})
    return hs, cs, caches


# ----------------------------------------------------------------------------- loss head


def _loss_terms(y: np.ndarray, target: np.ndarray, loss: str, mistake: str | None) -> tuple[np.ndarray, np.ndarray]:
    """Per-sequence loss (B,) and its gradient wrt the logits y (B, O), for one scored step."""
    if loss == "cross_entropy":
        shifted = y - y.max(axis=1, keepdims=True)
        log_z = np.log(np.exp(shifted).sum(axis=1))
        rows = np.arange(y.shape[0])
        terms = log_z - shifted[rows, target]
        dy = np.exp(shifted - log_z[:, None])
        dy[rows, target] -= 1
        return terms, dy
    if loss == "mse":
        diff = y - target
        dy = 2 * diff
        if mistake == "mse_missing_factor_2":
            dy = diff  # MISTAKE mse_missing_factor_2: d/dy (y - t)^2 taken as (y - t)
        return (diff**2).sum(axis=1), dy
    # bce on logits: softplus(y) - t y, derivative sigmoid(y) - t
    p = sigmoid(y)
    dy = p - target
    if mistake == "bce_double_sigmoid_prime":
        dy = dy * p * (1 - p)  # MISTAKE bce_double_sigmoid_prime: chain rule through the sigmoid applied twice
    return (np.logaddexp(0.0, y) - target * y).sum(axis=1), dy


# ----------------------------------------------------------------------------- backward


def _layer_backward(
    dhs_above: list[np.ndarray],
    caches: list[dict[str, np.ndarray]],
    W: dict[str, np.ndarray],
    U: dict[str, np.ndarray],
    b: dict[str, np.ndarray],
    dh_last: np.ndarray,
    dc_last: np.ndarray,
    forget_bias: float,
    identity_cell: bool,
    lower_is_layer: bool,
    mistake: str | None,
) -> dict[str, Any]:
    """BPTT through one layer.

    ``dhs_above[t + 1]`` is the gradient reaching ``hs[t + 1]`` from the head or
    the layer above (``dhs_above[0]`` reaches the initial state). Returns the
    per-gate weight and bias gradients, the gradient of each step's input and
    the gradients of the initial states.
    """
    dW = {gate: np.zeros_like(W[gate]) for gate in GATES}
    dU = {gate: np.zeros_like(U[gate]) for gate in GATES}
    db = {gate: np.zeros_like(b[gate]) for gate in GATES}
    d_inputs: list[np.ndarray] = [np.zeros(0)] * len(caches)
    # The gradient to the layer below goes through W_ih; the input of a layer > 0 is the h below.
    W_down = W
    if mistake == "layers_wrong_weight" and lower_is_layer:
        W_down = U  # MISTAKE layers_wrong_weight: "the input is an h, so use the h weights"
    dh_next, dc_next = dh_last, dc_last
    for t in reversed(range(len(caches))):
        cache = caches[t]
        z, c, c_prev = cache["z"], cache["c"], cache["c_prev"]
        valid = cache["valid"]
        if mistake == "lengths_backward_unmasked":
            valid = np.ones_like(valid)  # MISTAKE lengths_backward_unmasked: every step treated as a real step
        i = sigmoid(z["i"])
        f = sigmoid(z["f"] + forget_bias)
        if mistake == "forget_bias_backward":
            f = sigmoid(z["f"])  # MISTAKE forget_bias_backward: forget_bias left out when recomputing f
        g = np.tanh(z["g"])
        if mistake == "cell_gate_sigmoid":
            g = sigmoid(z["g"])  # MISTAKE cell_gate_sigmoid: the backward follows the forward's sigmoid
        o = sigmoid(z["o"])

        dh = dhs_above[t + 1] + dh_next
        if identity_cell:
            s, ds_dc = c, np.ones_like(c)
            if mistake == "identity_cell_tanh_prime":
                ds_dc = 1 - np.tanh(c) ** 2  # MISTAKE identity_cell_tanh_prime: tanh' kept from the tanh derivation
        else:
            s = np.tanh(c)
            ds_dc = 1 - s**2
        dc = dc_next + dh * o * ds_dc
        dz = {
            "i": dc * g * i * (1 - i),
            "f": dc * c_prev * f * (1 - f),
            "g": dc * i * (1 - g**2),
            "o": dh * s * o * (1 - o),
        }
        if mistake == "cell_gate_sigmoid":
            dz["g"] = dc * i * g * (1 - g)  # MISTAKE cell_gate_sigmoid: sigmoid', consistent with the forward
        if mistake == "cell_gate_tanh_prime":
            dz["g"] = dc * i * (1 - g)  # MISTAKE cell_gate_tanh_prime: the square dropped from 1 - tanh^2
        if mistake == "float32_gate_buffer":
            dz = {gate: d.astype(np.float32) for gate, d in dz.items()}  # MISTAKE float32_gate_buffer
        dz = {gate: np.where(valid, d, 0) for gate, d in dz.items()}  # padding steps have no gate gradient
        for gate in GATES:
            dW[gate] += dz[gate].T @ cache["u"]
            dU[gate] += dz[gate].T @ cache["h_prev"]
            db[gate] += dz[gate].sum(axis=0)
        d_inputs[t] = sum(dz[gate] @ W_down[gate] for gate in GATES)
        dh_prev = sum(dz[gate] @ U[gate] for gate in GATES)
        dc_prev = dc * f
        # On padding steps the state was copied forward, so its gradient is copied back.
        dh_next = np.where(valid, dh_prev, dh)
        dc_next = np.where(valid, dc_prev, dc_next)
        if mistake == "truncated_bptt_k4" and t % 4 == 0 and t > 0:
            # MISTAKE truncated_bptt_k4: a new 4-step chunk starts at t, so nothing flows back to t - 1
            dh_next, dc_next = np.zeros_like(dh_next), np.zeros_like(dc_next)
    return {
        "dW": dW,
        "dU": dU,
        "db": db,
        "d_inputs": d_inputs,
        "dh0": dh_next + dhs_above[0],
        "dc0": dc_next,
    }


# ----------------------------------------------------------------------------- the whole model


def _loss_and_grads(case: Any, mistake: str | None) -> tuple[float, Grads]:
    cfg = case.config
    dtype = np.dtype(cfg.dtype)
    T, B, H, L = cfg.seq_len, cfg.batch_size, cfg.hidden_size, cfg.num_layers
    fb = cfg.forget_bias
    if mistake == "forget_bias_ignored":
        fb = 0.0  # MISTAKE forget_bias_ignored: the code has no forget_bias and nobody folded it in
    identity_cell = cfg.cell_output == "identity"
    params = case.params

    lengths = np.full(B, T) if case.lengths is None else np.asarray(case.lengths)
    valid = np.arange(T)[:, None] < lengths[None, :]  # (T, B): step t of sequence b is real

    # ---- forward, layer by layer
    layers = []
    inputs = [case.x[t] for t in range(T)]
    for k in range(L):
        W = _split_gates(params[f"weight_ih_l{k}"], H)
        U = _split_gates(params[f"weight_hh_l{k}"], H)
        bias = params[f"bias_ih_l{k}"] + params[f"bias_hh_l{k}"]
        b = _split_gates(bias, H)
        hs, cs, caches = _layer_forward(inputs, case.h0[k], case.c0[k], W, U, b, valid, fb, identity_cell, mistake)
        layers.append({"W": W, "U": U, "b": b, "hs": hs, "cs": cs, "caches": caches})
        inputs = hs[1:]
    top_hs = layers[-1]["hs"]

    # ---- loss head: which (step, sequence) pairs are scored, with which targets
    W_head, b_head = params["head.weight"], params["head.bias"]
    n_out = W_head.shape[0]
    d_head_weight = np.zeros_like(W_head)
    d_head_bias = np.zeros_like(b_head)
    dhs_top = [np.zeros((B, H), dtype=dtype) for _ in range(T + 1)]  # gradient reaching top_hs[t]
    total = 0.0
    if cfg.loss_at == "every":
        scored_steps = []
        for t in range(T):
            scored = valid[t]
            if mistake == "lengths_padding_scored":
                scored = np.ones(B, dtype=bool)  # MISTAKE lengths_padding_scored: padding steps scored too
            scored_steps.append((t, scored))
        n_scored = int(sum(s.sum() for _, s in scored_steps))
        step_targets = [case.targets[t] for t in range(T)]
        step_h = [top_hs[t + 1] for t in range(T)]
    else:
        # Many-to-one: sequence b is scored once, at its last real step.
        last = lengths - 1
        rows = np.arange(B)
        h_last = np.stack([top_hs[last[r] + 1][r] for r in rows])
        scored_steps = [(None, np.ones(B, dtype=bool))]
        n_scored = B
        step_targets = [case.targets]
        step_h = [h_last]

    dys = []
    for (_, scored), target, h in zip(scored_steps, step_targets, step_h, strict=True):
        y = h @ W_head.T + b_head
        terms, dy = _loss_terms(y, target, cfg.loss, mistake)
        total += terms[scored].sum()
        dy = np.where(scored[:, None], dy, 0)
        d_head_weight += dy.T @ h
        db_head = dy.sum(axis=0)
        if mistake == "head_bias_batch_mean":
            db_head = dy.mean(axis=0)  # MISTAKE head_bias_batch_mean: averaged over the batch, not summed
        d_head_bias += db_head
        dys.append(dy)

    if cfg.reduction == "mean":
        # torch's mean: over the scored (t, b) pairs for cross_entropy, over the (t, b, o) elements otherwise
        count = n_scored if cfg.loss == "cross_entropy" else n_scored * n_out
        if mistake == "mean_divides_by_batch":
            count = B  # MISTAKE mean_divides_by_batch: "mean over the batch"
        if mistake == "mean_per_pair" and cfg.loss != "cross_entropy":
            count = n_scored  # MISTAKE mean_per_pair: outputs summed per pair, then averaged over pairs
        total = total / count
        if mistake != "mean_head_weight_not_divided":  # MISTAKE mean_head_weight_not_divided: this line is missing
            d_head_weight /= count
        d_head_bias /= count
        dys = [dy / count for dy in dys]

    # The head's gradient enters the top layer at the scored states.
    for (t, _), dy in zip(scored_steps, dys, strict=True):
        dh = dy @ W_head
        if t is not None:
            dhs_top[t + 1] += dh
            continue
        for r in range(B):
            where = last[r] + 1
            if mistake == "last_step_off_by_one":
                where = last[r]  # MISTAKE last_step_off_by_one: step index used as the hs index
            dhs_top[where][r] += dh[r]

    loss = total
    if cfg.final_state:
        for k, layer in enumerate(layers):
            loss += np.sum(case.dh_n[k] * layer["hs"][-1]) + np.sum(case.dc_n[k] * layer["cs"][-1])

    # ---- backward, top layer first
    out: Grads = {"head.weight": d_head_weight, "head.bias": d_head_bias}
    dh0 = np.zeros_like(case.h0)
    dc0 = np.zeros_like(case.c0)
    dhs_above = dhs_top
    for k in reversed(range(L)):
        layer = layers[k]
        if cfg.final_state:
            dh_last, dc_last = case.dh_n[k].copy(), case.dc_n[k].copy()
            if mistake == "final_state_ignores_dc_n":
                dc_last = np.zeros_like(dc_last)  # MISTAKE final_state_ignores_dc_n: only dh_n is fed back
        else:
            dh_last, dc_last = np.zeros((B, H), dtype=dtype), np.zeros((B, H), dtype=dtype)
        back = _layer_backward(
            dhs_above, layer["caches"], layer["W"], layer["U"], layer["b"], dh_last, dc_last,
            fb, identity_cell, k > 0, mistake,
        )  # fmt: skip
        out[f"weight_ih_l{k}"] = np.concatenate([back["dW"][gate] for gate in GATES])
        out[f"weight_hh_l{k}"] = np.concatenate([back["dU"][gate] for gate in GATES])
        d_bias = np.concatenate([back["db"][gate] for gate in GATES])
        out[f"bias_ih_l{k}"] = d_bias
        out[f"bias_hh_l{k}"] = d_bias.copy()  # b_ih and b_hh enter z only as their sum
        dh0[k], dc0[k] = back["dh0"], back["dc0"]
        dhs_above = [np.zeros((B, H), dtype=dtype), *back["d_inputs"]]
    if mistake == "tiny_error_one_element":
        out["bias_hh_l0"][0] *= 1 + 1e-5  # MISTAKE tiny_error_one_element: a finite-difference check's step left in
    out["x"] = np.stack(dhs_above[1:])
    out["h0"], out["c0"] = dh0, dc0
    return float(loss), out


grads = make_grads(None)
