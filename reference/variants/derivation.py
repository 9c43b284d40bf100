"""One BPTT derivation, written step by step in the seeds' notation, with a switch per known mistake.

``Derivation()`` is the correct derivation of the contract's model; it equals
the reference to the tolerance rule (tests/test_variants.py checks it on
random cases). Every other derivation variant is the same code with one
switch flipped, e.g. ``Derivation(recurrent_dh=False)`` is seed 004's eq. (3);
each switch is a one-line deviation at the place a real derivation goes
wrong, so the regression suite's 25+ wrong variants are 25+ declarations,
not 25 copies of BPTT.

Forward, layer k, step t (u_t = x_t for k = 0, the layer below's h_t otherwise)::

    z_t = W_x u_t + W_h h_{t-1} + b        per gate, stored in the variant's Form
    y_t = W_head h_t^(top) + b_head        (y_t = h_t^(top) for the layer-only loss "upstream")
    i = σ(z_i)  f = σ(z_f + forget_bias)  g = tanh(z_g)  o = σ(z_o)
    c_t = f c_{t-1} + i g                  h_t = o tanh(c_t)   (identity cell: h_t = o c_t)

Backward, t = T-1 .. 0 (shapes (B, H); cell' = d cell / d c = 1 - tanh²(c_t), or 1)::

    δh^t = l'(t) + W_h^T δz^{t+1}                        the recurrent term      (dh_n at t = T-1)
    δc^t = f^{t+1} δc^{t+1} + δh^t o^t cell'(c^t)         the cell carry         (dc_n at t = T-1)
    δz_i = δc^t g σ'(z_i)     δz_f = δc^t c^{t-1} σ'(z_f + forget_bias)
    δz_g = δc^t i tanh'(z_g)  δz_o = δh^t cell(c^t) σ'(z_o)
    dW_x += δz^T u_t   dW_h += δz^T h_{t-1}   db += Σ_b δz   du_t = W_x^T δz (the layer below's l'(t))
    ∂L/∂h0 = W_h^T δz^0       ∂L/∂c0 = f^0 δc^0

Padding steps (t >= lengths[b]) copy the state, so their δz is zero and the
incoming δh, δc pass through unchanged. The returned loss is always the
contract's loss: only the backward deviates, so a variant's mismatches are
gradient mismatches.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import NamedTuple

import numpy as np

from lstm_gradcheck.reference.activations import sigmoid_and_grad
from lstm_gradcheck.reference.case import Case, step_mask
from lstm_gradcheck.reference.config import LSTMConfig
from lstm_gradcheck.reference.head import final_state_loss, head_backward, logits
from lstm_gradcheck.reference.layout import GATES, bias_hh, bias_ih
from lstm_gradcheck.reference.losses import ScoredSteps, head_loss, scored_steps
from lstm_gradcheck.reference.variants.convention import ANY, Convention
from lstm_gradcheck.reference.variants.forms import TORCH, Form, FormGrads

__all__ = ["Derivation", "Switches", "tanh_and_grad"]


def tanh_and_grad(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """tanh(z) and tanh'(z) = 4 e r² (e = exp(-2|z|), r = 1/(1 + e)), relatively accurate where
    1 - tanh² cancels (Note [Accurate saturated gates] in reference.activations)."""
    e = np.exp(-2.0 * np.abs(z))
    r = 1.0 / (1.0 + e)
    return np.tanh(z), 4.0 * e * r * r


@dataclass(frozen=True)
class _LayerTrace:
    """One layer's forward values. u (T, B, I_k); z, gates: gate -> (T, B, H) (z without
    forget_bias); h, c (T+1, B, H) with h[0] = h0, h[t+1] = h_t; p the layer's form parameters."""

    p: object
    u: np.ndarray
    z: dict[str, np.ndarray]
    gates: dict[str, np.ndarray]
    h: np.ndarray
    c: np.ndarray


class _Step(NamedTuple):
    """What the backward of one step uses (each (B, H)); ``f`` and the derivatives ``ds`` are
    the backward's own, which is where several mistakes live."""

    i: np.ndarray
    f: np.ndarray
    g: np.ndarray
    o: np.ndarray
    ds: dict[str, np.ndarray]
    c_f: np.ndarray
    cell: np.ndarray
    dcell: np.ndarray | float


class Switches:
    """What a derivation of switches shows and is called as: its repr names only the switches that
    differ from the correct rule, e.g. ``Derivation(recurrent_dh=False)``; calling it is the
    contract's ``grads(case)``; ``per_step(case)`` gives each step's contribution (T, *shape) to
    each layer parameter's gradient. A subclass is a frozen dataclass with ``form``,
    ``convention`` and ``_run(case, record)``."""

    def __repr__(self) -> str:
        changed = [
            f"{f.name}={getattr(self, f.name)!r}"
            for f in fields(self)
            if f.name not in ("form", "convention") and getattr(self, f.name) != f.default
        ]
        if self.form is not TORCH:
            changed.insert(0, f"form={self.form.name}")
        return f"{type(self).__name__}({', '.join(changed)})"

    def __call__(self, case: Case) -> tuple[float, dict[str, np.ndarray]]:
        loss, grads, _ = self._run(case, record=False)
        return loss, grads

    def per_step(self, case: Case) -> dict[str, np.ndarray]:
        return self._run(case, record=True)[2]


@dataclass(frozen=True, repr=False)
class Derivation(Switches):
    """A BPTT derivation of the contract's model; every field but ``form`` and
    ``convention`` is a switch whose default is the correct rule.

    Call it as the contract's ``grads(case)``; ``per_step(case)`` gives each
    step's contribution to each LSTM parameter gradient.
    """

    form: Form = TORCH
    convention: Convention = ANY

    # -- δh: the recurrent term ------------------------------------------------------------
    recurrent_dh: bool = True  # δh^t includes W_h^T δz^{t+1} (seed 004 eq. (3) drops it)
    printed_jacobian: bool = False  # seed 002's printed ∂h^{t+1}/∂h^t replaces W_h^T δz^{t+1}
    cell_path_in_dh: bool = True  # δz^{t+1} in the recurrent term uses the carried δc^{t+1}
    bptt_window: int | None = None  # truncated BPTT: the state entering step t = w, 2w, ... is detached
    # -- δc: the cell carry ----------------------------------------------------------------
    cell_carry: bool = True  # δc^t includes f^{t+1} δc^{t+1}
    one_step_cell_carry: bool = False  # seed 001's text: carry only δc^{t+1}'s own h-path part
    carry_f_of_sender: bool = True  # the carry multiplies by f^{t+1} (False: f^t)
    # -- gate deltas and derivatives ----------------------------------------------------------
    dzf_uses_c_prev: bool = True  # δz_f = δc c^{t-1} σ' (False: c^t)
    dzo_from_dh: bool = True  # δz_o = δh cell σ' (False: δc cell σ')
    sigma_prime_as_sigma: bool = False  # σ'(z) written σ(z)
    sigma_prime_of_preactivation: bool = False  # σ'(z) written z (1 - z)
    candidate_tanh_prime_as_one_minus_tanh: bool = False  # tanh'(z_g) written 1 - g
    candidate_with_sigma_prime: bool = False  # tanh'(z_g) written g (1 - g), as if g were a sigmoid gate
    cell_tanh_prime_as_one_minus_tanh: bool = False  # tanh'(c) written 1 - tanh(c)
    tan_for_tanh: bool = False  # tanh'(c) written 1 - tan²(c) (seed 000's rendered formula, literally)
    tanh_backward_on_identity: bool = False  # an h = o tanh(c) backward on an h = o c forward
    forget_bias_in_backward: bool = True  # the backward recomputes f = σ(z_f + forget_bias)
    swap_if_deltas: bool = False  # δz blocks stacked f, i, g, o against weights in i, f, g, o
    local_param_deltas: bool = False  # seed 001's text: dW from δc^t = δh^t o^t only (no s(t) -> s(t+1) path)
    # -- messages to the layer below and to the initial states -----------------------------------
    dx_gates: tuple[str, ...] = GATES  # gates whose paths the input gradient sums
    sigma_prime_to_layer_below: bool = False  # seed 004 §19.5.2: du ∘ σ'(·) of the lower layer's h
    h0_from_recurrence: bool = True  # ∂L/∂h0 = W_h^T δz^0 (False: δh^0, the first output's gradient)
    h0_forget_path: bool = True  # ∂L/∂h0 includes W_hf^T δz_f^0 (False: as if c0 were zero)
    c0_through_forget_gate: bool = True  # ∂L/∂c0 = f^0 δc^0 (False: δc^0)
    final_dh: bool = True  # δh starts at dh_n when the case has the final-state term
    final_dc: bool = True  # δc starts at dc_n when the case has the final-state term
    padding_passes_gradient: bool = True  # a padding step passes δh, δc through (False: zeroes them)
    # -- parameter sums ------------------------------------------------------------------------
    dw_hh_uses_h_t: bool = False  # dW_h += δz^T h_t (False: h_{t-1}, right)
    bias_from_one_sample: bool = False  # db += δz[batch 0] instead of Σ_b δz
    bias_batch_mean: bool = False  # db += mean_b δz although the loss carries its own reduction
    bias_time_sum: bool = True  # db = Σ_t (False: the last step's only)
    bias_split_half: bool = False  # b_ih and b_hh each get db / 2
    # -- the head's δ -----------------------------------------------------------------------------
    mse_delta_without_2: bool = False  # δy = ŷ - y under the MSE head (right: 2 (ŷ - y))
    mean_over_batch_only: bool = False  # a "mean" loss divided by B, not by its number of terms
    score_padding: bool = False  # the head's δ ignores lengths (padding steps scored)
    mean_counts_padding: bool = False  # a "mean" loss divided by T·B(·O), counting padding steps

    # -------------------------------------------------------------------------------- forward

    def _forward_layer(self, p: object, u: np.ndarray, h0: np.ndarray, c0: np.ndarray, case: Case) -> _LayerTrace:
        cfg = case.config
        t_len = u.shape[0]
        mask = step_mask(case.lengths, t_len)
        h = np.empty((t_len + 1, *h0.shape), dtype=h0.dtype)
        c = np.empty_like(h)
        h[0], c[0] = h0, c0
        z_all = {g: np.empty((t_len, *h0.shape), dtype=h0.dtype) for g in GATES}
        gates = {g: np.empty_like(z_all[g]) for g in GATES}
        for t in range(t_len):
            z = self.form.preact(p, u[t], h[t])
            i = sigmoid_and_grad(z["i"])[0]
            f = sigmoid_and_grad(z["f"] + cfg.forget_bias)[0]
            g = np.tanh(z["g"])
            o = sigmoid_and_grad(z["o"])[0]
            c_t = f * c[t] + i * g
            h_t = o * (c_t if cfg.cell_output == "identity" else np.tanh(c_t))
            if mask is not None:
                # A padding step copies the state forward (torch's packed sequences).
                c_t = np.where(mask[t], c_t, c[t])
                h_t = np.where(mask[t], h_t, h[t])
            h[t + 1], c[t + 1] = h_t, c_t
            for name, value in zip(GATES, (i, f, g, o), strict=True):
                z_all[name][t] = z[name]
                gates[name][t] = value
        return _LayerTrace(p, u, z_all, gates, h, c)

    # ------------------------------------------------------------------------------ the head

    def _head_delta(self, case: Case, y: np.ndarray, scored: ScoredSteps, dy: np.ndarray) -> np.ndarray:
        """δy, the gradient reaching the logits y (T, B, O), by this derivation's rule."""
        cfg = case.config
        if self.score_padding:
            dy = head_loss(y, cfg, scored_steps(cfg, case.targets, None))[1]
        if self.mean_counts_padding:
            unmasked = scored_steps(cfg, case.targets, None).count
            dy = head_loss(y, cfg, ScoredSteps(scored.weight, scored.targets, unmasked))[1]
        if self.mse_delta_without_2 and cfg.loss == "mse":
            dy = dy / 2
        if self.mean_over_batch_only and cfg.reduction == "mean":
            dy = dy * (scored.count / cfg.batch_size)
        return dy

    # ------------------------------------------------------------------------------ backward

    def _step_values(self, tr: _LayerTrace, t: int, cfg: LSTMConfig) -> _Step:
        z = {g: tr.z[g][t] for g in GATES}
        z_f = z["f"] + (cfg.forget_bias if self.forget_bias_in_backward else 0.0)
        i, di = sigmoid_and_grad(z["i"])
        f, df = sigmoid_and_grad(z_f)
        o, do = sigmoid_and_grad(z["o"])
        g, dg = tanh_and_grad(z["g"])
        ds = {"i": di, "f": df, "g": dg, "o": do}
        if self.sigma_prime_as_sigma:
            ds.update(i=i, f=f, o=o)
        if self.sigma_prime_of_preactivation:
            ds.update(i=z["i"] * (1 - z["i"]), f=z_f * (1 - z_f), o=z["o"] * (1 - z["o"]))
        if self.candidate_tanh_prime_as_one_minus_tanh:
            ds["g"] = 1 - g
        if self.candidate_with_sigma_prime:
            ds["g"] = g * (1 - g)
        c_t = tr.c[t + 1]
        if cfg.cell_output == "identity" and not self.tanh_backward_on_identity:
            cell, dcell = c_t, 1.0
        else:
            cell, dcell = tanh_and_grad(c_t)
            if self.cell_tanh_prime_as_one_minus_tanh:
                dcell = 1 - cell
            if self.tan_for_tanh:
                dcell = 1 - np.tan(c_t) ** 2
        c_f = c_t if not self.dzf_uses_c_prev else tr.c[t]
        return _Step(i, f, g, o, ds, c_f, cell, dcell)

    def _deltas(self, dh: np.ndarray, dc: np.ndarray, v: _Step) -> dict[str, np.ndarray]:
        """δz of the four gates from δh^t and δc^t."""
        return {
            "i": dc * v.g * v.ds["i"],
            "f": dc * v.c_f * v.ds["f"],
            "g": dc * v.i * v.ds["g"],
            "o": (dh if self.dzo_from_dh else dc) * v.cell * v.ds["o"],
        }

    def _bias_rows(self, dz: dict[str, np.ndarray], t: int, t_len: int) -> dict[str, np.ndarray]:
        """The δz rows whose batch sum is this step's bias contribution."""
        if not self.bias_time_sum and t != t_len - 1:
            return {g: np.zeros_like(d) for g, d in dz.items()}
        if self.bias_from_one_sample:
            return {g: d[:1] for g, d in dz.items()}
        if self.bias_batch_mean:
            return {g: d / d.shape[0] for g, d in dz.items()}
        return dz

    def _recurrent(self, tr: _LayerTrace, dz: dict, dz_local: dict, dh: np.ndarray, v: _Step, t: int) -> np.ndarray:
        """The gradient sent to h_{t-1}: W_h^T δz^t, or a derivation's version of it."""
        if self.printed_jacobian:
            # Seed 002: (∂h^{t+1}/∂h^t)^T δh^{t+1} with diag[o(1-o) tanh C] W_o + diag[ΔC f] + diag[ΔC a i].
            delta_c = v.o * v.dcell
            return self.form.backprop(tr.p, {"o": dz["o"]})[1] + dh * delta_c * (v.f + v.g * v.i)
        rec = dz if self.cell_path_in_dh else dz_local
        if t == 0 and not self.h0_forget_path:
            rec = {g: d for g, d in rec.items() if g != "f"}
        return self.form.backprop(tr.p, rec)[1]

    def _backward_layer(
        self,
        tr: _LayerTrace,
        dh_out: np.ndarray,
        dh_last: np.ndarray | None,
        dc_last: np.ndarray | None,
        case: Case,
        layer: int,
        record: bool,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, FormGrads, list[FormGrads]]:
        """δ through one layer, t = T-1 .. 0 (module docstring). Returns du, dh0, dc0, the summed
        parameter gradients (form shapes) and, if ``record``, each step's contribution."""
        cfg = case.config
        t_len = tr.u.shape[0]
        mask = step_mask(case.lengths, t_len)
        # Each sequence's last valid step: there δh, δc arriving from "later" are the final state's
        # dh_n, dc_n alone (passed through the padding), never a recurrent term or a carry.
        last = np.full(tr.h.shape[1], t_len - 1) if case.lengths is None else np.asarray(case.lengths) - 1
        zero = np.zeros_like(tr.h[0])
        dh_next = zero if dh_last is None else dh_last
        dc_next = zero if dc_last is None else dc_last
        du = np.zeros_like(tr.u)
        total: FormGrads = {}
        steps: list[FormGrads] = []
        for t in range(t_len - 1, -1, -1):
            v = self._step_values(tr, t, cfg)
            final = (t >= last)[:, None]
            dh = dh_out[t] + (dh_next if self.recurrent_dh else dh_next * final)  # δh^t = l'(t) + W_h^T δz^{t+1}
            dc_local = dh * v.o * v.dcell  # δh^t o^t cell'(c^t)
            dc = dc_local + (dc_next if self.cell_carry else dc_next * final)  # + f^{t+1} δc^{t+1}
            dz = self._deltas(dh, dc, v)
            dz_local = self._deltas(dh, dc_local, v)
            if self.swap_if_deltas:
                dz = {**dz, "i": dz["f"], "f": dz["i"]}
            if mask is not None:
                dz = {g: d * mask[t] for g, d in dz.items()}
                dz_local = {g: d * mask[t] for g, d in dz_local.items()}
            dz_w = dz_local if self.local_param_deltas else dz
            h_w = tr.h[t + 1] if self.dw_hh_uses_h_t else tr.h[t]
            step = self.form.param_grads(dz_w, self._bias_rows(dz_w, t, t_len), tr.u[t], h_w)
            for name, value in step.items():
                total[name] = total[name] + value if name in total else value
            if record:
                steps.append(step)
            du[t] = self.form.backprop(tr.p, {g: dz[g] for g in self.dx_gates})[0]
            dh_prev = self._recurrent(tr, dz, dz_local, dh, v, t)
            f_carry = v.f
            if not self.carry_f_of_sender and t > 0:
                f_carry = self._step_values(tr, t - 1, cfg).f
            if t == 0 and not self.c0_through_forget_gate:
                f_carry = 1.0
            dc_prev = (dc_local if self.one_step_cell_carry else dc) * f_carry
            if t == 0 and not self.h0_from_recurrence:
                dh_prev = dh
            if self.bptt_window and t > 0 and t % self.bptt_window == 0:
                dh_prev, dc_prev = zero, zero  # the state entering step t was detached
            if mask is not None:
                # A padding step is a copy: what reaches it passes through unchanged.
                keep_h = dh_out[t] + dh_next if self.padding_passes_gradient else zero
                keep_c = dc_next if self.padding_passes_gradient else zero
                dh_prev = np.where(mask[t], dh_prev, keep_h)
                dc_prev = np.where(mask[t], dc_prev, keep_c)
            dh_next, dc_next = dh_prev, dc_prev
        if self.sigma_prime_to_layer_below and layer > 0:
            du = du * tr.u * (1 - tr.u)  # seed 004 §19.5.2: ∘ σ'(O^{l-1}) with σ' = x (1 - x)
        return du, dh_next, dc_next, total, steps[::-1]

    def _to_contract(self, grads: FormGrads, layer: int, input_size: int) -> dict[str, np.ndarray]:
        out = self.form.to_contract(grads, layer, input_size)
        if self.bias_split_half:
            out[bias_ih(layer)] = out[bias_ih(layer)] / 2
            out[bias_hh(layer)] = out[bias_hh(layer)] / 2
        return out

    # ---------------------------------------------------------------------------------- model

    def _run(self, case: Case, record: bool) -> tuple[float, dict[str, np.ndarray], dict[str, np.ndarray]]:
        cfg = case.config
        self.convention.require(cfg)
        if not cfg.is_plain:
            raise NotImplementedError(
                "a derivation of the plain LSTM: no peepholes, projection, reverse direction or coupled gates"
            )
        params = case.params
        traces: list[_LayerTrace] = []
        u = np.asarray(case.x)
        for k in range(cfg.num_layers):
            tr = self._forward_layer(self.form.params(params, k), u, case.h0[k], case.c0[k], case)
            traces.append(tr)
            u = tr.h[1:]  # only h passes up; c stays in its layer
        top = traces[-1].h[1:]
        y = logits(case, top)
        scored = scored_steps(cfg, case.targets, case.lengths)
        loss, dy = head_loss(y, cfg, scored)
        h_n = np.stack([tr.h[-1] for tr in traces])
        c_n = np.stack([tr.c[-1] for tr in traces])
        total = float(loss) + final_state_loss(case, h_n, c_n)
        dy = self._head_delta(case, y, scored, dy)
        dh_out, grads = head_backward(case, top, dy)
        per_step: dict[str, np.ndarray] = {}
        dh0 = np.empty_like(case.h0)
        dc0 = np.empty_like(case.c0)
        for k in range(cfg.num_layers - 1, -1, -1):
            tr = traces[k]
            dh_last = case.dh_n[k] if cfg.final_state and self.final_dh else None
            dc_last = case.dc_n[k] if cfg.final_state and self.final_dc else None
            du, dh0[k], dc0[k], summed, steps = self._backward_layer(tr, dh_out, dh_last, dc_last, case, k, record)
            input_size = tr.u.shape[-1]
            grads.update(self._to_contract(summed, k, input_size))
            if record:
                contributions = [self._to_contract(s, k, input_size) for s in steps]
                per_step.update({n: np.stack([c[n] for c in contributions]) for n in contributions[0]})
            dh_out = du
        grads.update(x=dh_out, h0=dh0, c0=dc0)
        dtype = cfg.np_dtype
        return total, {n: np.asarray(g, dtype=dtype) for n, g in grads.items()}, per_step
