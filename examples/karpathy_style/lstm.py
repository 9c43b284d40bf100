"""A minimal LSTM with one fused weight matrix, in the style of a well-known NumPy gist.

Time-major shapes: n time steps, b batch size, input_size inputs, d hidden units.

    X (n, b, input_size)    c0, h0 (b, d)    WLSTM (1 + input_size + d, 4d), row 0 is the bias

At each step the input row carries a constant 1 (for the bias), the input, and the previous hidden state:

    Hin[t]  = [1, X[t], h_{t-1}]                 (b, 1 + input_size + d)
    IFOG[t] = Hin[t] @ WLSTM                     (b, 4d), columns in the order i, f, o, g
    i, f, o = sigmoid(IFOG[t][:, :3d])  split in thirds
    g       = tanh(IFOG[t][:, 3d:])
    C[t]    = i * g + f * C[t-1]
    Hout[t] = o * tanh(C[t])

c0 and h0 default to zeros.
"""

from __future__ import annotations

import numpy as np


def _sigmoid(z):
    """Logistic function that neither overflows nor warns for large |z|."""
    return np.exp(-np.logaddexp(0, -z))


class LSTM:
    """Namespace of stateless functions: init, forward and backward."""

    @staticmethod
    def init(input_size, hidden_size, fancy_forget_bias_init=3):
        """Return a fresh WLSTM of shape (input_size + hidden_size + 1, 4 * hidden_size); row 0 holds the biases."""
        rng = np.random.default_rng()
        WLSTM = rng.standard_normal((input_size + hidden_size + 1, 4 * hidden_size)) / np.sqrt(input_size + hidden_size)
        WLSTM[0, :] = 0
        # A positive forget-gate bias makes the cell remember by default early in training.
        if fancy_forget_bias_init != 0:
            WLSTM[0, hidden_size : 2 * hidden_size] = fancy_forget_bias_init
        return WLSTM

    @staticmethod
    def forward(X, WLSTM, c0=None, h0=None):
        """Run the LSTM over X (n, b, input_size).

        Returns Hout (n, b, d), the last cell state C[n-1] (b, d), the last hidden state Hout[n-1] (b, d), and cache.
        """
        n, b, input_size = X.shape
        d = WLSTM.shape[1] // 4
        dtype = np.result_type(X, WLSTM)
        if c0 is None:
            c0 = np.zeros((b, d), dtype=dtype)
        if h0 is None:
            h0 = np.zeros((b, d), dtype=dtype)

        Hin = np.zeros((n, b, WLSTM.shape[0]), dtype=dtype)
        Hout = np.zeros((n, b, d), dtype=dtype)
        IFOG = np.zeros((n, b, 4 * d), dtype=dtype)
        IFOGf = np.zeros((n, b, 4 * d), dtype=dtype)
        C = np.zeros((n, b, d), dtype=dtype)
        Ct = np.zeros((n, b, d), dtype=dtype)
        for t in range(n):
            prevh = Hout[t - 1] if t > 0 else h0
            prevc = C[t - 1] if t > 0 else c0
            Hin[t, :, 0] = 1
            Hin[t, :, 1 : input_size + 1] = X[t]
            Hin[t, :, input_size + 1 :] = prevh
            IFOG[t] = Hin[t] @ WLSTM
            IFOGf[t, :, : 3 * d] = _sigmoid(IFOG[t, :, : 3 * d])
            IFOGf[t, :, 3 * d :] = np.tanh(IFOG[t, :, 3 * d :])
            C[t] = IFOGf[t, :, :d] * IFOGf[t, :, 3 * d :] + IFOGf[t, :, d : 2 * d] * prevc
            Ct[t] = np.tanh(C[t])
            Hout[t] = IFOGf[t, :, 2 * d : 3 * d] * Ct[t]

        cache = {
            "WLSTM": WLSTM,
            "Hout": Hout,
            "IFOGf": IFOGf,
            "IFOG": IFOG,
            "C": C,
            "Ct": Ct,
            "Hin": Hin,
            "c0": c0,
            "h0": h0,
        }
        return Hout, C[n - 1], Hout[n - 1], cache

    @staticmethod
    def backward(dHout_in, cache, dcn=None, dhn=None):
        """Backpropagate through the sequence.

        dHout_in (n, b, d) is the upstream gradient of every output; dcn, dhn (b, d) optional gradients of the
        final cell and hidden state. Returns dX (n, b, input_size), dWLSTM, dc0 (b, d), dh0 (b, d).
        """
        WLSTM = cache["WLSTM"]
        Hout = cache["Hout"]
        IFOGf = cache["IFOGf"]
        C = cache["C"]
        Ct = cache["Ct"]
        Hin = cache["Hin"]
        c0 = cache["c0"]
        n, b, d = Hout.shape
        input_size = WLSTM.shape[0] - d - 1

        dIFOG = np.zeros_like(IFOGf)
        dIFOGf = np.zeros_like(IFOGf)
        dWLSTM = np.zeros_like(WLSTM)
        dHin = np.zeros_like(Hin)
        dC = np.zeros_like(C)
        dX = np.zeros((n, b, input_size), dtype=Hin.dtype)
        dh0 = np.zeros((b, d), dtype=Hin.dtype)
        dc0 = np.zeros((b, d), dtype=Hin.dtype)
        # The loop adds recurrent gradients into dHout, which must not write through to the caller's array.
        dHout = dHout_in.copy()
        if dcn is not None:
            dC[n - 1] += dcn
        if dhn is not None:
            dHout[n - 1] += dhn

        for t in reversed(range(n)):
            o = IFOGf[t, :, 2 * d : 3 * d]
            dIFOGf[t, :, 2 * d : 3 * d] = Ct[t] * dHout[t]
            # C[t] gets gradient from later cells (already in dC[t]) and from this step's output.
            dC[t] += (1 - Ct[t] ** 2) * (o * dHout[t])
            prevc = C[t - 1] if t > 0 else c0
            dIFOGf[t, :, d : 2 * d] = prevc * dC[t]
            if t > 0:
                dC[t - 1] += IFOGf[t, :, d : 2 * d] * dC[t]
            else:
                dc0 = IFOGf[t, :, d : 2 * d] * dC[t]
            dIFOGf[t, :, :d] = IFOGf[t, :, 3 * d :] * dC[t]
            dIFOGf[t, :, 3 * d :] = IFOGf[t, :, :d] * dC[t]

            # Through the nonlinearities: tanh' = 1 - y^2, sigmoid' = y (1 - y), written in terms of the outputs.
            dIFOG[t, :, 3 * d :] = (1 - IFOGf[t, :, 3 * d :] ** 2) * dIFOGf[t, :, 3 * d :]
            y = IFOGf[t, :, : 3 * d]
            dIFOG[t, :, : 3 * d] = (y * (1 - y)) * dIFOGf[t, :, : 3 * d]

            dWLSTM += Hin[t].T @ dIFOG[t]
            dHin[t] = dIFOG[t] @ WLSTM.T
            dX[t] = dHin[t, :, 1 : input_size + 1]
            if t > 0:
                dHout[t - 1] += dHin[t, :, input_size + 1 :]
            else:
                dh0 += dHin[t, :, input_size + 1 :]

        return dX, dWLSTM, dc0, dh0
