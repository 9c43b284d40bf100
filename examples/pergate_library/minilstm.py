"""A small stateful LSTM layer with one weight matrix per gate, row form (examples along axis 0).

Shapes: n_ex examples, n_in inputs, n_out hidden units, n_t time steps.

    X (n_ex, n_in, n_t)    A (n_ex, n_out, n_t)
    Wf, Wu, Wc, Wo (n_out + n_in, n_out)    bf, bu, bc, bo (1, n_out)

Each step acts from the right on the row Z_t = [A_{t-1}, X_t] (hidden state first, then input):

    Gf  = sigmoid(Z_t @ Wf + bf)        forget gate
    Gu  = sigmoid(Z_t @ Wu + bu)        update (input) gate
    Cc  = tanh(Z_t @ Wc + bc)           candidate cell
    Go  = sigmoid(Z_t @ Wo + bo)        output gate
    C_t = Gf * C_{t-1} + Gu * Cc
    A_t = Go * tanh(C_t)

A_0 and C_0 are zero. The layer works in whatever float dtype its parameters and inputs share.
"""

from __future__ import annotations

import numpy as np

GATES = ("f", "u", "c", "o")


def sigmoid(z):
    """Logistic function that neither overflows nor warns for large |z|."""
    return np.exp(-np.logaddexp(0, -z))


class LSTMLayer:
    """An LSTM layer over whole sequences; forward keeps on the instance what backward needs."""

    def __init__(self, n_in, n_out, seed=0):
        """Create the layer with Glorot-uniform weights and zero biases, drawn from a seeded generator."""
        self.n_in = n_in
        self.n_out = n_out
        rng = np.random.default_rng(seed)
        limit = np.sqrt(6 / (n_in + 2 * n_out))
        self.parameters = {}
        for k in GATES:
            self.parameters["W" + k] = rng.uniform(-limit, limit, size=(n_out + n_in, n_out))
            self.parameters["b" + k] = np.zeros((1, n_out))
        self.gradients = {key: np.zeros_like(value) for key, value in self.parameters.items()}
        self._cache = None

    def _dtype(self, X):
        """The dtype every computation runs in: the common type of the input and the parameters."""
        return np.result_type(X, *self.parameters.values())

    def forward(self, X):
        """Run the layer over X (n_ex, n_in, n_t) and return A (n_ex, n_out, n_t)."""
        n_ex, n_in, n_t = X.shape
        if n_in != self.n_in:
            raise ValueError(f"expected {self.n_in} input features, got {n_in}")
        p = self.parameters
        dtype = self._dtype(X)
        A = np.zeros((n_ex, self.n_out, n_t), dtype=dtype)
        A_prev = np.zeros((n_ex, self.n_out), dtype=dtype)
        C_prev = np.zeros((n_ex, self.n_out), dtype=dtype)
        steps = []
        for t in range(n_t):
            Z = np.concatenate([A_prev, X[:, :, t]], axis=1)
            Gf = sigmoid(Z @ p["Wf"] + p["bf"])
            Gu = sigmoid(Z @ p["Wu"] + p["bu"])
            Cc = np.tanh(Z @ p["Wc"] + p["bc"])
            Go = sigmoid(Z @ p["Wo"] + p["bo"])
            C = Gf * C_prev + Gu * Cc
            tanh_C = np.tanh(C)
            A_prev = Go * tanh_C
            steps.append({"Z": Z, "Gf": Gf, "Gu": Gu, "Cc": Cc, "Go": Go, "C_prev": C_prev, "tanh_C": tanh_C})
            C_prev = C
            A[:, :, t] = A_prev
        # Only the latest sequence is kept: backward always refers to the most recent forward.
        self._cache = {"X_shape": X.shape, "dtype": dtype, "steps": steps}
        return A

    def backward(self, dLdA):
        """Backpropagate dLdA (n_ex, n_out, n_t), the gradient of every output; fill self.gradients, return dLdX.

        dLdX has shape (n_ex, n_in, n_t). Gradients are reset, not accumulated, on each call.
        """
        if self._cache is None:
            raise RuntimeError("backward called before forward")
        p = self.parameters
        n_ex, n_in, n_t = self._cache["X_shape"]
        dtype = self._cache["dtype"]
        n_out = self.n_out
        # Refill the same dict so references a user holds to layer.gradients stay current.
        self.gradients.clear()
        self.gradients.update({key: np.zeros(value.shape, dtype=dtype) for key, value in p.items()})
        dLdX = np.zeros((n_ex, n_in, n_t), dtype=dtype)
        dA_next = np.zeros((n_ex, n_out), dtype=dtype)
        dC_next = np.zeros((n_ex, n_out), dtype=dtype)
        for t in reversed(range(n_t)):
            s = self._cache["steps"][t]
            # A_t feeds the loss directly and, through Z_{t+1}, every later step.
            dA = dLdA[:, :, t] + dA_next
            dC = dC_next + dA * s["Go"] * (1 - s["tanh_C"] ** 2)
            # Gradients with respect to each gate's pre-activation.
            dpre = {
                "f": dC * s["C_prev"] * s["Gf"] * (1 - s["Gf"]),
                "u": dC * s["Cc"] * s["Gu"] * (1 - s["Gu"]),
                "c": dC * s["Gu"] * (1 - s["Cc"] ** 2),
                "o": dA * s["tanh_C"] * s["Go"] * (1 - s["Go"]),
            }
            dZ = np.zeros_like(s["Z"])
            for k in GATES:
                self.gradients["W" + k] += s["Z"].T @ dpre[k]
                self.gradients["b" + k] += dpre[k].sum(axis=0, keepdims=True)
                dZ += dpre[k] @ p["W" + k].T
            dA_next = dZ[:, :n_out]
            dLdX[:, :, t] = dZ[:, n_out:]
            dC_next = dC * s["Gf"]
        return dLdX
