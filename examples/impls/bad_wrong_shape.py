"""Malformed: weight_hh_l0's gradient is returned transposed, (H, 4H) instead of (4H, H) (exit 1).

The user accumulated h_prev^T @ dz (the convention of h @ W code) instead of dz^T @ h_prev.
"""

from typing import Any

import numpy as np
from textbook_lstm import grads as textbook_grads


def grads(case: Any) -> tuple[float, dict[str, np.ndarray]]:
    """Textbook gradients with weight_hh_l0 in the (in, out) convention."""
    loss, out = textbook_grads(case)
    out["weight_hh_l0"] = out["weight_hh_l0"].T
    return loss, out
