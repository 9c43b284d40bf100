"""LSTM layers in the style of a classic course assignment (batch-major, one fused weight per input).

Shapes: N batch, T time steps, D input size, H hidden size.

    x  (N, T, D)    h0 (N, H)    Wx (D, 4H)    Wh (H, 4H)    b (4H,)

One step, with the pre-activation split in the order i, f, o, g:

    a   = x_t @ Wx + h_{t-1} @ Wh + b                       (N, 4H)
    i   = sigmoid(a[:, :H])        f = sigmoid(a[:, H:2H])
    o   = sigmoid(a[:, 2H:3H])     g = tanh(a[:, 3H:])
    c_t = f * c_{t-1} + i * g
    h_t = o * tanh(c_t)

The initial cell state c_0 is zero and is not an input, so lstm_backward returns no dc0.
"""

from __future__ import annotations

import numpy as np


def sigmoid(z):
    """Logistic function that neither overflows nor warns for large |z|."""
    return np.exp(-np.logaddexp(0, -z))


def lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b):
    """Run one LSTM step.

    x (N, D), prev_h (N, H), prev_c (N, H) -> next_h (N, H), next_c (N, H), cache.
    """
    H = prev_h.shape[1]
    a = x @ Wx + prev_h @ Wh + b
    i = sigmoid(a[:, :H])
    f = sigmoid(a[:, H : 2 * H])
    o = sigmoid(a[:, 2 * H : 3 * H])
    g = np.tanh(a[:, 3 * H :])
    next_c = f * prev_c + i * g
    tanh_c = np.tanh(next_c)
    next_h = o * tanh_c
    cache = (x, prev_h, prev_c, Wx, Wh, i, f, o, g, tanh_c)
    return next_h, next_c, cache


def lstm_step_backward(dnext_h, dnext_c, cache):
    """Backward pass of one LSTM step.

    dnext_h, dnext_c (N, H) -> dx (N, D), dprev_h (N, H), dprev_c (N, H), dWx (D, 4H), dWh (H, 4H), db (4H,).
    """
    x, prev_h, prev_c, Wx, Wh, i, f, o, g, tanh_c = cache
    do = dnext_h * tanh_c
    # next_c reaches the loss both directly (dnext_c) and through next_h.
    dc = dnext_c + dnext_h * o * (1 - tanh_c**2)
    df = dc * prev_c
    di = dc * g
    dg = dc * i
    dprev_c = dc * f
    # Derivatives through the nonlinearities, kept in the same i, f, o, g column order as a.
    da = np.concatenate([di * i * (1 - i), df * f * (1 - f), do * o * (1 - o), dg * (1 - g**2)], axis=1)
    dx = da @ Wx.T
    dprev_h = da @ Wh.T
    dWx = x.T @ da
    dWh = prev_h.T @ da
    db = da.sum(axis=0)
    return dx, dprev_h, dprev_c, dWx, dWh, db


def lstm_forward(x, h0, Wx, Wh, b):
    """Run an LSTM over a whole sequence.

    x (N, T, D), h0 (N, H) -> h (N, T, H), cache. The initial cell state is zero.
    """
    N, T, _ = x.shape
    H = h0.shape[1]
    h = np.zeros((N, T, H), dtype=x.dtype)
    prev_h = h0
    prev_c = np.zeros_like(h0)
    caches = []
    for t in range(T):
        prev_h, prev_c, step_cache = lstm_step_forward(x[:, t, :], prev_h, prev_c, Wx, Wh, b)
        h[:, t, :] = prev_h
        caches.append(step_cache)
    return h, caches


def lstm_backward(dh, cache):
    """Backward pass over a whole sequence.

    dh (N, T, H), the upstream gradient of every hidden state ->
    dx (N, T, D), dh0 (N, H), dWx (D, 4H), dWh (H, 4H), db (4H,).
    """
    N, T, H = dh.shape
    Wx = cache[0][3]
    D = Wx.shape[0]
    dx = np.zeros((N, T, D), dtype=dh.dtype)
    dWx = np.zeros_like(Wx)
    dWh = np.zeros_like(cache[0][4])
    db = np.zeros(4 * H, dtype=Wx.dtype)
    dprev_h = np.zeros((N, H), dtype=dh.dtype)
    dprev_c = np.zeros((N, H), dtype=dh.dtype)
    for t in reversed(range(T)):
        # h_t feeds the loss directly and, through the recurrence, every later step.
        dx_t, dprev_h, dprev_c, dWx_t, dWh_t, db_t = lstm_step_backward(dh[:, t, :] + dprev_h, dprev_c, cache[t])
        dx[:, t, :] = dx_t
        dWx += dWx_t
        dWh += dWh_t
        db += db_t
    dh0 = dprev_h
    return dx, dh0, dWx, dWh, db
