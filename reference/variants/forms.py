"""Parameter forms: the same LSTM layer with its weights stored in different shapes.

A derivation (:mod:`lstm_gradcheck.reference.variants.derivation`) touches a layer's
parameters in exactly three places, and a :class:`Form` supplies them:

    preact(p, u, h)              z_g = (W_x u + W_h h + b)_g per gate g     (B, H) each
    backprop(p, dz)              (du, dh_prev) = (W_x^T dz, W_h^T dz)       (B, I), (B, H)
    param_grads(dz, dz_b, u, h)  this step's dW_x = dz^T u, dW_h = dz^T h, db = sum_b dz_b

``dz`` maps gate letters to (B, H) pre-activation gradients; a gate left out
counts as zero (derivations that drop a path say so by leaving it out). The
gradients a form accumulates are a flat ``dict[str, ndarray]`` in the form's
own shapes; :meth:`Form.to_contract` maps them back to the contract's
``weight_ih_l{k}`` ... ``bias_hh_l{k}``. Every conversion goes through the
converters of :mod:`lstm_gradcheck.reference.layout` (Note [Layout converters]).

Forms: :data:`TORCH` (the contract's 4H layout), :data:`SEPARATE` (per-gate
W and U, seed 002), :func:`concat_form` (per-gate matrices on [x, h] or
[h, x], seeds 001, 003, 004), :data:`TF_IJFO` (TensorFlow's kernel, gates
i, j, f, o), :data:`FUSED` (one (4H, I+H) matrix and one bias).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from lstm_gradcheck.reference.converters import (
    TF_GATE_ORDER,
    SeparateGates,
    concat_inputs,
    from_concat,
    from_separate,
    from_tf_ijfo,
    fuse_biases,
    gate_blocks_in,
    split_concat_inputs,
    split_fused_bias_grad,
    stack_gates_in,
    to_concat,
    to_separate,
    to_tf_ijfo,
)
from lstm_gradcheck.reference.layout import (
    GATES,
    bias_hh,
    bias_ih,
    stack_gates,
    weight_hh,
    weight_ih,
)

__all__ = ["Form", "TORCH", "SEPARATE", "TF_IJFO", "FUSED", "concat_form", "GateArrays", "FormGrads"]

GateArrays = Mapping[str, np.ndarray]
FormGrads = dict[str, np.ndarray]


def _full(dz: GateArrays) -> dict[str, np.ndarray]:
    """``dz`` with every gate present: a gate left out is a zero block."""
    like = next(iter(dz.values()))
    return {g: dz[g] if g in dz else np.zeros_like(like) for g in GATES}


def _contract(layer: int, dw_ih: np.ndarray, dw_hh: np.ndarray, db_ih: np.ndarray, db_hh: np.ndarray) -> FormGrads:
    return {weight_ih(layer): dw_ih, weight_hh(layer): dw_hh, bias_ih(layer): db_ih, bias_hh(layer): db_hh}


@dataclass(frozen=True)
class Form:
    """Base form: the contract's own layout, W_ih (4H, I), W_hh (4H, H), b_ih, b_hh (4H,).

    Subclasses override the four methods; each keeps the math of the module
    docstring and differs only in how the numbers are stored.
    """

    name: str = "torch"
    statement: str = "the contract's (torch's) layout: W_ih (4H, I), W_hh (4H, H), b_ih, b_hh, gate blocks i, f, g, o"

    def params(self, case_params: Mapping[str, np.ndarray], layer: int) -> Any:
        """Layer ``layer``'s parameters in this form."""
        return tuple(np.asarray(case_params[n]) for n in _names(layer))

    def preact(self, p: Any, u: np.ndarray, h: np.ndarray) -> dict[str, np.ndarray]:
        w_ih, w_hh, b_ih, b_hh = p
        z = u @ w_ih.T + h @ w_hh.T + b_ih + b_hh
        return gate_blocks_in(z, w_hh.shape[0] // 4, GATES, axis=-1)

    def backprop(self, p: Any, dz: GateArrays) -> tuple[np.ndarray, np.ndarray]:
        w_ih, w_hh, _, _ = p
        dz4 = stack_gates(_full(dz), axis=-1)
        return dz4 @ w_ih, dz4 @ w_hh

    def param_grads(self, dz: GateArrays, dz_b: GateArrays, u: np.ndarray, h: np.ndarray) -> FormGrads:
        dz4 = stack_gates(_full(dz), axis=-1)
        return {"w_ih": dz4.T @ u, "w_hh": dz4.T @ h, "b": stack_gates(_full(dz_b), axis=-1).sum(axis=0)}

    def to_contract(self, grads: FormGrads, layer: int, input_size: int) -> FormGrads:
        # b_ih and b_hh enter z only through their sum: both get the same gradient.
        return _contract(layer, grads["w_ih"], grads["w_hh"], grads["b"], grads["b"].copy())


def _names(layer: int) -> tuple[str, str, str, str]:
    return weight_ih(layer), weight_hh(layer), bias_ih(layer), bias_hh(layer)


TORCH = Form()


@dataclass(frozen=True)
class _Separate(Form):
    """Per-gate W_x[g] (H, I), W_h[g] (H, H), b_x[g], b_h[g] (seed 002's W and U)."""

    name: str = "separate"
    statement: str = "per-gate matrices W_g (on h) and U_g (on x) with two biases per gate, as seed 002 writes them"

    def params(self, case_params: Mapping[str, np.ndarray], layer: int) -> SeparateGates:
        return to_separate(*(np.asarray(case_params[n]) for n in _names(layer)))

    def preact(self, p: SeparateGates, u: np.ndarray, h: np.ndarray) -> dict[str, np.ndarray]:
        return {g: u @ p.w_x[g].T + h @ p.w_h[g].T + p.b_x[g] + p.b_h[g] for g in GATES}

    def backprop(self, p: SeparateGates, dz: GateArrays) -> tuple[np.ndarray, np.ndarray]:
        du = sum(dz[g] @ p.w_x[g] for g in dz)
        dh = sum(dz[g] @ p.w_h[g] for g in dz)
        return du, dh

    def param_grads(self, dz: GateArrays, dz_b: GateArrays, u: np.ndarray, h: np.ndarray) -> FormGrads:
        dz, dz_b = _full(dz), _full(dz_b)
        out: FormGrads = {}
        for g in GATES:
            out[f"w_x.{g}"] = dz[g].T @ u
            out[f"w_h.{g}"] = dz[g].T @ h
            out[f"b.{g}"] = dz_b[g].sum(axis=0)
        return out

    def to_contract(self, grads: FormGrads, layer: int, input_size: int) -> FormGrads:
        per_gate = {kind: {g: grads[f"{kind}.{g}"] for g in GATES} for kind in ("w_x", "w_h", "b")}
        # b_x[g] and b_h[g] are added in z_g: both get db_g.
        sep = SeparateGates(per_gate["w_x"], per_gate["w_h"], per_gate["b"], per_gate["b"])
        return _contract(layer, *from_separate(sep))


SEPARATE = _Separate()


@dataclass(frozen=True)
class _Concat(Form):
    """Per-gate W_g (H, I+H) on the concatenated input [x, h] or [h, x], one bias per gate."""

    name: str = "concat_xh"
    statement: str = "per-gate matrices W_g = [W_gx W_gh] on the concatenation x_c = [x, h], one bias per gate"
    order: str = "xh"

    def params(self, case_params: Mapping[str, np.ndarray], layer: int) -> tuple[dict, dict, int]:
        w_ih, w_hh, b_ih, b_hh = (np.asarray(case_params[n]) for n in _names(layer))
        hidden = w_hh.shape[0] // 4
        w = gate_blocks_in(to_concat(w_ih, w_hh, self.order), hidden, GATES, axis=0)
        b = gate_blocks_in(fuse_biases(b_ih, b_hh), hidden, GATES)
        return w, b, w_ih.shape[1]

    def preact(self, p: tuple[dict, dict, int], u: np.ndarray, h: np.ndarray) -> dict[str, np.ndarray]:
        w, b, _ = p
        xc = concat_inputs(u, h, self.order)
        return {g: xc @ w[g].T + b[g] for g in GATES}

    def backprop(self, p: tuple[dict, dict, int], dz: GateArrays) -> tuple[np.ndarray, np.ndarray]:
        w, _, input_size = p
        dxc = sum(dz[g] @ w[g] for g in dz)
        return split_concat_inputs(dxc, input_size, self.order)

    def param_grads(self, dz: GateArrays, dz_b: GateArrays, u: np.ndarray, h: np.ndarray) -> FormGrads:
        dz, dz_b = _full(dz), _full(dz_b)
        xc = concat_inputs(u, h, self.order)
        out: FormGrads = {}
        for g in GATES:
            out[f"w.{g}"] = dz[g].T @ xc
            out[f"b.{g}"] = dz_b[g].sum(axis=0)
        return out

    def to_contract(self, grads: FormGrads, layer: int, input_size: int) -> FormGrads:
        dw_ih, dw_hh = from_concat(stack_gates({g: grads[f"w.{g}"] for g in GATES}), input_size, self.order)
        db_ih, db_hh = split_fused_bias_grad(stack_gates({g: grads[f"b.{g}"] for g in GATES}))
        return _contract(layer, dw_ih, dw_hh, db_ih, db_hh)


def concat_form(order: str) -> Form:
    """The per-gate concatenated form with input order ``"xh"`` ([x, h]) or ``"hx"`` ([h, x])."""
    first, second = ("x", "h") if order == "xh" else ("h", "x")
    return _Concat(
        name=f"concat_{order}",
        statement=f"per-gate matrices W_g on the concatenation [{first}, {second}], one bias per gate",
        order=order,
    )


@dataclass(frozen=True)
class _TensorFlow(Form):
    """TensorFlow BasicLSTMCell: rows [x, h] @ kernel (I+H, 4H) + bias, column blocks i, j, f, o."""

    name: str = "tf_ijfo"
    statement: str = (
        "TensorFlow BasicLSTMCell: [x, h] @ kernel (I+H, 4H) + bias, gates split as i, j, f, o, "
        "forget_bias added inside the forget sigmoid"
    )

    def params(self, case_params: Mapping[str, np.ndarray], layer: int) -> tuple[np.ndarray, np.ndarray, int, int]:
        w_ih, w_hh, b_ih, b_hh = (np.asarray(case_params[n]) for n in _names(layer))
        kernel, bias = to_tf_ijfo(w_ih, w_hh, b_ih, b_hh)
        return kernel, bias, w_ih.shape[1], w_hh.shape[0] // 4

    def preact(self, p: tuple[np.ndarray, np.ndarray, int, int], u: np.ndarray, h: np.ndarray) -> dict[str, np.ndarray]:
        kernel, bias, _, hidden = p
        z = concat_inputs(u, h, "xh") @ kernel + bias
        return gate_blocks_in(z, hidden, TF_GATE_ORDER, axis=-1)

    def backprop(self, p: tuple[np.ndarray, np.ndarray, int, int], dz: GateArrays) -> tuple[np.ndarray, np.ndarray]:
        kernel, _, input_size, _ = p
        dxh = stack_gates_in(_full(dz), TF_GATE_ORDER, axis=-1) @ kernel.T
        return split_concat_inputs(dxh, input_size, "xh")

    def param_grads(self, dz: GateArrays, dz_b: GateArrays, u: np.ndarray, h: np.ndarray) -> FormGrads:
        xh = concat_inputs(u, h, "xh")
        return {
            "kernel": xh.T @ stack_gates_in(_full(dz), TF_GATE_ORDER, axis=-1),
            "bias": stack_gates_in(_full(dz_b), TF_GATE_ORDER, axis=-1).sum(axis=0),
        }

    def to_contract(self, grads: FormGrads, layer: int, input_size: int) -> FormGrads:
        dw_ih, dw_hh, db = from_tf_ijfo(grads["kernel"], grads["bias"], input_size)
        return _contract(layer, dw_ih, dw_hh, *split_fused_bias_grad(db))


TF_IJFO = _TensorFlow()


@dataclass(frozen=True)
class _Fused(Form):
    """One (4H, I+H) matrix on [x; h] and one (4H,) bias, gate blocks i, f, g, o."""

    name: str = "fused_4h"
    statement: str = "one fused (4H, I+H) matrix on [x; h] and one bias b = b_ih + b_hh, gate blocks i, f, g, o"

    def params(self, case_params: Mapping[str, np.ndarray], layer: int) -> tuple[np.ndarray, np.ndarray, int, int]:
        w_ih, w_hh, b_ih, b_hh = (np.asarray(case_params[n]) for n in _names(layer))
        return to_concat(w_ih, w_hh, "xh"), fuse_biases(b_ih, b_hh), w_ih.shape[1], w_hh.shape[0] // 4

    def preact(self, p: tuple[np.ndarray, np.ndarray, int, int], u: np.ndarray, h: np.ndarray) -> dict[str, np.ndarray]:
        w, b, _, hidden = p
        z = concat_inputs(u, h, "xh") @ w.T + b
        return gate_blocks_in(z, hidden, GATES, axis=-1)

    def backprop(self, p: tuple[np.ndarray, np.ndarray, int, int], dz: GateArrays) -> tuple[np.ndarray, np.ndarray]:
        w, _, input_size, _ = p
        return split_concat_inputs(stack_gates(_full(dz), axis=-1) @ w, input_size, "xh")

    def param_grads(self, dz: GateArrays, dz_b: GateArrays, u: np.ndarray, h: np.ndarray) -> FormGrads:
        return {
            "w": stack_gates(_full(dz), axis=-1).T @ concat_inputs(u, h, "xh"),
            "b": stack_gates(_full(dz_b), axis=-1).sum(axis=0),
        }

    def to_contract(self, grads: FormGrads, layer: int, input_size: int) -> FormGrads:
        dw_ih, dw_hh = from_concat(grads["w"], input_size, "xh")
        return _contract(layer, dw_ih, dw_hh, *split_fused_bias_grad(grads["b"]))


FUSED = _Fused()
