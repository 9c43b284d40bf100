"""Malformed: raises ValueError when the lengths are not sorted in decreasing order (exit 1).

The user copied torch's pack_padded_sequence(enforce_sorted=True) rule into
their own code. Without lengths, or with decreasing lengths, it is correct.
"""

from typing import Any

import numpy as np
from textbook_lstm import grads as textbook_grads


def grads(case: Any) -> tuple[float, dict[str, np.ndarray]]:
    """Textbook gradients, but only for lengths sorted in decreasing order."""
    if case.lengths is not None and np.any(np.diff(case.lengths) > 0):
        raise ValueError(f"lengths must be sorted in decreasing order, got {case.lengths.tolist()}")
    return textbook_grads(case)
