"""An LSTM network built step by step, in the style of a well-known deep-learning course assignment.

Column form: every vector is a column, examples run along axis 1, time along axis 2.

    xt (n_x, m)    a_prev, c_prev (n_a, m)    x (n_x, m, T_x)    a0 (n_a, m)
    Wf, Wi, Wc, Wo (n_a, n_a + n_x)    bf, bi, bc, bo (n_a, 1)    Wy (n_y, n_a)    by (n_y, 1)

One cell, acting on concat = [a_prev; xt] (hidden state first, then input):

    ft     = sigmoid(Wf @ concat + bf)
    it     = sigmoid(Wi @ concat + bi)
    cct    = tanh(Wc @ concat + bc)
    c_next = ft * c_prev + it * cct
    ot     = sigmoid(Wo @ concat + bo)
    a_next = ot * tanh(c_next)
    yt_pred = softmax(Wy @ a_next + by)     (over axis 0; prediction only, not part of the backward)

The first cell state is zero. The backward takes da (n_a, m, T_x), the upstream gradient of every a<t>.
"""

from __future__ import annotations

import numpy as np

GATES = ("f", "i", "c", "o")


def sigmoid(z):
    """Logistic function that neither overflows nor warns for large |z|."""
    return np.exp(-np.logaddexp(0, -z))


def softmax(z):
    """Softmax over axis 0 (the class axis); shifting by the max keeps exp from overflowing."""
    e = np.exp(z - np.max(z, axis=0, keepdims=True))
    return e / np.sum(e, axis=0, keepdims=True)


def lstm_cell_forward(xt, a_prev, c_prev, parameters):
    """One LSTM cell step: returns a_next, c_next (n_a, m), yt_pred (n_y, m) and the cache for the backward."""
    concat = np.concatenate([a_prev, xt], axis=0)
    ft = sigmoid(parameters["Wf"] @ concat + parameters["bf"])
    it = sigmoid(parameters["Wi"] @ concat + parameters["bi"])
    cct = np.tanh(parameters["Wc"] @ concat + parameters["bc"])
    c_next = ft * c_prev + it * cct
    ot = sigmoid(parameters["Wo"] @ concat + parameters["bo"])
    a_next = ot * np.tanh(c_next)
    yt_pred = softmax(parameters["Wy"] @ a_next + parameters["by"])
    cache = (a_next, c_next, a_prev, c_prev, ft, it, cct, ot, xt, parameters)
    return a_next, c_next, yt_pred, cache


def lstm_forward(x, a0, parameters):
    """Run the cell over x (n_x, m, T_x) from a0 (n_a, m) and a zero cell state.

    Returns a, c (n_a, m, T_x), y (n_y, m, T_x) and caches = (list_of_caches, x).
    """
    _, m, T_x = x.shape
    n_y, n_a = parameters["Wy"].shape
    a = np.zeros((n_a, m, T_x), dtype=x.dtype)
    c = np.zeros((n_a, m, T_x), dtype=x.dtype)
    y = np.zeros((n_y, m, T_x), dtype=x.dtype)
    a_next = a0
    c_next = np.zeros_like(a0)
    caches = []
    for t in range(T_x):
        a_next, c_next, yt, cache = lstm_cell_forward(x[:, :, t], a_next, c_next, parameters)
        a[:, :, t] = a_next
        c[:, :, t] = c_next
        y[:, :, t] = yt
        caches.append(cache)
    return a, y, c, (caches, x)


def lstm_cell_backward(da_next, dc_next, cache):
    """Backward pass of one cell step.

    da_next, dc_next (n_a, m) -> dict with dxt (n_x, m), da_prev, dc_prev (n_a, m), dW* (n_a, n_a + n_x), db* (n_a, 1).
    """
    _, c_next, a_prev, c_prev, ft, it, cct, ot, xt, parameters = cache
    n_a = a_prev.shape[0]
    tanh_c = np.tanh(c_next)
    # c_next reaches the loss both directly (dc_next) and through a_next.
    dc = dc_next + da_next * ot * (1 - tanh_c**2)
    # Gradients with respect to each gate's pre-activation.
    dz = {
        "o": da_next * tanh_c * ot * (1 - ot),
        "c": dc * it * (1 - cct**2),
        "i": dc * cct * it * (1 - it),
        "f": dc * c_prev * ft * (1 - ft),
    }
    concat = np.concatenate([a_prev, xt], axis=0)
    gradients = {}
    dconcat = np.zeros_like(concat)
    for k in GATES:
        gradients["dW" + k] = dz[k] @ concat.T
        gradients["db" + k] = np.sum(dz[k], axis=1, keepdims=True)
        dconcat += parameters["W" + k].T @ dz[k]
    gradients["da_prev"] = dconcat[:n_a]
    gradients["dxt"] = dconcat[n_a:]
    gradients["dc_prev"] = dc * ft
    return gradients


def lstm_backward(da, caches):
    """Backward pass over the whole sequence.

    da (n_a, m, T_x), the upstream gradient of every a<t> ->
    dict with dx (n_x, m, T_x), da0 (n_a, m) and dWf, dbf, dWi, dbi, dWc, dbc, dWo, dbo.
    """
    caches_list, x = caches
    parameters = caches_list[0][-1]
    n_a, m, T_x = da.shape
    n_x = x.shape[0]
    dx = np.zeros((n_x, m, T_x), dtype=da.dtype)
    da_prevt = np.zeros((n_a, m), dtype=da.dtype)
    dc_prevt = np.zeros((n_a, m), dtype=da.dtype)
    gradients = {}
    for k in GATES:
        gradients["dW" + k] = np.zeros_like(parameters["W" + k])
        gradients["db" + k] = np.zeros_like(parameters["b" + k])
    for t in range(T_x - 1, -1, -1):
        # a<t> feeds the loss directly and, through the recurrence, every later step.
        step = lstm_cell_backward(da[:, :, t] + da_prevt, dc_prevt, caches_list[t])
        dx[:, :, t] = step["dxt"]
        da_prevt = step["da_prev"]
        dc_prevt = step["dc_prev"]
        for k in GATES:
            gradients["dW" + k] += step["dW" + k]
            gradients["db" + k] += step["db" + k]
    gradients["dx"] = dx
    gradients["da0"] = da_prevt
    return gradients
