"""The reference: a stacked LSTM with a linear head, forward and backward by hand.

Forward, layer k, step t (input u_t = x_t for k = 0, the layer below's h_t otherwise)::

    z_t = W_ih u_t + W_hh h_{t-1} + b_ih + b_hh            (B, 4H), blocks i, f, g, o
    i_t = sigmoid(z_i)  f_t = sigmoid(z_f + forget_bias)  g_t = tanh(z_g)  o_t = sigmoid(z_o)
    c_t = f_t * c_{t-1} + i_t * g_t
    h_t = o_t * tanh(c_t)          (cell_output "tanh")   or   o_t * c_t   ("identity")
    y_t = W_head h_t^(top) + b_head                        (B, O); y_t = h_t^(top) for "upstream"

Backward through time (the seeds' delta-h / delta-c recursions), layer k, t = T-1 .. 0,
with dh_out_t the gradient reaching h_t from the head (top layer) or the layer above::

    dh_t  = dh_out_t + W_hh^T dz_{t+1}                     (recurrent term; dh_n at t = T-1)
    dc_t  = dc_{t+1} * f_{t+1} + dh_t * o_t * tanh'(c_t)   (cell carry; dc_n at t = T-1)
            (identity: dh_t * o_t in place of dh_t * o_t * tanh'(c_t))
    dz_i = dc_t g_t sigma'   dz_f = dc_t c_{t-1} sigma'   dz_g = dc_t i_t tanh'   dz_o = dh_t tanh(c_t) sigma'
    dW_ih = sum_t dz_t u_t^T   dW_hh = sum_t dz_t h_{t-1}^T   db_ih = db_hh = sum_t dz_t
    du_t  = W_ih^T dz_t        (only h passes between layers: du_t is the lower layer's dh_out_t)

The c-gradient starts at zero at the last step of each layer unless the case
has a final-state term (then it starts at dc_n). Padding steps (t >= lengths[b])
copy the state forward, so their gradient passes straight through and their
dz is zero. Shapes: T steps, B batch, I inputs, H hidden, O outputs.

The LSTM family (each setting an extension of the contract): ``peepholes`` add
w_ci * c_{t-1} to z_i, w_cf * c_{t-1} to z_f and w_co * c_t to z_o; ``proj_size`` P makes
h_t = W_hr (o_t * tanh(c_t)) of width P, and W_hh reads it; ``coupled`` sets i_t = 1 - f_t;
``bidirectional`` adds a reverse direction per layer, running each sequence from its last
valid step to step 0 (Note [Reverse direction]), and the layer's output is both directions'
h concatenated [forward, reverse] (width D * P), read by the layer above and the head. The
equations of one direction and their backward are in
:mod:`lstm_gradcheck.reference.family_layer` (the plain LSTM's fast path:
:mod:`lstm_gradcheck.reference.layer`). States are indexed k * D + d, as torch's h0 and h_n.

Note [Memory]
-------------
A page touched for the first time costs a fault, and a pass's memory often goes back to
the system when it ends. So the pass allocates little: the forward's pre-activations
become the gate derivatives in place, and callers whose cache nobody else sees
(:func:`grads`, the conditioning probes) let the backward write dz over those
derivatives (``overwrite_cache=True``); callers that keep the cache use the default.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lstm_gradcheck.reference.case import Case, step_mask
from lstm_gradcheck.reference.config import LSTMConfig
from lstm_gradcheck.reference.directions import in_order, reverse_order
from lstm_gradcheck.reference.family_layer import (
    DirectionParams,
    FamilyLayerCache,
    FamilyLayerGrads,
    family_layer_backward,
    family_layer_forward,
)
from lstm_gradcheck.reference.head import final_state_loss, head_backward, logits, loss_and_dy
from lstm_gradcheck.reference.layer import LayerCache, LayerGrads, StatePerturbation, layer_backward, layer_forward
from lstm_gradcheck.reference.layout import (
    bias_hh,
    bias_ih,
    gate_blocks,
    gate_slice,
    weight_cf,
    weight_ci,
    weight_co,
    weight_hh,
    weight_hr,
    weight_ih,
)

__all__ = [
    "LayerCache",
    "LayerGrads",
    "Cache",
    "ForwardResult",
    "BackwardResult",
    "layer_forward",
    "layer_backward",
    "direction_params",
    "forward_layers",
    "forward",
    "backward",
    "grads",
    "per_step_contributions",
]

#: One direction's cache: the plain layer's, or the family's.
AnyLayerCache = LayerCache | FamilyLayerCache


# ----------------------------------------------------------------------------- the model


@dataclass(frozen=True)
class ForwardResult:
    """Outputs of :func:`forward`: the scalar ``loss``, logits ``y`` (T, B, O; the top layer's output
    for ``upstream``) and every layer's and direction's final states ``h_n`` (L*D, B, P), ``c_n``
    (L*D, B, H) after each sequence's last valid step (torch's h_n, c_n)."""

    loss: float
    y: np.ndarray
    h_n: np.ndarray
    c_n: np.ndarray


@dataclass(frozen=True)
class Cache:
    """Everything :func:`backward` needs: the case, each layer's and direction's cache in state
    order k * D + d (their arrays in the direction's processing order), the top layer's outputs
    (T, B, D*P) and dloss/dy (T, B, O)."""

    case: Case
    layers: tuple[AnyLayerCache, ...]
    top: np.ndarray
    dy: np.ndarray


@dataclass(frozen=True)
class BackwardResult:
    """Gradients by contract name, plus each direction's layer gradients (index k * D + d)."""

    grads: dict[str, np.ndarray]
    layers: tuple[LayerGrads | FamilyLayerGrads, ...]


def effective_bias(b_ih: np.ndarray, b_hh: np.ndarray, forget_bias: float) -> np.ndarray:
    """b_ih + b_hh with TensorFlow's constant forget_bias added to the forget rows."""
    bias = b_ih + b_hh
    bias[gate_slice("f", bias.shape[0] // 4)] += forget_bias
    return bias


def direction_params(case: Case, layer: int, direction: int = 0) -> DirectionParams:
    """Layer ``layer``'s direction ``direction`` parameters from the case (None where the config
    has no peepholes or no projection)."""
    cfg, p = case.config, case.params
    peep = (
        (p[weight_ci(layer, direction)], p[weight_cf(layer, direction)], p[weight_co(layer, direction)])
        if cfg.peepholes
        else (None, None, None)
    )
    bias = effective_bias(p[bias_ih(layer, direction)], p[bias_hh(layer, direction)], cfg.forget_bias)
    w_hr = p[weight_hr(layer, direction)] if cfg.proj_size else None
    return DirectionParams(p[weight_ih(layer, direction)], p[weight_hh(layer, direction)], bias, *peep, w_hr)


def _order(case: Case, direction: int) -> np.ndarray | None:
    """The reverse direction's processing order (Note [Reverse direction]); None for the forward one."""
    cfg = case.config
    return None if direction == 0 else reverse_order(case.lengths, cfg.seq_len, cfg.batch_size)


def forward_layers(case: Case, perturb: StatePerturbation | None = None) -> tuple[AnyLayerCache, ...]:
    """Run every layer of ``case``'s stack, each direction in its own processing order; only the
    layer's output (both directions' h) passes up, c stays in its layer. Caches in state order."""
    cfg = case.config
    mask = step_mask(case.lengths, cfg.seq_len)
    layers: list[AnyLayerCache] = []
    inputs = case.x
    for k in range(cfg.num_layers):
        if cfg.is_plain:
            p = case.params
            bias = effective_bias(p[bias_ih(k)], p[bias_hh(k)], cfg.forget_bias)
            cache = layer_forward(
                inputs, p[weight_ih(k)], p[weight_hh(k)], bias, case.h0[k], case.c0[k],
                cell_output=cfg.cell_output, mask=mask, perturb=perturb,
            )  # fmt: skip
            layers.append(cache)
            inputs = cache.h[1:]
            continue
        outputs = []
        for d in range(cfg.num_directions):
            order, state = _order(case, d), k * cfg.num_directions + d
            cache = family_layer_forward(
                in_order(inputs, order), direction_params(case, k, d), case.h0[state], case.c0[state],
                cell_output=cfg.cell_output, coupled=cfg.coupled, mask=mask, perturb=perturb,
            )  # fmt: skip
            layers.append(cache)
            outputs.append(in_order(cache.h[1:], order))
        inputs = outputs[0] if len(outputs) == 1 else np.concatenate(outputs, axis=-1)
    return tuple(layers)


def forward(case: Case, perturb: StatePerturbation | None = None) -> tuple[ForwardResult, Cache]:
    """The model's forward pass and loss (module docstring); returns (outputs, cache).

    ``perturb`` (see :func:`layer_forward`) is for the tolerance rule's probes only."""
    layers = forward_layers(case, perturb)
    cfg = case.config
    if cfg.is_plain:
        top = layers[-1].h[1:]
    else:
        last = layers[-cfg.num_directions :]
        top = np.concatenate([in_order(c.h[1:], _order(case, j)) for j, c in enumerate(last)], axis=-1)
    y = logits(case, top)
    loss, dy = loss_and_dy(case, y)
    h_n = np.stack([layer.h[-1] for layer in layers])
    c_n = np.stack([layer.c[-1] for layer in layers])
    return ForwardResult(loss + final_state_loss(case, h_n, c_n), y, h_n, c_n), Cache(case, layers, top, dy)


def backward(cache: Cache, *, overwrite_cache: bool = False) -> BackwardResult:
    """Every gradient of the loss, by contract name (parameters, x, h0, c0).

    ``overwrite_cache=True`` reuses the cache's memory (Note [Memory]); the
    cache must not be used again."""
    case = cache.case
    cfg: LSTMConfig = case.config
    dh_out, out = head_backward(case, cache.top, cache.dy)
    dh0 = np.empty_like(case.h0)
    dc0 = np.empty_like(case.c0)
    directions, width = cfg.num_directions, cfg.h_size
    layer_grads: list = [None] * len(cache.layers)
    for k in range(cfg.num_layers - 1, -1, -1):
        du = None
        for d in range(directions):
            state = k * directions + d
            dh_n = case.dh_n[state] if cfg.final_state else None
            dc_n = case.dc_n[state] if cfg.final_state else None
            if cfg.is_plain:
                lg = layer_backward(cache.layers[k], dh_out, dh_n, dc_n, overwrite_cache=overwrite_cache)
            else:
                order = _order(case, d)
                own = in_order(dh_out[..., d * width : (d + 1) * width], order)
                lg = family_layer_backward(cache.layers[state], own, dh_n, dc_n)
                out.update(_family_names(lg, k, d))
            layer_grads[state] = lg
            out[weight_ih(k, d)] = lg.dw_ih
            out[weight_hh(k, d)] = lg.dw_hh
            out[bias_ih(k, d)] = lg.db
            out[bias_hh(k, d)] = lg.db.copy()
            dh0[state], dc0[state] = lg.dh0, lg.dc0
            du_d = lg.du if cfg.is_plain else in_order(lg.du, _order(case, d))
            du = du_d if du is None else du + du_d
        dh_out = du
    out["x"] = dh_out
    out["h0"] = dh0
    out["c0"] = dc0
    return BackwardResult(out, tuple(layer_grads))


def _family_names(lg: FamilyLayerGrads, layer: int, direction: int) -> dict[str, np.ndarray]:
    """The peephole and projection gradients of one direction, by contract name."""
    out = {}
    if lg.dw_ci is not None:
        out[weight_ci(layer, direction)] = lg.dw_ci
        out[weight_cf(layer, direction)] = lg.dw_cf
        out[weight_co(layer, direction)] = lg.dw_co
    if lg.dw_hr is not None:
        out[weight_hr(layer, direction)] = lg.dw_hr
    return out


def grads(case: Case, perturb: StatePerturbation | None = None) -> tuple[float, dict[str, np.ndarray]]:
    """The contract's ``grads(case)``: the loss and every gradient, by name.

    ``perturb`` (see :func:`layer_forward`) is for the tolerance rule's probes only."""
    result, cache = forward(case, perturb)
    return result.loss, backward(cache, overwrite_cache=True).grads


def per_step_contributions(cache: Cache, result: BackwardResult) -> dict[str, np.ndarray]:
    """Each step's contribution to each layer parameter's gradient, (T, *shape), by time step.

    ``dW_ih`` at step t is ``dz_t^T u_t``; the full gradient is the sum over t. A reverse
    direction's contributions are mapped back to time order (its step t is time t).
    Used by the report to find the step where a parameter's error enters.
    """
    cfg = cache.case.config
    out: dict[str, np.ndarray] = {}
    for state, (layer, lg) in enumerate(zip(cache.layers, result.layers, strict=True)):
        k, d = divmod(state, cfg.num_directions)
        order = None if cfg.is_plain else _order(cache.case, d)
        dz, u, h_prev = (in_order(a, order) for a in (lg.dz, layer.inputs, layer.h[:-1]))
        out[weight_ih(k, d)] = np.einsum("tbr,tbc->trc", dz, u)
        out[weight_hh(k, d)] = np.einsum("tbr,tbc->trc", dz, h_prev)
        out[bias_ih(k, d)] = dz.sum(axis=1)
        out[bias_hh(k, d)] = out[bias_ih(k, d)].copy()
        if isinstance(lg, FamilyLayerGrads):
            hidden = cfg.hidden_size
            if lg.dw_ci is not None:
                dz_i, dz_f, _, dz_o = gate_blocks(dz, hidden)
                c_prev, c_t = in_order(layer.c[:-1], order), in_order(layer.c[1:], order)
                out[weight_ci(k, d)] = np.einsum("tbh,tbh->th", dz_i, c_prev)
                out[weight_cf(k, d)] = np.einsum("tbh,tbh->th", dz_f, c_prev)
                out[weight_co(k, d)] = np.einsum("tbh,tbh->th", dz_o, c_t)
            if lg.dw_hr is not None:
                out[weight_hr(k, d)] = np.einsum("tbp,tbh->tph", in_order(lg.dr, order), in_order(layer.m, order))
    return out
