"""peeplstm: a small NumPy LSTM with peephole connections (Gers, Schraudolph and Schmidhuber), stacked.

Time-major data: x (T, B, n_in); each layer's state h, c (B, n). A layer is a dict of arrays:

    W (n_in, 4n)  U (n, 4n)  b (4n,)    gate columns in the order z (block input), i, f, o
    p_i, p_f, p_o (n,)                  peepholes, optional (leave them out for a plain LSTM)

One step, with a = x_t @ W + h_{t-1} @ U + b split in four column blocks:

    z = tanh(a_z)      i = sigmoid(a_i + p_i * c_{t-1})      f = sigmoid(a_f + p_f * c_{t-1})
    c_t = z * i + f * c_{t-1}           o = sigmoid(a_o + p_o * c_t)      h_t = o * tanh(c_t)

Layers stack: layer l + 1 reads layer l's h. There is no forget-gate bias of its own.
"""

from __future__ import annotations

import numpy as np


def _sigmoid(a):
    return np.exp(-np.logaddexp(0, -a))


def layer_forward(x, h0, c0, P):
    """One layer over the sequence: returns H (T, B, n) and the cache for :func:`layer_backward`."""
    n = P["U"].shape[0]
    peep = "p_i" in P
    xw = x @ P["W"] + P["b"]
    hs, cs, acts = [h0], [c0], []
    for t in range(x.shape[0]):
        c_prev = cs[-1]
        a = xw[t] + hs[-1] @ P["U"]
        a_z, a_i, a_f, a_o = a[:, :n], a[:, n : 2 * n], a[:, 2 * n : 3 * n], a[:, 3 * n :]
        if peep:
            a_i, a_f = a_i + P["p_i"] * c_prev, a_f + P["p_f"] * c_prev
        z, i, f = np.tanh(a_z), _sigmoid(a_i), _sigmoid(a_f)
        c = z * i + f * c_prev
        o = _sigmoid(a_o + P["p_o"] * c) if peep else _sigmoid(a_o)
        hs.append(o * np.tanh(c))
        cs.append(c)
        acts.append((z, i, f, o))
    return np.stack(hs[1:]), (x, P, hs, cs, acts)


def layer_backward(dH, cache, dh_last=None, dc_last=None):
    """Gradients of one layer from dH (T, B, n) and the gradients of its final h and c (or None).

    Returns dx (T, B, n_in), dh0, dc0 (B, n) and a dict of parameter gradients (same keys as P)."""
    x, P, hs, cs, acts = cache
    peep = "p_i" in P
    g = {k: np.zeros_like(v) for k, v in P.items()}
    dx = np.zeros_like(x)
    dh = np.zeros_like(hs[0]) if dh_last is None else dh_last
    dc = np.zeros_like(cs[0]) if dc_last is None else dc_last
    for t in reversed(range(x.shape[0])):
        z, i, f, o = acts[t]
        c_prev, c = cs[t], cs[t + 1]
        tc = np.tanh(c)
        dh_t = dH[t] + dh
        da_o = dh_t * tc * o * (1 - o)
        dc_t = dc + dh_t * o * (1 - tc**2)
        if peep:
            dc_t = dc_t + P["p_o"] * da_o
        da_z = dc_t * i * (1 - z**2)
        da_i = dc_t * z * i * (1 - i)
        da_f = dc_t * c_prev * f * (1 - f)
        da = np.concatenate([da_z, da_i, da_f, da_o], axis=1)
        g["W"] += x[t].T @ da
        g["U"] += hs[t].T @ da
        g["b"] += da.sum(axis=0)
        if peep:
            g["p_i"] += (da_i * c_prev).sum(axis=0)
            g["p_f"] += (da_f * c_prev).sum(axis=0)
            g["p_o"] += (da_o * c).sum(axis=0)
        dx[t] = da @ P["W"].T
        dh = da @ P["U"].T
        dc = dc_t * f + (P["p_i"] * da_i + P["p_f"] * da_f if peep else 0.0)
    return dx, dh, dc, g


def forward(x, h0, c0, layers):
    """The stack: x (T, B, n_in), h0 and c0 (L, B, n). Returns the top layer's H (T, B, n), the
    final states h_n, c_n (L, B, n) and the caches."""
    caches, h_n, c_n = [], [], []
    for k, P in enumerate(layers):
        x, cache = layer_forward(x, h0[k], c0[k], P)
        caches.append(cache)
        h_n.append(cache[2][-1])
        c_n.append(cache[3][-1])
    return x, np.stack(h_n), np.stack(c_n), caches


def backward(dtop, caches, dh_n=None, dc_n=None):
    """Gradients of the stack from dtop (T, B, n) and of the final states (L, B, n) or None.

    Returns dx, dh0, dc0 (L, B, n) and the list of each layer's parameter gradients."""
    grads, dh0, dc0 = [None] * len(caches), [None] * len(caches), [None] * len(caches)
    for k in reversed(range(len(caches))):
        last = (None, None) if dh_n is None else (dh_n[k], dc_n[k])
        dtop, dh0[k], dc0[k], grads[k] = layer_backward(dtop, caches[k], *last)
    return dtop, np.stack(dh0), np.stack(dc0), grads
