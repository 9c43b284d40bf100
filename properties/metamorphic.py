"""Identities every correct implementation satisfies, checked on any ``grads(case)``.

Each check runs the implementation on a case and on transformed cases and
compares the two sides under the tolerance rule; none needs an oracle:

* :func:`forget_bias_fold`: forget_bias b equals forget_bias 0 with b added to
  the forget rows of ``bias_ih`` (needs forget_bias != 0 to say anything).
* :func:`batch_additivity`: with reduction sum, the batch's gradients are the
  per-example gradients added (x, h0, c0 stacked); needs B >= 2.
* :func:`lengths_truncation`: a padded batch gives the gradients of each
  sequence truncated to its length (reduction sum); needs lengths.
* :func:`single_step`: at T = 1 with one layer, the gradients equal one cell
  step differentiated in closed form (any loss head, via the reference's
  ``head_loss`` for dL/dy only); the plain LSTM only.
* :func:`peepholes_zero`: a peephole case with every peephole weight zero equals
  the case without peepholes (the peepholes' own gradients aside).
* :func:`bidirectional_forward_half`: a bidirectional case whose reverse outputs
  reach nothing (the layer above's and the head's columns reading them, their
  upstream and final-state gradients zeroed) equals the unidirectional case of
  its forward half, and every reverse-direction gradient is zero.

Each returns a :class:`CheckResult` (or None when the check does not apply to
the case). The property tests run them on the reference; the kill matrix runs
them on every derivation variant.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from lstm_gradcheck.oracles.compare import compare_gradients
from lstm_gradcheck.oracles.judging import judging_context
from lstm_gradcheck.oracles.records import CheckResult
from lstm_gradcheck.reference.activations import sigmoid
from lstm_gradcheck.reference.case import Case, GradsFn
from lstm_gradcheck.reference.config import UPSTREAM
from lstm_gradcheck.reference.layout import (
    HEAD_WEIGHT,
    PEEPHOLE_KINDS,
    STATE_INPUTS,
    bias_ih,
    gate_blocks,
    gate_slice,
    param_shapes,
    parse_name,
    weight_ih,
)
from lstm_gradcheck.reference.losses import head_loss, scored_steps

__all__ = [
    "GradsFn",
    "METAMORPHIC",
    "example",
    "batch_of",
    "forget_bias_fold",
    "batch_additivity",
    "lengths_truncation",
    "closed_form_single_step",
    "single_step",
    "peepholes_zero",
    "bidirectional_forward_half",
]


def _compare(case: Case, got: tuple, expected: tuple, what: str) -> CheckResult:
    (loss, grads), (exp_loss, exp_grads) = got, expected
    tolerance = judging_context(case).tolerance(exp_grads)
    return compare_gradients(case, loss, grads, exp_loss, exp_grads, what, tolerance=tolerance)


def example(case: Case, b: int, steps: int | None = None) -> Case:
    """Batch element ``b`` of ``case`` as its own case, optionally truncated to ``steps``."""
    cfg = case.config
    t_len = cfg.seq_len if steps is None else steps
    keep = slice(b, b + 1)
    targets = case.targets[:t_len, keep] if cfg.loss_at == "every" else case.targets[keep]
    final = {"dh_n": case.dh_n[:, keep], "dc_n": case.dc_n[:, keep]} if cfg.final_state else {}
    return Case(
        cfg.replace(batch_size=1, seq_len=t_len),
        dict(case.params),
        case.x[:t_len, keep],
        case.h0[:, keep],
        case.c0[:, keep],
        targets,
        None if case.lengths is None or steps is not None else case.lengths[keep],
        seed=case.seed,
        **final,
    )


def batch_of(case: Case, per_example: list[tuple[float, Mapping[str, np.ndarray]]]) -> tuple[float, dict]:
    """Reassemble per-example results into the batch's: parameters add, x/h0/c0 concatenate."""
    every = list(param_shapes(case.config))
    names = [n for n in every if all(n in g for _, g in per_example)]
    grads = {name: sum(g[name] for _, g in per_example) for name in names}
    if all("x" in g for _, g in per_example):
        x = np.zeros(case.x.shape)
        for b, (_, g) in enumerate(per_example):
            x[: g["x"].shape[0], b] = g["x"][:, 0]
        grads["x"] = x
    for name in ("h0", "c0"):
        if all(name in g for _, g in per_example):
            grads[name] = np.concatenate([g[name] for _, g in per_example], axis=1)
    return sum(loss for loss, _ in per_example), grads


def forget_bias_fold(impl: GradsFn, case: Case) -> CheckResult | None:
    """forget_bias b == forget_bias 0 with b added to bias_ih's forget rows."""
    cfg = case.config
    if cfg.forget_bias == 0:
        return None
    params = dict(case.params)
    rows = gate_slice("f", cfg.hidden_size)
    for k in range(cfg.num_layers):
        for d in range(cfg.num_directions):
            shifted = params[bias_ih(k, d)].copy()
            shifted[rows] += cfg.forget_bias
            params[bias_ih(k, d)] = shifted
    folded = case.replace(config=cfg.replace(forget_bias=0.0), params=params)
    return _compare(case, impl(case), impl(folded), "forget_bias folded")


def batch_additivity(impl: GradsFn, case: Case) -> CheckResult | None:
    """With reduction sum, the batch's gradients are the per-example gradients added."""
    if case.config.reduction != "sum" or case.config.batch_size < 2:
        return None
    examples = [example(case, b) for b in range(case.config.batch_size)]
    return _compare(case, impl(case), batch_of(case, [impl(e) for e in examples]), "per-example sum")


def lengths_truncation(impl: GradsFn, case: Case) -> CheckResult | None:
    """A padded batch gives each sequence's gradients truncated to its length (reduction sum)."""
    if case.config.reduction != "sum" or case.lengths is None:
        return None
    examples = [example(case, b, int(n)) for b, n in enumerate(case.lengths)]
    return _compare(case, impl(case), batch_of(case, [impl(e) for e in examples]), "truncated sequences")


def closed_form_single_step(case: Case) -> tuple[float, dict[str, np.ndarray]]:
    """One LSTM cell step (T = 1, one layer) differentiated in closed form.

    ``z = W_ih x + W_hh h0 + b``; ``c = f c0 + i g``; ``h = o tanh(c)`` (or o c);
    ``y = V h + b_y`` (``y = h`` for ``upstream``); with ``dy`` from the loss head and
    ``dh = V^T dy + dh_n``,
    ``dc = dh o cell'(c) + dc_n``: ``dz = [dc g σ'(z_i), dc c0 σ'(z_f + fb), dc i tanh'(z_g),
    dh cell(c) σ'(z_o)]``, ``dW_ih = dz^T x``, ``dW_hh = dz^T h0``, ``dx = dz W_ih``,
    ``dh0 = dz W_hh``, ``dc0 = dc f``.
    """
    cfg, p = case.config, case.params
    if cfg.seq_len != 1 or cfg.num_layers != 1:
        raise ValueError("the closed form covers one step of one layer")
    x, h0, c0 = case.x[0], case.h0[0], case.c0[0]
    z = x @ p["weight_ih_l0"].T + h0 @ p["weight_hh_l0"].T + p["bias_ih_l0"] + p["bias_hh_l0"]
    zi, zf, zg, zo = gate_blocks(z, cfg.hidden_size)
    i, f, g, o = sigmoid(zi), sigmoid(zf + cfg.forget_bias), np.tanh(zg), sigmoid(zo)
    c = f * c0 + i * g
    cell, dcell = (np.tanh(c), 1 - np.tanh(c) ** 2) if cfg.cell_output == "tanh" else (c, 1.0)
    h = o * cell
    y = h @ p["head.weight"].T + p["head.bias"] if cfg.has_head else h
    loss, dy = head_loss(y[None], cfg, scored_steps(cfg, case.targets, case.lengths))
    loss, dy = float(loss), dy[0]
    dh = dy @ p["head.weight"] if cfg.has_head else dy
    if cfg.final_state:
        loss += float(np.sum(case.dh_n[0] * h) + np.sum(case.dc_n[0] * c))
        dh = dh + case.dh_n[0]
    dc = dh * o * dcell + (case.dc_n[0] if cfg.final_state else 0.0)
    dz = np.concatenate([dc * g * i * (1 - i), dc * c0 * f * (1 - f), dc * i * (1 - g**2), dh * cell * o * (1 - o)], 1)
    grads = {
        "weight_ih_l0": dz.T @ x,
        "weight_hh_l0": dz.T @ h0,
        "bias_ih_l0": dz.sum(0),
        "bias_hh_l0": dz.sum(0),
        "x": (dz @ p["weight_ih_l0"])[None],
        "h0": (dz @ p["weight_hh_l0"])[None],
        "c0": (dc * f)[None],
    }
    if cfg.has_head:
        grads.update({"head.weight": dy.T @ h, "head.bias": dy.sum(0)})
    return loss, grads


def single_step(impl: GradsFn, case: Case) -> CheckResult | None:
    """At T = 1 with one layer, the implementation equals the closed-form cell step (plain LSTM)."""
    if case.config.seq_len != 1 or case.config.num_layers != 1 or not case.config.is_plain:
        return None
    return _compare(case, impl(case), closed_form_single_step(case), "closed-form cell step")


def peepholes_zero(impl: GradsFn, case: Case) -> CheckResult | None:
    """Zero peephole weights give the loss and gradients of the same case without peepholes."""
    cfg = case.config
    if not cfg.peepholes:
        return None
    peep = {n for n in case.params if parse_name(n).kind in PEEPHOLE_KINDS}
    zeroed = case.with_arrays({n: np.zeros_like(case.params[n]) for n in peep})
    plain = case.replace(
        config=cfg.replace(peepholes=False), params={n: a for n, a in case.params.items() if n not in peep}
    )
    loss, grads = impl(zeroed)
    return _compare(plain, (loss, {n: g for n, g in grads.items() if n not in peep}), impl(plain), "peepholes zero")


def _forward_half(case: Case) -> tuple[Case, Case]:
    """The bidirectional case with its reverse outputs cut off, and its forward half alone."""
    cfg = case.config
    width = cfg.h_size
    params = dict(case.params)
    for k in range(1, cfg.num_layers):
        params[weight_ih(k)] = _zero_columns(params[weight_ih(k)], width)
    if cfg.has_head:
        params[HEAD_WEIGHT] = _zero_columns(params[HEAD_WEIGHT], width)
    targets = case.targets
    if cfg.loss == UPSTREAM:
        targets = _zero_columns(targets, width)
    finals = {}
    if cfg.final_state:
        finals = {n: _zero_states(getattr(case, n)) for n in ("dh_n", "dc_n")}
    cut = case.replace(params=params, targets=targets, **finals)
    half_params = {
        n: (a[:, :width] if n == HEAD_WEIGHT or (n.startswith("weight_ih_l") and parse_name(n).layer > 0) else a)
        for n, a in params.items()
        if parse_name(n).direction != 1
    }
    half = Case(
        cfg.replace(bidirectional=False), half_params, case.x, case.h0[0::2], case.c0[0::2],
        targets[..., :width] if cfg.loss == UPSTREAM else targets, case.lengths,
        None if not cfg.final_state else finals["dh_n"][0::2], None if not cfg.final_state else finals["dc_n"][0::2],
        seed=case.seed,
    )  # fmt: skip
    return cut, half


def _zero_columns(a: np.ndarray, width: int) -> np.ndarray:
    out = np.array(a)
    out[..., width:] = 0
    return out


def _zero_states(a: np.ndarray) -> np.ndarray:
    out = np.array(a)
    out[1::2] = 0
    return out


def bidirectional_forward_half(impl: GradsFn, case: Case) -> CheckResult | None:
    """With its reverse outputs reaching nothing, a bidirectional case is its forward half: the loss
    and the forward direction's gradients are the unidirectional case's, the reverse direction's
    are zero (the columns reading the reverse half keep the implementation's own values)."""
    if not case.config.bidirectional:
        return None
    cut, half = _forward_half(case)
    width = case.config.h_size
    got = impl(cut)
    half_loss, half_grads = impl(half)
    expected = {}
    for name, value in got[1].items():
        parsed = parse_name(name)
        if name in STATE_INPUTS[1:]:
            states = np.zeros_like(np.asarray(value, dtype=np.float64))
            states[0::2] = half_grads[name] if name in half_grads else value[0::2]
            expected[name] = states
        elif parsed.direction == 1:
            expected[name] = np.zeros_like(np.asarray(value, dtype=np.float64))
        elif name in half_grads and np.shape(half_grads[name]) != np.shape(value):  # reads both halves
            expected[name] = np.concatenate([half_grads[name], np.asarray(value)[:, width:]], axis=1)
        elif name in half_grads:
            expected[name] = half_grads[name]
    return _compare(cut, got, (half_loss, expected), "bidirectional forward half")


#: name -> check, for the kill matrix and the property tests.
METAMORPHIC: dict[str, Callable[[GradsFn, Case], CheckResult | None]] = {
    "forget_bias fold": forget_bias_fold,
    "batch additivity": batch_additivity,
    "lengths truncation": lengths_truncation,
    "single step": single_step,
    "peepholes zero": peepholes_zero,
    "bidirectional forward half": bidirectional_forward_half,
}
