"""How K perturbed copies of a case differ from the base: one perturbation class per kind of tensor.

A weight or bias copy adds one row's correction to the perturbed layer's pre-activations
(z_t[r] += δ u_t[c], δ h_{t-1}[c] or δ); an x copy adds δ W_ih_0[:, j] at its own step, on its
own batch row; an h0 or c0 copy changes its layer's initial state, on its own row (Note
[Batched copies] in :mod:`lstm_gradcheck.oracles.batched_forward`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["CopyGroup", "Perturbation", "RowCorrection", "InputCorrection", "StateCorrection", "slice_group"]


@dataclass(frozen=True)
class CopyGroup:
    """K copies that start at layer ``l0``, step ``t0``, on batch ``rows`` (K,) (one row
    each) or all B rows (``rows`` None); ``perturb`` applies each copy's change."""

    l0: int
    t0: int
    k: int
    rows: np.ndarray | None
    perturb: Perturbation


class Perturbation:
    """How K copies differ from the base: initial states and per-step corrections."""

    def init(self, layer: int, h: np.ndarray, c: np.ndarray) -> None:  # (H, K, R) views
        """Change the copies' initial states of ``layer`` (default: none)."""

    def correct(self, t: int, z: np.ndarray, h_prev: np.ndarray) -> None:  # (4H, K, R), (H, K, R)
        """Add the copies' corrections to the perturbed layer's pre-activations at step t."""


class RowCorrection(Perturbation):
    """Weights and biases of the perturbed layer: z_t[r_k] += δ_k * coef_k(t) (Note [Batched copies]).

    ``source`` is "input" (weight_ih: coef = u_t[c_k], the layer's shared input
    ``u`` (T, I_l, B)), "state" (weight_hh: coef = the copy's own h_{t-1}[c_k])
    or "bias" (coef = 1); ``rows`` (K,) are the 4H rows r_k, ``cols`` (K,) the c_k.
    """

    def __init__(self, source: str, rows: np.ndarray, cols: np.ndarray | None, delta: np.ndarray, u=None):
        self.source, self.rows, self.cols, self.delta, self.u = source, rows, cols, delta, u
        self._flat: tuple[np.ndarray, np.ndarray | None, np.ndarray] | None = None

    def sliced(self, part: slice) -> RowCorrection:
        cols = None if self.cols is None else self.cols[part]
        return RowCorrection(self.source, self.rows[part], cols, self.delta[part], self.u)

    def _flat_indices(self, k: int, r: int) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        """Flat positions of (r_k, k, :) in z (4H, K, R) and of (c_k, k, :) in h (H, K, R), and δ per
        position: one gather and one scatter per step instead of three-axis fancy indexing."""
        if self._flat is None:
            within = np.arange(k)[:, None] * r + np.arange(r)
            z_at = (self.rows[:, None] * (k * r) + within).ravel()
            h_at = None if self.cols is None else (self.cols[:, None] * (k * r) + within).ravel()
            self._flat = (z_at, h_at, np.repeat(self.delta, r))
        return self._flat

    def correct(self, t: int, z: np.ndarray, h_prev: np.ndarray) -> None:
        _, k, r = z.shape
        z_at, h_at, delta = self._flat_indices(k, r)
        flat = z.reshape(-1)  # a view: z is a reshape of a contiguous (4H, N) buffer
        if self.source == "bias":
            flat[z_at] += delta
        elif self.source == "input":
            flat[z_at] += (self.delta[:, None] * self.u[t][self.cols]).ravel()
        else:
            flat[z_at] += delta * h_prev.reshape(-1)[h_at]


class InputCorrection(Perturbation):
    """x[t_k, b_k, j_k] += δ_k: z_{t_k}[:, k] += δ_k W_ih_0[:, j_k], each copy at its own step t_k
    (a group of x copies starts at its bucket's first step, Note [Batched copies])."""

    def __init__(self, steps: np.ndarray, value: np.ndarray):
        self.steps, self.value = steps, value  # steps (K,) the t_k; value (4H, K) = W_ih_0[:, j_k] * δ_k

    def sliced(self, part: slice) -> InputCorrection:
        return InputCorrection(self.steps[part], self.value[:, part])

    def correct(self, t: int, z: np.ndarray, h_prev: np.ndarray) -> None:
        hit = np.flatnonzero(self.steps == t)
        if hit.size:
            z[:, hit, 0] += self.value[:, hit]


class StateCorrection(Perturbation):
    """h0 or c0 [l0, b_k, u_k] += δ_k (the group starts at layer l0 with rows b_k)."""

    def __init__(self, which: str, layer: int, units: np.ndarray, delta: np.ndarray):
        self.which, self.layer, self.units, self.delta = which, layer, units, delta
        self.copies = np.arange(len(units))

    def init(self, layer: int, h: np.ndarray, c: np.ndarray) -> None:
        if layer == self.layer:
            target = h if self.which == "h0" else c
            target[self.units, self.copies, 0] += self.delta


def slice_group(group: CopyGroup, part: slice) -> CopyGroup:
    """The copies ``part`` of ``group`` (its perturbation sliced alike)."""
    p = group.perturb
    rows = None if group.rows is None else group.rows[part]
    if isinstance(p, RowCorrection):
        new: Perturbation = p.sliced(part)
    elif isinstance(p, InputCorrection):
        new = p.sliced(part)
    else:
        new = StateCorrection(p.which, p.layer, p.units[part], p.delta[part])
    return CopyGroup(group.l0, group.t0, len(range(*part.indices(group.k))), rows, new)
