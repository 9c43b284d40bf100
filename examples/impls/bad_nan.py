"""Malformed: bias_hh_l0's gradient has NaN in its output-gate rows (exit 1, "non-finite").

The user allocates the gradient with np.full(..., np.nan), to notice rows that
are never written, then fills it gate by gate with range(3): one gate short.
"""

from typing import Any

import numpy as np
from textbook_lstm import grads as textbook_grads


def grads(case: Any) -> tuple[float, dict[str, np.ndarray]]:
    """Textbook gradients, with bias_hh_l0 rebuilt gate by gate (the last gate forgotten)."""
    loss, out = textbook_grads(case)
    hidden = case.config.hidden_size
    d_bias = np.full(4 * hidden, np.nan, dtype=out["bias_ih_l0"].dtype)
    for k in range(3):  # the bug: four gates i, f, g, o, but range(3)
        rows = slice(k * hidden, (k + 1) * hidden)
        d_bias[rows] = out["bias_ih_l0"][rows]
    out["bias_hh_l0"] = d_bias
    return loss, out
