"""Malformed: returns an extra key "weight_ih" (no layer suffix) next to the right ones (exit 1).

The user's single-layer code named the input weights "weight_ih" and kept that
alias when moving to torch's names.
"""

from typing import Any

import numpy as np
from textbook_lstm import grads as textbook_grads


def grads(case: Any) -> tuple[float, dict[str, np.ndarray]]:
    """Textbook gradients plus an alias with a name the case does not have."""
    loss, out = textbook_grads(case)
    out["weight_ih"] = out["weight_ih_l0"]
    return loss, out
