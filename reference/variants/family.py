"""BPTT of the LSTM family as the published derivations write it, with a switch per known mistake.

``FamilyDerivation()`` is the correct derivation of the contract's model with every setting of
the family (peepholes, projection, a reverse direction, coupled gates) and every setting of the
plain contract; it equals the reference to the tolerance rule (tests/test_variants_family.py).
It follows Greff et al.'s notation ("LSTM: A Search Space Odyssey", appendix) per direction,
in that direction's processing order (the reverse one runs each sequence from its last step)::

    forward:  z̄ = W u + R h^{t-1} + b     ī += p_i ⊙ c^{t-1}    f̄ += p_f ⊙ c^{t-1} (+ forget_bias)
              f = σ(f̄)   i = σ(ī), or 1 − f (CIFG)   c^t = f ⊙ c^{t-1} + i ⊙ g(z̄)
              ō += p_o ⊙ c^t   o = σ(ō)   m^t = o ⊙ h(c^t)   y^t = W_hr m^t (projection) or m^t
    backward: δy^t = Δ^t + R^T δz̄^{t+1}        δm^t = W_hr^T δy^t (or δy^t)
              δō^t = δm^t ⊙ h(c^t) ⊙ σ'(ō^t)
              δc^t = δm^t ⊙ o^t ⊙ h'(c^t) + p_o ⊙ δō^t + p_i ⊙ δī^{t+1} + p_f ⊙ δf̄^{t+1} + δc^{t+1} ⊙ f^{t+1}
              δf̄^t = δc^t ⊙ c^{t-1} ⊙ σ'(f̄^t)    δī^t = δc^t ⊙ g^t ⊙ σ'(ī^t)    δz̄^t = δc^t ⊙ i^t ⊙ g'(z̄^t)
              (CIFG: δī = 0 and δf̄^t = δc^t ⊙ (c^{t-1} − g^t) ⊙ σ'(f̄^t))
              δp_i = Σ_t c^{t-1} ⊙ δī^t   δp_f = Σ_t c^{t-1} ⊙ δf̄^t   δp_o = Σ_t c^t ⊙ δō^t   δW_hr = Σ_t δy^t m^tᵀ

A layer's output is [forward, reverse] concatenated; Δ^t is the head's or the layer above's
gradient of it, split the same way. The matrices W, R and the biases are stored in a
:class:`~lstm_gradcheck.reference.variants.forms.Form` (the 4H layout, or Greff's per-gate
W_z, R_z ... of the SEPARATE form). Only the backward deviates in a wrong variant; the
returned loss is always the contract's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lstm_gradcheck.reference.activations import sigmoid_and_grad, tanh_and_grad
from lstm_gradcheck.reference.case import Case, step_mask
from lstm_gradcheck.reference.config import LSTMConfig
from lstm_gradcheck.reference.directions import in_order, reverse_order
from lstm_gradcheck.reference.head import final_state_loss, head_backward, logits
from lstm_gradcheck.reference.layout import (
    GATES,
    bias_hh,
    bias_ih,
    layer_param_names,
    weight_cf,
    weight_ci,
    weight_co,
    weight_hh,
    weight_hr,
    weight_ih,
)
from lstm_gradcheck.reference.losses import head_loss, scored_steps
from lstm_gradcheck.reference.variants.convention import ANY, Convention
from lstm_gradcheck.reference.variants.derivation import Switches
from lstm_gradcheck.reference.variants.forms import TORCH, Form

__all__ = ["FamilyDerivation"]


@dataclass(frozen=True)
class _Direction:
    """One direction's forward values in its processing order: inputs u (T, B, I); gate values and
    pre-activations (peepholes and forget_bias included) per gate (T, B, H); h (T+1, B, P), c (T+1, B, H);
    m (T, B, H); the order map (None forward); the form's parameters p and the extra vectors w."""

    p: object
    w: dict
    u: np.ndarray
    z: dict
    gates: dict
    h: np.ndarray
    c: np.ndarray
    m: np.ndarray
    order: np.ndarray | None


@dataclass(frozen=True, repr=False)
class FamilyDerivation(Switches):
    """A BPTT derivation of the LSTM family; every field but ``form`` and ``convention`` is a switch
    whose default is the correct rule. Call it as ``grads(case)``; ``per_step(case)`` gives each
    time step's contribution to each layer parameter's gradient."""

    form: Form = TORCH
    convention: Convention = ANY
    # -- peepholes ---------------------------------------------------------------------------------
    input_peephole_uses_c_prev: bool = True  # δp_i = Σ c^{t-1} δī (False: c^t)
    output_peephole_uses_c_t: bool = True  # δp_o = Σ c^t δō (False: c^{t-1})
    peephole_carry: bool = True  # δc^t has p_i δī^{t+1} + p_f δf̄^{t+1}
    output_peephole_in_dc: bool = True  # δc^t has p_o δō^t
    # -- projection --------------------------------------------------------------------------------
    projection_grad_with_o: bool = True  # δW_hr = Σ δy (o h(c))ᵀ (False: Σ δy h(c)ᵀ)
    projection_grad_same_step: bool = True  # δW_hr = Σ δy^t m^tᵀ (False: m^{t-1})
    # -- bidirectional -----------------------------------------------------------------------------
    reverse_recurrence_in_its_order: bool = True  # the reverse δR uses its own previous state (False: time t−1's)
    reverse_final_state_at_step_0: bool = True  # the reverse dh_n, dc_n enter after step 0 (False: at T−1)
    state_index_layer_major: bool = True  # h0, h_n index k·D + d (False: d·L + k)
    halves_in_order: bool = True  # Δ splits as [forward, reverse] (False: swapped)
    reverse_gradient_reordered: bool = True  # the reverse direction's Δ and du are put in its order
    # -- coupled gates -----------------------------------------------------------------------------
    cifg_forget_has_input_path: bool = True  # δf̄ = δc (c^{t-1} − g) σ' (False: δc c^{t-1} σ')
    cifg_input_rows_unused: bool = True  # the i rows get no gradient (False: δī = δc g σ'(ī))

    # ------------------------------------------------------------------------------- forward

    def _forward(self, case: Case, layer: int, d: int, u_time: np.ndarray) -> _Direction:
        cfg = case.config
        order = None if d == 0 else reverse_order(case.lengths, cfg.seq_len, cfg.batch_size)
        p = self.form.params(_as_forward_names(case.params, layer, d), layer)
        w = _extras(case, layer, d)
        u = in_order(u_time, order)
        mask = step_mask(case.lengths, cfg.seq_len)
        t_len, batch = u.shape[:2]
        state = self._state(cfg, layer, d, forward=True)
        h = np.empty((t_len + 1, batch, cfg.h_size))
        c = np.empty((t_len + 1, batch, cfg.hidden_size))
        h[0], c[0] = case.h0[state], case.c0[state]
        z = {g: np.empty((t_len, batch, cfg.hidden_size)) for g in GATES}
        gates = {g: np.empty_like(z[g]) for g in GATES}
        m = np.empty_like(z["i"])
        for t in range(t_len):
            pre = self.form.preact(p, u[t], h[t])
            z_i, z_f = pre["i"], pre["f"] + cfg.forget_bias
            if cfg.peepholes:
                z_i, z_f = z_i + w["ci"] * c[t], z_f + w["cf"] * c[t]
            f = sigmoid_and_grad(z_f)[0]
            i = sigmoid_and_grad(-z_f)[0] if cfg.coupled else sigmoid_and_grad(z_i)[0]
            g = np.tanh(pre["g"])
            c_t = f * c[t] + i * g
            z_o = pre["o"] + (w["co"] * c_t if cfg.peepholes else 0.0)
            o = sigmoid_and_grad(z_o)[0]
            m[t] = o * (c_t if cfg.cell_output == "identity" else np.tanh(c_t))
            h_t = m[t] @ w["hr"].T if cfg.proj_size else m[t]
            if mask is not None:  # padding copies the state (packed sequences)
                h_t, c_t = np.where(mask[t], h_t, h[t]), np.where(mask[t], c_t, c[t])
            h[t + 1], c[t + 1] = h_t, c_t
            for name, value, zz in zip(GATES, (i, f, g, o), (z_i, z_f, pre["g"], z_o), strict=True):
                gates[name][t], z[name][t] = value, zz
        return _Direction(p, w, u, z, gates, h, c, m, order)

    def _state(self, cfg: LSTMConfig, layer: int, d: int, *, forward: bool = False) -> int:
        """The index of a direction's states; the forward pass always uses torch's k·D + d."""
        if forward or self.state_index_layer_major:
            return layer * cfg.num_directions + d
        return d * cfg.num_layers + layer

    # ------------------------------------------------------------------------------ backward

    def _backward(self, case: Case, tr: _Direction, dy: np.ndarray, layer: int, d: int, record: bool):
        """One direction's δ in its processing order (module docstring). ``dy`` (T, B, P) is Δ in that
        order. Returns du (processing order), dh0, dc0, the summed gradients and, if ``record``, each
        time step's contribution (contract names)."""
        cfg = case.config
        t_len, batch = tr.u.shape[:2]
        mask = step_mask(case.lengths, t_len)
        state = self._state(cfg, layer, d)
        final = cfg.final_state and (d == 0 or self.reverse_final_state_at_step_0)
        dh_next = case.dh_n[state].copy() if final else np.zeros_like(tr.h[0])
        dc_next = case.dc_n[state].copy() if final else np.zeros_like(tr.c[0])
        du = np.zeros_like(tr.u)
        names = _contract_names(layer, d)
        total: dict[str, np.ndarray] = {}
        steps = {n: np.zeros((t_len, *shape)) for n, shape in _shapes(case, layer, d).items()} if record else {}
        time_of = np.arange(t_len)[:, None] * np.ones(batch, dtype=int) if tr.order is None else tr.order
        for t in range(t_len - 1, -1, -1):
            if cfg.final_state and d == 1 and not self.reverse_final_state_at_step_0 and t == 0:
                dh_next, dc_next = dh_next + case.dh_n[state], dc_next + case.dc_n[state]
            values = {g: tr.gates[g][t] for g in GATES}
            c_prev, c_t = tr.c[t], tr.c[t + 1]
            cell, dcell = (c_t, 1.0) if cfg.cell_output == "identity" else tanh_and_grad(c_t)
            dr = dy[t] + dh_next
            dm = dr @ tr.w["hr"] if cfg.proj_size else dr
            dz = {"o": dm * cell * sigmoid_and_grad(tr.z["o"][t])[1]}
            dc = dm * values["o"] * dcell + dc_next
            if cfg.peepholes and self.output_peephole_in_dc:
                dc = dc + tr.w["co"] * dz["o"]
            ds_f = sigmoid_and_grad(tr.z["f"][t])[1]
            if cfg.coupled:
                dz["f"] = dc * ((c_prev - values["g"]) if self.cifg_forget_has_input_path else c_prev) * ds_f
                if self.cifg_input_rows_unused:
                    dz["i"] = np.zeros_like(dc)
                else:
                    dz["i"] = dc * values["g"] * sigmoid_and_grad(tr.z["i"][t])[1]
            else:
                dz["f"] = dc * c_prev * ds_f
                dz["i"] = dc * values["g"] * sigmoid_and_grad(tr.z["i"][t])[1]
            dz["g"] = dc * values["i"] * tanh_and_grad(tr.z["g"][t])[1]
            valid = np.ones((batch, 1), dtype=bool) if mask is None else mask[t]
            dz = {g: v * valid for g, v in dz.items()}
            h_used = tr.h[t]
            if d == 1 and not self.reverse_recurrence_in_its_order:
                # The state at time t − 1 (as for the forward direction), not the one it came from.
                h_used = _time_previous(tr, t)
            step = self._step_grads(cfg, tr, dz, dr * valid, t, h_used, names)
            for n, v in step.items():
                total[n] = total[n] + v if n in total else v
            if record:
                self._record(cfg, tr, dz, dr * valid, t, h_used, names, steps, time_of[t])
            du[t], dh_prev = self.form.backprop(tr.p, dz)
            dc_prev = dc * values["f"]
            if cfg.peepholes and self.peephole_carry:
                dc_prev = dc_prev + tr.w["ci"] * dz["i"] + tr.w["cf"] * dz["f"]
            # A padding step is a copy: its incoming gradients pass through unchanged.
            dh_next = np.where(valid, dh_prev, dr)
            dc_next = np.where(valid, dc_prev, dc_next)
        return du, dh_next, dc_next, total, steps

    def _step_grads(self, cfg, tr, dz, dr, t, h_used, names) -> dict[str, np.ndarray]:
        """This step's gradients of the direction's parameters, by contract name, summed over the batch."""
        grads = self.form.param_grads(dz, dz, tr.u[t], h_used)
        out = dict(zip(names[:4], _four(self.form.to_contract(grads, 0, tr.u.shape[-1])), strict=True))
        if cfg.peepholes:
            c_i = tr.c[t + 1] if not self.input_peephole_uses_c_prev else tr.c[t]
            c_o = tr.c[t + 1] if self.output_peephole_uses_c_t else tr.c[t]
            out[names[4]] = np.sum(dz["i"] * c_i, axis=0)
            out[names[5]] = np.sum(dz["f"] * tr.c[t], axis=0)
            out[names[6]] = np.sum(dz["o"] * c_o, axis=0)
        if cfg.proj_size:
            m = tr.m[t] if self.projection_grad_same_step else (tr.m[t - 1] if t > 0 else np.zeros_like(tr.m[t]))
            if not self.projection_grad_with_o:  # h(c^t) alone, the output gate forgotten
                m = tr.c[t + 1] if cfg.cell_output == "identity" else np.tanh(tr.c[t + 1])
            out[names[-1]] = dr.T @ m
        return out

    def _record(self, cfg, tr, dz, dr, t, h_used, names, steps, times) -> None:
        """Add this processing step's contribution of each sequence to its own time step."""
        for b, time in enumerate(times):
            row = {g: v[b : b + 1] for g, v in dz.items()}
            one = _Direction(tr.p, tr.w, tr.u[:, b : b + 1], tr.z, {g: v[:, b : b + 1] for g, v in tr.gates.items()},
                             tr.h[:, b : b + 1], tr.c[:, b : b + 1], tr.m[:, b : b + 1], None)  # fmt: skip
            for n, v in self._step_grads(cfg, one, row, dr[b : b + 1], t, h_used[b : b + 1], names).items():
                steps[n][time] += v

    # ----------------------------------------------------------------------------------- model

    def _run(self, case: Case, record: bool) -> tuple[float, dict[str, np.ndarray], dict[str, np.ndarray]]:
        cfg = case.config
        self.convention.require(cfg)
        directions, width = cfg.num_directions, cfg.h_size
        traces: list[list[_Direction]] = []
        u = np.asarray(case.x, dtype=np.float64)
        for k in range(cfg.num_layers):
            traces.append([self._forward(case, k, d, u) for d in range(directions)])
            u = np.concatenate([in_order(tr.h[1:], tr.order) for tr in traces[-1]], axis=-1)
        y = logits(case, u)
        scored = scored_steps(cfg, case.targets, case.lengths)
        loss, dy = head_loss(y, cfg, scored)
        h_n = np.stack([tr.h[-1] for layer in traces for tr in layer])
        c_n = np.stack([tr.c[-1] for layer in traces for tr in layer])
        total = float(loss) + final_state_loss(case, h_n, c_n)
        delta, grads = head_backward(case, u, dy)
        per_step: dict[str, np.ndarray] = {}
        dh0, dc0 = np.zeros_like(case.h0), np.zeros_like(case.c0)
        for k in range(cfg.num_layers - 1, -1, -1):
            du_time = np.zeros_like(traces[k][0].u)
            for d, tr in enumerate(traces[k]):
                half = d if self.halves_in_order else directions - 1 - d
                own = delta[..., half * width : (half + 1) * width]
                reorder = tr.order if self.reverse_gradient_reordered else None
                du, h_grad, c_grad, summed, steps = self._backward(case, tr, in_order(own, reorder), k, d, record)
                state = self._state(cfg, k, d)
                dh0[state], dc0[state] = h_grad, c_grad
                du_time += in_order(du, reorder)
                grads.update(summed)
                per_step.update(steps)
            delta = du_time
        grads.update(x=delta, h0=dh0, c0=dc0)
        dtype = cfg.np_dtype
        return total, {n: np.asarray(g, dtype=dtype) for n, g in grads.items()}, per_step


def _four(contract: dict[str, np.ndarray]) -> tuple[np.ndarray, ...]:
    """The form's gradients in the order weight_ih, weight_hh, bias_ih, bias_hh (of layer 0's names)."""
    return tuple(contract[n] for n in layer_param_names(0))


def _as_forward_names(params, layer: int, d: int) -> dict[str, np.ndarray]:
    """The direction's 4H parameters under the forward direction's names (what a form reads)."""
    return {fwd: params[own] for fwd, own in zip(layer_param_names(layer), layer_param_names(layer, d), strict=True)}


def _extras(case: Case, layer: int, d: int) -> dict[str, np.ndarray]:
    cfg, p = case.config, case.params
    out = {}
    if cfg.peepholes:
        out.update(ci=p[weight_ci(layer, d)], cf=p[weight_cf(layer, d)], co=p[weight_co(layer, d)])
    if cfg.proj_size:
        out["hr"] = p[weight_hr(layer, d)]
    return out


def _contract_names(layer: int, d: int) -> tuple[str, ...]:
    """weight_ih, weight_hh, bias_ih, bias_hh, weight_ci, weight_cf, weight_co, weight_hr of a direction."""
    kinds = (weight_ih, weight_hh, bias_ih, bias_hh, weight_ci, weight_cf, weight_co, weight_hr)
    return tuple(name(layer, d) for name in kinds)


def _shapes(case: Case, layer: int, d: int) -> dict[str, tuple[int, ...]]:
    names = set(_contract_names(layer, d))
    return {n: a.shape for n, a in case.params.items() if n in names}


def _time_previous(tr: _Direction, t: int) -> np.ndarray:
    """Each sequence's state at time (its time of step t) − 1, or its initial state at time 0."""
    time = tr.order[t]
    out = np.empty_like(tr.h[0])
    for b, when in enumerate(time):
        step = int(np.flatnonzero(tr.order[:, b] == when - 1)[0]) if when > 0 else -1
        out[b] = tr.h[step + 1, b] if step >= 0 else tr.h[0, b]
    return out
