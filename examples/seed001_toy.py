"""Seed 001's worked example: an h = o·s LSTM learns y = [0.5, 0.2, 0.1, 0.5] in 100 steps.

Seed 001 (nicodjimenez/lstm, translated by zhwhong) trains its own LSTM, whose
cell output has no tanh (h = o·s), on a toy task: four random input vectors,
one target number per step, a squared loss at every step, plain gradient
descent, 100 iterations; the loss converges and the prediction approaches the
targets. Here the same task runs on the contract's model with the harness's
reference gradients:

    cell_output = "identity"   h_t = o_t * c_t (the seed's h = o·s)
    I = 50, H = 100, T = 4, B = 1, x_t ~ U[0, 1)      (the seed's x_dim, mem_cell_ct)
    weights and biases ~ U(-0.1, 0.1), h0 = c0 = 0    (the seed's rand_arr(-0.1, 0.1), zero initial state)
    y_t = W_head h_t + b_head, O = 1                  (the seed scores h_t[0]; here a 1-output head)
    loss = Σ_t (y_t - target_t)²                      (mse, summed, every step)
    θ <- θ - 0.1 ∂L/∂θ for every parameter            (the seed's lr = 0.1)

Run: ``python examples/seed001_toy.py`` prints the loss of every iteration and the final prediction.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import numpy as np

from lstm_gradcheck.reference.case import Case, make_case
from lstm_gradcheck.reference.config import LSTMConfig
from lstm_gradcheck.reference.layout import param_names
from lstm_gradcheck.reference.lstm import forward, grads

TARGETS = (0.5, 0.2, 0.1, 0.5)
CONFIG = LSTMConfig(
    input_size=50,
    hidden_size=100,
    num_layers=1,
    output_size=1,
    seq_len=len(TARGETS),
    batch_size=1,
    loss_at="every",
    loss="mse",
    reduction="sum",
    forget_bias=0.0,
    cell_output="identity",
    dtype="float64",
    final_state=False,
)


def toy_case(seed: int = 0) -> Case:
    """The seed's task as a case: U(-0.1, 0.1) parameters (weight_scale 1 gives 1/sqrt(100)),
    U[0, 1) inputs, zero initial states, targets (T, 1, 1)."""
    case = make_case(CONFIG, seed)
    rng = np.random.default_rng(seed)
    x = rng.random((CONFIG.seq_len, 1, CONFIG.input_size))
    targets = np.array(TARGETS, dtype=np.float64).reshape(CONFIG.seq_len, 1, 1)
    zero = np.zeros_like(case.h0)
    return case.replace(x=x, h0=zero, c0=zero, targets=targets)


def train(
    iterations: int = 100, lr: float = 0.1, seed: int = 0, log: Callable[[str], None] | None = print
) -> tuple[list[float], np.ndarray]:
    """Plain gradient descent on every parameter; returns the loss before each update and the final
    prediction y (T,) after the last one."""
    case = toy_case(seed)
    names = param_names(CONFIG.num_layers)
    losses: list[float] = []
    for it in range(iterations):
        loss, g = grads(case)
        losses.append(float(loss))
        if log is not None:
            log(f"iter {it:3d}: loss {loss:.3e}")
        case = case.with_arrays({n: case.params[n] - lr * g[n] for n in names})
    prediction = forward(case)[0].y[:, 0, 0]
    return losses, prediction


def main() -> int:
    losses, prediction = train()
    print(f"targets:    {', '.join(f'{v:+.4f}' for v in TARGETS)}")
    print(f"prediction: {', '.join(f'{v:+.4f}' for v in prediction)}")
    print(f"loss: {losses[0]:.3e} -> {losses[-1]:.3e} ({losses[0] / losses[-1]:.3g}x lower)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
