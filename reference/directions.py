"""The reverse direction's view of time: each sequence reversed within its own length.

Note [Reverse direction]
------------------------
torch's reverse direction runs each sequence from its last valid step, lengths[b] - 1, down
to step 0 (packed-sequence semantics), from its own initial state. So it is a forward pass
over the sequence reversed within its length: step s of its processing order is time
lengths[b] - 1 - s, and padding steps (t >= lengths[b]) stay where they are, last, where
they copy the state. The map is its own inverse, so one gather takes any (T, B, ...) array
to the reverse direction's order and back; its final state is torch's h_n for it.
"""

from __future__ import annotations

import numpy as np

__all__ = ["reverse_order", "in_order"]


def reverse_order(lengths: np.ndarray | None, seq_len: int, batch: int) -> np.ndarray:
    """(T, B) int: the time step of each (processing step, sequence) of the reverse direction,
    lengths[b] - 1 - s on valid steps, the step itself on padding (Note [Reverse direction])."""
    steps = np.arange(seq_len)[:, None]
    length = np.full(batch, seq_len) if lengths is None else np.asarray(lengths)
    return np.where(steps < length[None, :], length[None, :] - 1 - steps, steps)


def in_order(a: np.ndarray, order: np.ndarray | None) -> np.ndarray:
    """``a`` (T, B, ...) gathered by ``order`` (T, B) (None: ``a`` itself): from time order to the
    reverse direction's processing order, or back (the map is an involution)."""
    if order is None:
        return a
    return a[order, np.arange(order.shape[1])[None, :]]
