"""Every layer's parameters as one flat vector in a stated order (cuDNN, thinc and similar code).

Note [Flat parameter order]
---------------------------
The vector is the layers one after another (layer 0 first); within a layer its directions
(forward, then reverse when bidirectional); within a direction the arrays of
:meth:`Layout.params` in ``order`` (by default the layout's own key order, :meth:`Layout.keys`,
which is cuDNN's and torch's: W_ih, W_hh, b_ih, b_hh, then the peepholes w_ci, w_cf, w_co,
then the projection W_hr); each array flattened row-major (C order) in the layout's shape, and
a per-gate dict gate by gate in the layout's gate order. The head is not in it (:func:`head`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from lstm_gradcheck.reference.converters import PEEPHOLE_KEYS, PROJECTION_KEY, Layout

if TYPE_CHECKING:
    from lstm_gradcheck.reference.case import Case

__all__ = ["Segment", "flat_segments", "flat_params", "flat_grads"]

#: Every key :meth:`Layout.params` can give (an explicit order may name those a case lacks).
_ALL_KEYS = ("Wx", "Wh", "W", "bx", "bh", "b", *PEEPHOLE_KEYS.values(), PROJECTION_KEY)


@dataclass(frozen=True)
class Segment:
    """One array's place in the flat vector: ``vector[start:stop]`` is ``key`` of layer ``layer``'s
    direction ``direction`` (gate ``gate``'s block of a per-gate dict, else None), of ``shape``."""

    layer: int
    direction: int
    key: str
    gate: str | None
    shape: tuple[int, ...]
    start: int
    stop: int


def _ordered_keys(layout: Layout, case: Case, order: Sequence[str] | None) -> tuple[str, ...]:
    """The keys of one direction in the vector's order (Note [Flat parameter order])."""
    keys = layout.keys(case.config)
    if order is None:
        return keys
    order = tuple(order)
    unknown = [k for k in order if k not in _ALL_KEYS]
    wanted = tuple(k for k in order if k in keys)
    if unknown or sorted(wanted) != sorted(keys) or len(set(order)) != len(order):
        raise ValueError(
            f"flat order {list(order)}: list each of this layout's arrays {list(keys)} once "
            f"(keys a case lacks, such as the peepholes' {list(PEEPHOLE_KEYS.values())}, may stay in)"
            + (f"; unknown {unknown}" if unknown else "")
        )
    return wanted


def _arrays(layout: Layout, case: Case, order: Sequence[str] | None) -> Iterator[tuple[Segment, np.ndarray]]:
    """Each piece of the vector with its segment, in the vector's order."""
    keys = _ordered_keys(layout, case, order)
    start = 0
    for layer in range(case.config.num_layers):
        for direction in range(case.config.num_directions):
            p = layout.params(case, layer, direction)
            for key in keys:
                value = p[key]
                blocks = [(g, value[g]) for g in layout.gates] if isinstance(value, dict) else [(None, value)]
                for gate, block in blocks:
                    a = np.asarray(block)
                    yield Segment(layer, direction, key, gate, a.shape, start, start + a.size), a
                    start += a.size


def flat_segments(case: Case, layout: Layout | None = None, order: Sequence[str] | None = None) -> list[Segment]:
    """Where each array sits in :func:`flat_params`'s vector (Note [Flat parameter order])."""
    return [segment for segment, _ in _arrays(layout or Layout(), case, order)]


def flat_params(case: Case, layout: Layout | None = None, order: Sequence[str] | None = None) -> np.ndarray:
    """Every layer's parameters of ``case`` as one 1-D vector in the case's dtype.

    For layer k = 0..L-1, for direction d = 0 (forward), 1 (reverse, when bidirectional): the
    arrays ``layout.params(case, k, d)`` keyed by ``order`` (default :meth:`Layout.keys`: with
    the default ``Layout()``, cuDNN's W_ih (4H, I_k), W_hh (4H, P), b_ih (4H,), b_hh (4H,), then
    w_ci, w_cf, w_co (H,) and W_hr (P, H) where the case has them), each flattened row-major in
    the layout's shape (Note [Flat parameter order]); I_0 = I, I_k = D * P above. The head is
    not included. ``order`` may name keys the case lacks (they are skipped) but must name every
    key it has.
    """
    pieces = [a.ravel() for _, a in _arrays(layout or Layout(), case, order)]
    return np.concatenate(pieces).astype(case.config.np_dtype, copy=False)


def flat_grads(
    vector: np.ndarray, case: Case, layout: Layout | None = None, order: Sequence[str] | None = None
) -> dict[str, np.ndarray]:
    """The contract's gradients of every layer's parameters from the gradient of :func:`flat_params`'s
    vector (same ``layout`` and ``order``): ``weight_ih_l{k}`` ... with ``_reverse`` for the reverse
    direction, through :meth:`Layout.grads`. ValueError if ``vector`` has the wrong size."""
    layout = layout or Layout()
    vector = np.asarray(vector)
    segments = flat_segments(case, layout, order)
    size = segments[-1].stop
    if vector.shape != (size,):
        raise ValueError(
            f"flat_grads: expected a vector of shape ({size},) for this case and layout, got {vector.shape}"
        )
    per_direction: dict[tuple[int, int], dict[str, object]] = {}
    for s in segments:
        user = per_direction.setdefault((s.layer, s.direction), {})
        piece = vector[s.start : s.stop].reshape(s.shape)
        if s.gate is None:
            user[s.key] = piece
        else:
            user.setdefault(s.key, {})[s.gate] = piece  # type: ignore[union-attr]
    out: dict[str, np.ndarray] = {}
    for (layer, direction), user in per_direction.items():
        out.update(layout.grads(user, case, layer, direction))
    return out
