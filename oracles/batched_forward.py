"""The loss of K perturbed copies of one case at GEMM speed: the base run and the copies' forward.

Note [Batched copies]
---------------------
Every copy θ + δ_k e_{i_k} shares the base weights, so one GEMM per step runs all copies'
columns together and each copy's own change is a correction of one row of its
pre-activations (:mod:`lstm_gradcheck.oracles.batched_copies`). What a copy cannot change is
never recomputed (layers below, steps before its start, other batch rows), so the result is
L(θ + δ_k e_{i_k}) - C(i_k), C depending on the element alone: differences of copies of one
element, and imaginary parts, are those of the full loss. States are stored transposed
(H, N) so every gate block is one contiguous array.

Note [Sparse first step]
------------------------
A weight or bias copy of layer l differs from the base at step 0 in one pre-activation row
r only, so only unit r mod H of c_1 and h_1: :meth:`CopyForward.first_step` takes every
copy's h_1, c_1 from the base and recomputes that unit alone (4 values per column, not a
GEMM and a 4H-row step).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from lstm_gradcheck.oracles.batched_copies import (
    CopyGroup,
    InputCorrection,
    RowCorrection,
    StateCorrection,
)
from lstm_gradcheck.oracles.batched_gates import (
    complex_activate_,
    complex_tanh,
    gate_signs,
    matmul_into,
    real_activate_,
)
from lstm_gradcheck.oracles.batched_generic import GenericBase, generic_loss_magnitude, prepare_generic
from lstm_gradcheck.reference.case import Case, step_mask
from lstm_gradcheck.reference.config import LSTMConfig
from lstm_gradcheck.reference.head import loss_magnitude as head_magnitude
from lstm_gradcheck.reference.layout import (
    HEAD_BIAS,
    HEAD_WEIGHT,
    LSTM_PARAM_KINDS,
    gate_blocks,
    gradient_shapes,
    parse_name,
    rows_to_gate_units,
    unit_rows,
    weight_hh,
    weight_ih,
)
from lstm_gradcheck.reference.layout import bias_hh as bias_hh_name
from lstm_gradcheck.reference.layout import bias_ih as bias_ih_name
from lstm_gradcheck.reference.losses import ScoredSteps, head_loss, scored_steps
from lstm_gradcheck.reference.lstm import effective_bias

__all__ = [
    "Base",
    "prepare",
    "CopyForward",
    "copy_forward",
    "groups_of",
    "head_losses",
    "loss_magnitude",
    "base_copies",
    "x_bucket_start",
    "X_BUCKETS",
    "TARGET_COLUMNS",
]

#: Columns (copies x rows) per chunk: fewer jobs cost less per column, more keep both workers busy.
TARGET_COLUMNS = 2048
#: Copies of x start at one of this many steps (:func:`x_bucket_start`), not at their own:
#: fewer, larger groups; a copy of x[t] runs from its bucket's start, where it equals the base.
X_BUCKETS = 8


@dataclass(frozen=True)
class Base:
    """The unperturbed float64 forward, stored transposed for the batched runs.

    Per layer l (lists of length L): ``w_ih`` (4H, I_l), ``w_hh`` (4H, H),
    ``bias`` (4H,) = b_ih + b_hh + forget_bias on the forget rows, ``u``
    (T, I_l, B) the layer's input, ``zin`` (T, 4H, B) = W_ih u_t + bias,
    ``h``/``c`` (T+1, H, B) the states (index 0 = h0, c0). ``y`` (T, O, B)
    the logits, ``loss`` the full loss, ``scored`` the scored steps,
    ``valid`` (T, B) bool or None (no padding).
    """

    case: Case
    w_ih: tuple[np.ndarray, ...]
    w_hh: tuple[np.ndarray, ...]
    bias: tuple[np.ndarray, ...]
    u: tuple[np.ndarray, ...]
    zin: tuple[np.ndarray, ...]
    h: tuple[np.ndarray, ...]
    c: tuple[np.ndarray, ...]
    y: np.ndarray
    loss: float
    scored: ScoredSteps
    valid: np.ndarray | None

    @property
    def config(self) -> LSTMConfig:
        return self.case.config


def prepare(case: Case) -> Base | GenericBase:
    """The base forward of ``case`` in float64 (a float32 case is promoted exactly); a case of the
    LSTM family gets the generic path's base (Note [Generic copies])."""
    if not case.config.is_plain:
        return prepare_generic(case)
    if case.config.dtype != "float64":
        case = case.astype("float64")
    cfg = case.config
    p = case.params
    w_ih, w_hh, bias = [], [], []
    for k in range(cfg.num_layers):
        w_ih.append(np.ascontiguousarray(p[weight_ih(k)]))
        w_hh.append(np.ascontiguousarray(p[weight_hh(k)]))
        bias.append(effective_bias(p[bias_ih_name(k)], p[bias_hh_name(k)], cfg.forget_bias))
    mask = step_mask(case.lengths, cfg.seq_len)
    valid = None if mask is None else mask[..., 0]
    scored = scored_steps(cfg, case.targets, case.lengths)
    head = (p.get(HEAD_WEIGHT), p.get(HEAD_BIAS))  # None, None for the loss "upstream"
    partial = CopyForward(cfg, tuple(w_ih), tuple(w_hh), tuple(bias), *head, scored, valid, case)
    u0 = np.ascontiguousarray(case.x.transpose(0, 2, 1))
    h0 = tuple(np.ascontiguousarray(case.h0[k].T) for k in range(cfg.num_layers))
    c0 = tuple(np.ascontiguousarray(case.c0[k].T) for k in range(cfg.num_layers))
    run = partial.run_plain(u0, h0, c0)
    us, zins = [], []
    for k in range(cfg.num_layers):
        u = u0 if k == 0 else run.h[k - 1][1:]
        us.append(u)
        zins.append(np.matmul(w_ih[k], u) + bias[k][:, None])
    return Base(
        case, tuple(w_ih), tuple(w_hh), tuple(bias), tuple(us), tuple(zins), run.h, run.c, run.y,
        float(run.loss), scored, valid,
    )  # fmt: skip


@dataclass(frozen=True)
class PlainRun:
    h: tuple[np.ndarray, ...]
    c: tuple[np.ndarray, ...]
    y: np.ndarray
    loss: float


class CopyForward:
    """The model's equations over (H, N) columns; shared by the base and the groups."""

    def __init__(self, cfg, w_ih, w_hh, bias, w_head, b_head, scored, valid, case):
        self.cfg = cfg
        self.sign = gate_signs(cfg.hidden_size)
        self.w_ih = tuple(self.sign[:, None] * w for w in w_ih)
        self.w_hh = tuple(self.sign[:, None] * w for w in w_hh)
        self.bias = tuple(self.sign * b for b in bias)
        # No head for the loss "upstream": its logits are the top layer's h itself.
        self.w_head = None if w_head is None else np.ascontiguousarray(w_head)
        self.b_head = None if b_head is None else np.asarray(b_head)
        self.scored, self.valid, self.case = scored, valid, case
        self._first: dict[int, np.ndarray] = {}

    def _step(self, z: np.ndarray, c: np.ndarray, h: np.ndarray, valid: np.ndarray | None, scratch: np.ndarray):
        """Gates from signed pre-activations z (4H', N); updates c and h (H', N) in place
        (H' = H, or 1 for the one unit of :meth:`_first_step`)."""
        if np.iscomplexobj(z):
            self._complex_step(z, c, h, valid, scratch)
            return
        hidden = z.shape[0] // 4
        # Note [Real gates]: i, f, o hold 1 + exp(-z); dividing by them is multiplying by the gate.
        real_activate_(z, hidden)
        i, f, g, o = gate_blocks(z, hidden, axis=0)
        np.divide(g, i, out=g)
        if valid is None:
            np.divide(c, f, out=c)
            c += g
            cell = c
        else:  # padding copies the state forward, exactly like torch's packed sequences
            np.divide(c, f, out=f)
            f += g
            np.copyto(c, f, where=valid)
            cell = f
        if self.cfg.cell_output == "tanh":
            np.tanh(cell, out=scratch)
            cell = scratch
        if valid is None:
            np.divide(cell, o, out=h)
        else:
            np.divide(cell, o, out=o)
            np.copyto(h, o, where=valid)

    def _complex_step(self, z: np.ndarray, c: np.ndarray, h: np.ndarray, valid: np.ndarray | None, scratch):
        """:meth:`_step` in complex128, with the gates themselves (Note [Complex gates])."""
        hidden = z.shape[0] // 4
        complex_activate_(z, hidden)
        i, f, g, o = gate_blocks(z, hidden, axis=0)
        f *= c
        i *= g
        if valid is None:
            np.add(f, i, out=c)
            cell = c
            if self.cfg.cell_output == "tanh":
                complex_tanh(c, scratch)
                cell = scratch
            np.multiply(o, cell, out=h)
            return
        # Padding copies the state forward, exactly like torch's packed sequences.
        f += i
        np.copyto(c, f, where=valid)
        cell = f
        if self.cfg.cell_output == "tanh":
            complex_tanh(f, scratch)
            cell = scratch
        o *= cell
        np.copyto(h, o, where=valid)

    def run_plain(self, u0: np.ndarray, h0: Sequence[np.ndarray], c0: Sequence[np.ndarray]) -> PlainRun:
        """The unperturbed forward over B columns, storing every state (for :func:`prepare`)."""
        cfg = self.cfg
        t_len, hidden = cfg.seq_len, cfg.hidden_size
        batch = u0.shape[-1]
        hs = [np.empty((t_len + 1, hidden, batch)) for _ in range(cfg.num_layers)]
        cs = [np.empty((t_len + 1, hidden, batch)) for _ in range(cfg.num_layers)]
        z = np.empty((4 * hidden, batch))
        scratch = np.empty((hidden, batch))

        for k in range(cfg.num_layers):
            hs[k][0], cs[k][0] = h0[k], c0[k]
            for t in range(t_len):
                u = u0[t] if k == 0 else hs[k - 1][t + 1]
                np.matmul(self.w_ih[k], u, out=z)
                z += np.matmul(self.w_hh[k], hs[k][t])
                z += self.bias[k][:, None]
                hs[k][t + 1], cs[k][t + 1] = hs[k][t], cs[k][t]
                self._step(z, cs[k][t + 1], hs[k][t + 1], None if self.valid is None else self.valid[t], scratch)
        y = hs[-1][1:] if self.w_head is None else np.matmul(self.w_head, hs[-1][1:]) + self.b_head[:, None]
        loss = (
            self._head(y[None], None, 0)[0]
            + self._final_state(
                [hs[k][-1][:, None, :] for k in range(cfg.num_layers)],
                [cs[k][-1][:, None, :] for k in range(cfg.num_layers)],
                None,
                0,
            )[0]
        )
        return PlainRun(tuple(hs), tuple(cs), y, float(loss))

    def _head(self, y: np.ndarray, rows: np.ndarray | None, t0: int) -> np.ndarray:
        """Per-copy loss of logits y (K, T', O, R) over steps >= t0 of ``rows`` (fixed divisor)."""
        weight, targets = self.scored.weight[t0:], self.scored.targets[t0:]
        if rows is not None:  # one row per copy: (K, T', 1)
            weight = weight[:, rows].T[:, :, None]
            targets = np.moveaxis(targets[:, rows], 1, 0)[:, :, None]
        scored = ScoredSteps(weight, targets, self.scored.count)
        return head_loss(np.swapaxes(y, -1, -2), self.cfg, scored, need_grad=False)[0]

    def _final_state(self, h: Sequence[np.ndarray], c: Sequence[np.ndarray], rows, l0: int) -> np.ndarray:
        """sum(dh_n h_n) + sum(dc_n c_n) over layers >= l0, per copy; h[k] (H, K, R)."""
        k_copies = h[0].shape[1]
        if not self.cfg.final_state:
            return np.zeros(k_copies)
        total = 0.0
        for offset, layer in enumerate(range(l0, self.cfg.num_layers)):
            dh, dc = self.case.dh_n[layer].T, self.case.dc_n[layer].T  # (H, B)
            dh = dh[:, rows][:, :, None] if rows is not None else dh[:, None, :]
            dc = dc[:, rows][:, :, None] if rows is not None else dc[:, None, :]
            total = total + np.sum(dh * h[offset], axis=(0, 2)) + np.sum(dc * c[offset], axis=(0, 2))
        return total

    def _first_weights(self, base: Base, layer: int) -> np.ndarray:
        """(T, 4H, H + B) = [W_hh | zin_t] per step, signed; built once per layer and shared."""
        cached = self._first.get(layer)
        if cached is None:
            hidden = self.cfg.hidden_size
            cached = np.empty((self.cfg.seq_len, 4 * hidden, hidden + self.cfg.batch_size))
            cached[:, :, :hidden] = self.w_hh[layer]
            cached[:, :, hidden:] = self.sign[None, :, None] * base.zin[layer]
            cached.setflags(write=False)
            self._first[layer] = cached  # a benign race: two threads may build the same array
        return cached

    def _first_step(self, base: Base, group: CopyGroup, h: np.ndarray, c: np.ndarray, dtype: np.dtype) -> None:
        """Step 0 of the perturbed layer for weight and bias copies (Note [Sparse first step]):
        writes every copy's h_1, c_1 (H, K * B) into ``h`` and ``c``."""
        p, layer, batch = group.perturb, group.l0, self.cfg.batch_size
        hidden, k = self.cfg.hidden_size, group.k
        columns = np.tile(np.arange(batch), k)
        h[:] = base.h[layer][1][:, columns]
        c[:] = base.c[layer][1][:, columns]
        gates, units = rows_to_gate_units(p.rows, hidden)
        # The base's signed pre-activations at step 0 of each copy's unit, its four gates: (4, K, B).
        z0 = self.w_hh[layer] @ base.h[layer][0] + self.sign[:, None] * base.zin[layer][0]
        z = z0[unit_rows(units, hidden)].astype(dtype)
        if p.source == "bias":
            z[gates, np.arange(k)] += p.delta[:, None]
        else:  # the copy's own u_0 or h_0 (both the base's at step 0)
            coef = (base.u[layer] if p.source == "input" else base.h[layer])[0][p.cols]
            z[gates, np.arange(k)] += p.delta[:, None] * coef
        c_unit = base.c[layer][0][units].astype(dtype).reshape(1, -1)
        h_unit = np.empty_like(c_unit)
        self._step(z.reshape(4, -1), c_unit, h_unit, None, np.empty_like(c_unit))  # every row is valid at t = 0
        h.reshape(hidden, k, batch)[units, np.arange(k)] = h_unit.reshape(k, batch)
        c.reshape(hidden, k, batch)[units, np.arange(k)] = c_unit.reshape(k, batch)

    def run_group(self, base: Base, group: CopyGroup, dtype: np.dtype) -> np.ndarray:
        with np.errstate(over="ignore"):  # per thread: numpy's error state is thread-local
            return self._run_group(base, group, dtype)

    def _run_group(self, base: Base, group: CopyGroup, dtype: np.dtype) -> np.ndarray:
        """Partial losses (K,) of one group of copies (Note [Batched copies]).

        The perturbed layer's state lives in a buffer ``[h; E]`` of (H + B, N)
        whose last B rows are the one-hot batch row of each column, so one GEMM
        ``[W_hh | zin_t] @ [h; E]`` adds the shared input projection ``zin_t``
        (4H, B) to every copy's recurrent term.
        """
        cfg = self.cfg
        hidden, t_len, batch = cfg.hidden_size, cfg.seq_len, cfg.batch_size
        l0, t0, k, rows = group.l0, group.t0, group.k, group.rows
        r = batch if rows is None else 1
        n = k * r
        layers = range(l0, cfg.num_layers)
        top = len(layers) - 1
        column_rows = np.tile(np.arange(batch), k) if rows is None else rows
        first = np.zeros((hidden + batch, n), dtype=dtype)
        first[hidden + column_rows, np.arange(n)] = 1.0
        h, c = [], []
        for offset, layer in enumerate(layers):
            hb, cb = base.h[layer][t0], base.c[layer][t0]  # (H, B)
            hs = first[:hidden] if offset == 0 else np.empty((hidden, n), dtype=dtype)
            cs = np.empty((hidden, n), dtype=dtype)
            hs[:] = hb[:, column_rows]
            cs[:] = cb[:, column_rows]
            group.perturb.init(layer, hs.reshape(hidden, k, r), cs.reshape(hidden, k, r))
            h.append(hs)
            c.append(cs)
        w_first = self._first_weights(base, l0)
        z = np.empty((4 * hidden, n), dtype=dtype)
        tmp = np.empty_like(z) if top > 0 else None
        scratch = np.empty((hidden, n), dtype=dtype)
        outputs = np.empty((hidden, t_len - t0, n), dtype=dtype)  # the top layer's h_t, for the head
        sparse_first = isinstance(group.perturb, RowCorrection)  # these groups start at t0 = 0
        if sparse_first:
            self._first_step(base, group, h[0], c[0], dtype)
        for t in range(t0, t_len):
            valid = None if self.valid is None else self.valid[t][column_rows][None, :]
            for offset, layer in enumerate(layers):
                if offset == 0 and t == 0 and sparse_first:
                    continue
                if offset == 0:
                    matmul_into(w_first[t], first, z)
                    group.perturb.correct(t, z.reshape(4 * hidden, k, r), h[0].reshape(hidden, k, r))
                else:
                    matmul_into(self.w_ih[layer], h[offset - 1], z)
                    matmul_into(self.w_hh[layer], h[offset], tmp)
                    z += tmp
                    z += self.bias[layer][:, None]
                self._step(z, c[offset], h[offset], valid, scratch)
            outputs[:, t - t0] = h[top]
        if self.w_head is None:
            y = outputs.reshape(hidden, t_len - t0, k, r).transpose(2, 1, 0, 3)  # (K, T', H, R)
        else:
            y = np.empty((cfg.output_size, (t_len - t0) * n), dtype=dtype)
            matmul_into(self.w_head, outputs.reshape(hidden, -1), y)
            y += self.b_head[:, None]
            y = y.reshape(cfg.output_size, t_len - t0, k, r).transpose(2, 1, 0, 3)  # (K, T', O, R)
        loss = self._head(y, rows, t0)
        finals_h = [a.reshape(hidden, k, r) for a in h]
        finals_c = [a.reshape(hidden, k, r) for a in c]
        return loss + self._final_state(finals_h, finals_c, rows, l0)


def copy_forward(base: Base) -> CopyForward:
    return CopyForward(
        base.config, base.w_ih, base.w_hh, base.bias, base.case.params.get(HEAD_WEIGHT),
        base.case.params.get(HEAD_BIAS),
        base.scored, base.valid, base.case,
    )  # fmt: skip


def x_bucket_start(config: LSTMConfig, steps: np.ndarray) -> np.ndarray:
    """The step at which the group of a copy of x[t] starts: t rounded down to one of
    X_BUCKETS evenly spaced steps. It depends on t alone, so the constant C of a copy
    (the loss before its group's start) is the same in every request."""
    width = -(-config.seq_len // X_BUCKETS)
    return (np.asarray(steps) // width) * width


def groups_of(base: Base, name: str, index: np.ndarray, delta: np.ndarray) -> list[tuple[np.ndarray, CopyGroup]]:
    """Split the copies of tensor ``name`` into groups that share a start (layer, step, rows)."""
    cfg = base.config
    shape = gradient_shapes(cfg)[name]
    parsed = parse_name(name)
    kind, layer = parsed.kind, parsed.layer
    out: list[tuple[np.ndarray, CopyGroup]] = []
    if kind in LSTM_PARAM_KINDS:
        if kind.startswith("weight"):
            r_idx, c_idx = np.unravel_index(index, shape)
        else:
            r_idx, c_idx = index, None
        source = {"weight_ih": "input", "weight_hh": "state"}.get(kind, "bias")
        signed = delta * gate_signs(cfg.hidden_size)[r_idx]
        pert = RowCorrection(source, r_idx, c_idx, signed, base.u[layer])
        out.append((np.arange(len(index)), CopyGroup(layer, 0, len(index), None, pert)))
        return out
    if kind == "x":
        steps, rows, cols = np.unravel_index(index, shape)
        starts = x_bucket_start(cfg, steps)
        for t0 in np.unique(starts):
            sel = np.flatnonzero(starts == t0)
            signs = gate_signs(cfg.hidden_size)[:, None]
            pert = InputCorrection(steps[sel], signs * base.w_ih[0][:, cols[sel]] * delta[sel][None, :])
            out.append((sel, CopyGroup(0, int(t0), len(sel), rows[sel], pert)))
        return out
    if kind in ("h0", "c0"):
        layers, rows, units = np.unravel_index(index, shape)
        for lay in np.unique(layers):
            sel = np.flatnonzero(layers == lay)
            pert = StateCorrection(kind, int(lay), units[sel], delta[sel])
            out.append((sel, CopyGroup(int(lay), 0, len(sel), rows[sel], pert)))
        return out
    raise ValueError(f"not an LSTM tensor: {name!r}")


def head_losses(base: Base, name: str, index: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """head.weight / head.bias copies: y_t[o] += δ h_t[c] (or δ); the loss only."""
    cfg = base.config
    top = base.h[-1][1:]  # (T, H, B)
    partial = copy_forward(base)
    out = np.empty(len(index), dtype=delta.dtype)
    per_chunk = max(1, 16 * TARGET_COLUMNS // max(1, cfg.seq_len * cfg.batch_size))
    for start in range(0, len(index), per_chunk):
        part = slice(start, start + per_chunk)
        idx, dlt = index[part], delta[part]
        if name == HEAD_WEIGHT:
            o_idx, c_idx = np.unravel_index(idx, (cfg.output_size, cfg.hidden_size))
            shift = dlt[:, None, None] * top[:, c_idx, :].transpose(1, 0, 2)  # (K, T, B)
        else:
            o_idx = idx
            shift = np.broadcast_to(dlt[:, None, None], (len(idx), cfg.seq_len, cfg.batch_size))
        y = np.broadcast_to(base.y, (len(idx), *base.y.shape)).astype(delta.dtype)  # (K, T, O, B)
        y[np.arange(len(idx)), :, o_idx, :] += shift
        out[part] = partial._head(y, None, 0)
    return out


def loss_magnitude(base: Base | GenericBase) -> float:
    """:func:`lstm_gradcheck.reference.head.loss_magnitude` of the base forward: the size of
    what the loss adds up and rounds."""
    if isinstance(base, GenericBase):
        return generic_loss_magnitude(base)
    h_n = np.stack([h[-1].T for h in base.h])  # (L, B, H); padding carries the last valid state
    c_n = np.stack([c[-1].T for c in base.c])
    return head_magnitude(base.case, base.y.transpose(0, 2, 1), h_n, c_n)


def base_copies(config: LSTMConfig, name: str, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The δ = 0 copies that :func:`base_partial_losses` needs: one element per distinct constant
    ``C`` (per (step, row) of x, per (layer, row) of h0/c0, one for a parameter), and for each of
    ``index`` the position of its own among them. Returns ``(elements, inverse)``."""
    index = np.asarray(index, dtype=np.int64)
    shape = gradient_shapes(config)[name]
    if parse_name(name).kind in ("x", "h0", "c0"):  # C depends on (step, row) or (layer, row)
        key = np.ravel_multi_index(np.unravel_index(index, shape)[:2], shape[:2])
    else:
        key = np.zeros(len(index), dtype=np.int64)
    _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    return index[first], inverse.reshape(-1)
