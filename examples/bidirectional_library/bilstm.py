"""bilstm: a stacked, bidirectional NumPy LSTM on one flat parameter vector, as cuDNN keeps it.

Time-major data: x (T, B, n_in); states h0, c0 (L * D, B, n), layer l's direction d at l * D + d
(D = 2 directions, or 1). theta holds, for each layer and each direction (forward, then backward):

    Wx (4n, n_in)   Wh (4n, n)   bx (4n,)   bh (4n,)          each flattened row-major, in this order

Layer 0 reads x; layer l > 0 reads the layer below's outputs, both directions concatenated
(n_in = D * n). As in Chainer, the 4n axis is interleaved per unit: row 4 j + k is unit j's gate
k, the gates being a (cell input), i, f, o. One step of a direction, with g = Wx x_t + Wh h_prev +
bx + bh viewed (B, n, 4):

    a = tanh(g[..., 0])  i, f, o = sigmoid(g[..., 1:])  c_t = a i + f c_prev  h_t = o tanh(c_t)

The forward direction runs t = 0 .. T-1 from h0, the backward one t = T-1 .. 0 (h_prev is its
step t + 1). There is no forget-gate bias of its own.
"""

from __future__ import annotations

import numpy as np


def _sigmoid(a):
    return np.exp(-np.logaddexp(0, -a))


def unflatten(theta, n_in, n, layers, directions):
    """Views of theta: a list per layer of a list per direction of dicts Wx, Wh, bx, bh."""
    out, start = [], 0
    for layer in range(layers):
        fan_in = n_in if layer == 0 else directions * n
        out.append([])
        for _ in range(directions):
            p = {}
            for key, shape in (("Wx", (4 * n, fan_in)), ("Wh", (4 * n, n)), ("bx", (4 * n,)), ("bh", (4 * n,))):
                size = int(np.prod(shape))
                p[key] = theta[start : start + size].reshape(shape)
                start += size
            out[-1].append(p)
    if start != theta.size:
        raise ValueError(f"bilstm: theta has {theta.size} entries, the network {start}")
    return out


def run(x, h0, c0, p, reverse):
    """One direction over the sequence: H (T, B, n) and its cache. Slot t + 1 (forward) or t
    (backward) of the state arrays holds step t's state; the other end holds h0, c0."""
    T, B, _ = x.shape
    n = p["Wh"].shape[1]
    H, C = np.zeros((T + 1, B, n), dtype=x.dtype), np.zeros((T + 1, B, n), dtype=x.dtype)
    gates = np.zeros((T, B, n, 4), dtype=x.dtype)
    H[T if reverse else 0], C[T if reverse else 0] = h0, c0
    xw = x @ p["Wx"].T + p["bx"] + p["bh"]
    for t in reversed(range(T)) if reverse else range(T):
        out, prev = (t, t + 1) if reverse else (t + 1, t)
        g = (xw[t] + H[prev] @ p["Wh"].T).reshape(B, n, 4)
        gates[t] = np.concatenate([np.tanh(g[..., :1]), _sigmoid(g[..., 1:])], axis=-1)
        a, i, f, o = (gates[t][..., k] for k in range(4))
        C[out] = a * i + f * C[prev]
        H[out] = o * np.tanh(C[out])
    return (H[:T] if reverse else H[1:]), (x, p, H, C, gates, reverse)


def run_backward(dH, cache, dh_last, dc_last):
    """Gradients of one direction: dx, dh0, dc0 and {Wx, Wh, bx, bh}."""
    x, p, H, C, gates, reverse = cache
    T, B, _ = x.shape
    g = {key: np.zeros_like(v) for key, v in p.items()}
    dx = np.zeros_like(x)
    dh, dc = dh_last.copy(), dc_last.copy()
    for t in range(T) if reverse else reversed(range(T)):
        out, prev = (t, t + 1) if reverse else (t + 1, t)
        h_prev = H[t + 1] if reverse else H[t]
        a, i, f, o = (gates[t][..., k] for k in range(4))
        tc = np.tanh(C[out])
        dh_t = dH[t] + dh
        dc_t = dc + dh_t * o * (1 - tc**2)
        dg = np.stack([dc_t * i * (1 - a**2), dc_t * a * i * (1 - i), dc_t * C[prev] * f * (1 - f),
                       dh_t * tc * o * (1 - o)], axis=-1).reshape(B, -1)  # fmt: skip
        g["Wx"] += dg.T @ x[t]
        g["Wh"] += dg.T @ h_prev
        g["bx"] += dg.sum(axis=0)
        dx[t] = dg @ p["Wx"]
        dh, dc = dg @ p["Wh"], dc_t * f
    g["bh"][:] = g["bx"]
    return dx, dh, dc, g


def forward(theta, x, h0, c0, n, directions):
    """The network: returns the top layer's outputs (T, B, D n), h_n, c_n (L D, B, n) and the caches."""
    params = unflatten(theta, x.shape[2], n, h0.shape[0] // directions, directions)
    caches, h_n, c_n = [], [], []
    for layer, dirs in enumerate(params):
        outs = []
        for d, p in enumerate(dirs):
            k = layer * directions + d
            H, cache = run(x, h0[k], c0[k], p, reverse=d == 1)
            outs.append(H)
            caches.append(cache)
            h_n.append(cache[2][0 if d == 1 else -1])
            c_n.append(cache[3][0 if d == 1 else -1])
        x = np.concatenate(outs, axis=-1)
    return x, np.stack(h_n), np.stack(c_n), caches


def backward(d_out, caches, dh_n=None, dc_n=None):
    """Gradients from d_out (T, B, D n) and the final states' (L D, B, n) or None: dtheta, dx, dh0, dc0."""
    directions = d_out.shape[-1] // caches[0][2].shape[-1]
    n = caches[0][2].shape[-1]
    grads, dh0, dc0 = [None] * len(caches), [None] * len(caches), [None] * len(caches)
    for layer in reversed(range(len(caches) // directions)):
        dx = 0
        for d in range(directions):
            k = layer * directions + d
            last = (np.zeros_like(caches[k][2][0]),) * 2 if dh_n is None else (dh_n[k], dc_n[k])
            dx_d, dh0[k], dc0[k], grads[k] = run_backward(d_out[..., d * n : (d + 1) * n], caches[k], *last)
            dx = dx + dx_d
        d_out = dx
    dtheta = np.concatenate([g[key].ravel() for g in grads for key in ("Wx", "Wh", "bx", "bh")])
    return dtheta, d_out, np.stack(dh0), np.stack(dc0)
