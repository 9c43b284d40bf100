"""Length-sorted and packed batches, for code that takes sequences sorted by length, longest first.

Note [Packed batches]
---------------------
torch's ``pack_padded_sequence(enforce_sorted=True)`` and cuDNN take a batch sorted by length,
longest first, as one array ``data`` (sum of lengths, ...) holding step 0 of every sequence,
then step 1 of those longer than 1, and so on, with ``batch_sizes[t]`` the sequences still
running at step t. :func:`sort_by_length` gives the order, :func:`unsort` puts a gradient's
batch axis back in the case's order; :func:`pack` and :func:`unpack` convert padded (T, B, ...)
arrays, and since unpacking fills padding with zeros it is pack's adjoint: it converts gradients.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from lstm_gradcheck.reference.case import Case

__all__ = ["sort_by_length", "unsort", "pack", "unpack"]


def sort_by_length(case: Case) -> tuple[np.ndarray, np.ndarray]:
    """``(order, lengths)``: the batch permutation (B,) sorting the case's sequences by length, longest
    first (ties keep the case's order), and their lengths in that order (B,), every one T when the
    case has no lengths. ``case.x[:, order]``, ``case.h0[:, order]`` and ``case.c0[:, order]`` are
    the sorted batch (Note [Packed batches])."""
    cfg = case.config
    lengths = np.full(cfg.batch_size, cfg.seq_len) if case.lengths is None else np.asarray(case.lengths)
    order = np.argsort(-lengths, kind="stable")
    return order, lengths[order].astype(np.int64)


def unsort(a: np.ndarray, order: np.ndarray, axis: int = 1) -> np.ndarray:
    """``a`` whose ``axis`` (the batch: 1 for x (T, B, I), h0 and c0 (L*D, B, ...)) is in ``order``'s
    sorted order, back in the case's order: ``unsort(a[:, order], order)`` is ``a``. A copy."""
    return np.take(np.asarray(a), np.argsort(order), axis=axis)


def _batch_sizes(lengths: np.ndarray) -> np.ndarray:
    lengths = np.asarray(lengths)
    if lengths.ndim != 1 or lengths.size == 0 or np.any(lengths < 1):
        raise ValueError(f"pack: lengths must be a (B,) array of lengths >= 1, got {lengths!r}")
    if np.any(np.diff(lengths) > 0):
        raise ValueError(
            f"pack: lengths {lengths.tolist()} are not sorted longest first; sort the batch with "
            "sort_by_length(case) and put gradients back with unsort"
        )
    return (lengths[None, :] > np.arange(lengths[0])[:, None]).sum(axis=1).astype(np.int64)


def pack(x: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(data, batch_sizes)`` from a padded time-major ``x`` (T, B, ...) whose sequences are sorted
    longest first (``lengths`` (B,), non-increasing, each 1..T): ``data`` (sum(lengths), ...) is
    x[0, :batch_sizes[0]], then x[1, :batch_sizes[1]], ...; ``batch_sizes`` (max(lengths),) int64
    counts the sequences longer than each step (torch's PackedSequence)."""
    batch_sizes = _batch_sizes(lengths)
    x = np.asarray(x)
    if batch_sizes.size > x.shape[0] or batch_sizes[0] != x.shape[1]:
        raise ValueError(f"pack: x {x.shape} is not (T, B, ...) for lengths {np.asarray(lengths).tolist()}")
    return np.concatenate([x[t, :n] for t, n in enumerate(batch_sizes)]), batch_sizes


def unpack(data: np.ndarray, batch_sizes: np.ndarray, seq_len: int | None = None) -> np.ndarray:
    """The padded time-major array (T, B, ...) of packed ``data`` (sum(lengths), ...), zero on
    padding; T is ``seq_len`` (default len(batch_sizes)), B = batch_sizes[0]. As pack's adjoint it
    takes the gradient of ``data`` to the gradient of the padded x (Note [Packed batches])."""
    data, batch_sizes = np.asarray(data), np.asarray(batch_sizes)
    steps = len(batch_sizes) if seq_len is None else seq_len
    if data.shape[0] != batch_sizes.sum() or steps < len(batch_sizes):
        raise ValueError(f"unpack: data {data.shape} does not match batch_sizes {batch_sizes.tolist()}")
    out = np.zeros((steps, batch_sizes[0], *data.shape[1:]), dtype=data.dtype)
    offsets = np.concatenate([[0], np.cumsum(batch_sizes)])
    for t, n in enumerate(batch_sizes):
        out[t, :n] = data[offsets[t] : offsets[t + 1]]
    return out
