"""Gate layout, parameter naming and element locations: the one source of truth.

Note [Gate layout]
------------------
Every 4H-row array in this project (weights, biases, pre-activations ``z``,
gate activations, their gradients) stacks the gate blocks in torch's order
``i, f, g, o``. Row ``k`` of such an array belongs to gate ``GATES[k // H]``,
unit ``k % H``. Nothing outside this module does that arithmetic: the
reference, the oracles, the report and the tests call :func:`gate_slice`,
:func:`gate_blocks` or :func:`row_to_gate_unit`.

Note [Parameter names]
----------------------
Parameter names and shapes are exactly ``torch.nn.LSTM``'s plus the head::

    weight_ih_l{k}  (4H, I if k == 0 else H)
    weight_hh_l{k}  (4H, H)
    bias_ih_l{k}    (4H,)
    bias_hh_l{k}    (4H,)
    head.weight     (O, H)
    head.bias       (O,)

and the differentiable inputs ``x`` (T, B, I), ``h0`` and ``c0`` (L, B, H).
A case with the layer-only loss ``upstream`` has no head, so no head parameters.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from lstm_gradcheck.reference.config import LSTMConfig

__all__ = [
    "GATES",
    "GATE_NAMES",
    "HEAD_WEIGHT",
    "HEAD_BIAS",
    "STATE_INPUTS",
    "Location",
    "ParamName",
    "gate_slice",
    "gate_blocks",
    "gate_row_vector",
    "row_to_gate_unit",
    "rows_to_gate_units",
    "unit_rows",
    "stack_gates",
    "weight_ih",
    "weight_hh",
    "bias_ih",
    "bias_hh",
    "layer_param_names",
    "param_names",
    "gradient_names",
    "model_gradient_names",
    "gradient_shapes",
    "param_shapes",
    "parse_name",
    "locate",
]

GATES: tuple[str, ...] = ("i", "f", "g", "o")
GATE_NAMES: Mapping[str, str] = {"i": "input", "f": "forget", "g": "cell", "o": "output"}
_GATE_INDEX = {gate: k for k, gate in enumerate(GATES)}

HEAD_WEIGHT = "head.weight"
HEAD_BIAS = "head.bias"
STATE_INPUTS: tuple[str, ...] = ("x", "h0", "c0")


def _gate_index(gate: str) -> int:
    try:
        return _GATE_INDEX[gate]
    except KeyError:
        raise ValueError(f"unknown gate {gate!r}: expected one of {', '.join(GATES)}") from None


def gate_slice(gate: str, hidden_size: int) -> slice:
    """Rows of gate ``gate`` (``"i"``, ``"f"``, ``"g"`` or ``"o"``) in a 4H-row array."""
    k = _gate_index(gate)
    return slice(k * hidden_size, (k + 1) * hidden_size)


@lru_cache(maxsize=256)
def _gate_slices(hidden_size: int) -> tuple[slice, ...]:
    return tuple(gate_slice(gate, hidden_size) for gate in GATES)


def gate_blocks(a: np.ndarray, hidden_size: int, axis: int = -1) -> tuple[np.ndarray, ...]:
    """Views of the four gate blocks (i, f, g, o) of ``a`` along ``axis`` (of length 4H)."""
    if a.shape[axis] != 4 * hidden_size:
        raise ValueError(f"expected an axis of length 4*hidden_size = {4 * hidden_size}, got shape {a.shape}")
    i, f, g, o = _gate_slices(hidden_size)  # called hundreds of times per case: kept lean
    if axis == -1 or axis == a.ndim - 1:
        return a[..., i], a[..., f], a[..., g], a[..., o]
    lead = (slice(None),) * (axis % a.ndim)
    return a[(*lead, i)], a[(*lead, f)], a[(*lead, g)], a[(*lead, o)]


def gate_row_vector(values: Mapping[str, float], hidden_size: int, dtype=np.float64) -> np.ndarray:
    """A (4H,) vector holding ``values[gate]`` on each gate's rows (e.g. per-gate constants)."""
    out = np.empty(4 * hidden_size, dtype=dtype)
    for gate in GATES:
        out[gate_slice(gate, hidden_size)] = values[gate]
    return out


def row_to_gate_unit(row: int, hidden_size: int) -> tuple[str, int]:
    """Gate and unit of row ``row`` of a 4H-row array: ``divmod(row, H)``."""
    k, unit = rows_to_gate_units(np.asarray(row), hidden_size)
    return GATES[int(k)], int(unit)


def rows_to_gate_units(rows: np.ndarray, hidden_size: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`row_to_gate_unit` of many rows: each row's gate (its position in GATES) and unit."""
    return np.divmod(rows, hidden_size)


def unit_rows(units: np.ndarray, hidden_size: int) -> np.ndarray:
    """(4, K): the rows of each of ``units`` (K,) in the gate blocks i, f, g, o of a 4H-row array."""
    every = np.arange(4 * hidden_size)
    return np.stack([every[gate_slice(gate, hidden_size)][units] for gate in GATES])


def stack_gates(blocks: Mapping[str, np.ndarray], axis: int = 0) -> np.ndarray:
    """Stack per-gate arrays ``{"i": .., "f": .., "g": .., "o": ..}`` into the 4H layout."""
    missing = [g for g in GATES if g not in blocks]
    if missing:
        raise ValueError(f"stack_gates: missing gate blocks {missing}")
    return np.concatenate([np.asarray(blocks[g]) for g in GATES], axis=axis)


# ----------------------------------------------------------------------------- names


def weight_ih(layer: int) -> str:
    return f"weight_ih_l{layer}"


def weight_hh(layer: int) -> str:
    return f"weight_hh_l{layer}"


def bias_ih(layer: int) -> str:
    return f"bias_ih_l{layer}"


def bias_hh(layer: int) -> str:
    return f"bias_hh_l{layer}"


def layer_param_names(layer: int) -> tuple[str, str, str, str]:
    """The four LSTM parameter names of one layer, in torch's order."""
    return weight_ih(layer), weight_hh(layer), bias_ih(layer), bias_hh(layer)


def param_names(num_layers: int, *, head: bool = True) -> tuple[str, ...]:
    """Every parameter name of a model with ``num_layers`` layers (and a head, if ``head``), in torch's order."""
    names: list[str] = []
    for layer in range(num_layers):
        names.extend(layer_param_names(layer))
    return (*names, HEAD_WEIGHT, HEAD_BIAS) if head else tuple(names)


def gradient_names(num_layers: int, *, head: bool = True) -> tuple[str, ...]:
    """Every name an implementation may return: the parameters, then x, h0, c0."""
    return (*param_names(num_layers, head=head), *STATE_INPUTS)


def model_gradient_names(config: LSTMConfig) -> tuple[str, ...]:
    """:func:`gradient_names` of ``config``'s model (no head parameters for the loss ``upstream``)."""
    return gradient_names(config.num_layers, head=config.has_head)


def param_shapes(config: LSTMConfig) -> dict[str, tuple[int, ...]]:
    """Shapes of every parameter of ``config``'s model, keyed by name (no head for the loss ``upstream``)."""
    hidden = config.hidden_size
    shapes: dict[str, tuple[int, ...]] = {}
    for layer in range(config.num_layers):
        fan_in = config.input_size if layer == 0 else hidden
        shapes[weight_ih(layer)] = (4 * hidden, fan_in)
        shapes[weight_hh(layer)] = (4 * hidden, hidden)
        shapes[bias_ih(layer)] = (4 * hidden,)
        shapes[bias_hh(layer)] = (4 * hidden,)
    if config.has_head:
        shapes[HEAD_WEIGHT] = (config.output_size, hidden)
        shapes[HEAD_BIAS] = (config.output_size,)
    return shapes


def gradient_shapes(config: LSTMConfig) -> dict[str, tuple[int, ...]]:
    """Shapes of every gradient an implementation may return (parameters, x, h0, c0)."""
    state = (config.num_layers, config.batch_size, config.hidden_size)
    return {
        **param_shapes(config),
        "x": (config.seq_len, config.batch_size, config.input_size),
        "h0": state,
        "c0": state,
    }


@dataclass(frozen=True)
class ParamName:
    """A parsed gradient name: ``kind`` is one of weight_ih, weight_hh, bias_ih,
    bias_hh, head_weight, head_bias, x, h0, c0; ``layer`` is set for LSTM parameters."""

    kind: str
    layer: int | None = None


_LAYER_PARAM = re.compile(r"^(weight_ih|weight_hh|bias_ih|bias_hh)_l(\d+)$")


def parse_name(name: str) -> ParamName:
    """Parse a gradient name (see Note [Parameter names]); ``ValueError`` if unknown."""
    if name == HEAD_WEIGHT:
        return ParamName("head_weight")
    if name == HEAD_BIAS:
        return ParamName("head_bias")
    if name in STATE_INPUTS:
        return ParamName(name)
    match = _LAYER_PARAM.match(name)
    if match is None:
        raise ValueError(
            f"unknown gradient name {name!r}: expected weight_ih_l<k>, weight_hh_l<k>, "
            f"bias_ih_l<k>, bias_hh_l<k>, {HEAD_WEIGHT}, {HEAD_BIAS}, x, h0 or c0"
        )
    return ParamName(match.group(1), int(match.group(2)))


# ----------------------------------------------------------------------------- locations


@dataclass(frozen=True)
class Location:
    """Where one element of a gradient sits, in LSTM terms.

    ``gate``/``unit`` for rows of 4H arrays and for h0/c0 (unit only); ``unit``
    is the output index for the head; ``column`` names the input feeding a
    weight column (``"x[j]"`` or ``"h[j]"``) or the feature of ``x``; ``step``
    is set for ``x``; ``batch`` for x, h0 and c0.
    """

    tensor: str
    index: tuple[int, ...]
    layer: int | None = None
    gate: str | None = None
    unit: int | None = None
    column: str | None = None
    step: int | None = None
    batch: int | None = None

    def describe(self) -> str:
        """A one-line human description, e.g. ``weight_hh_l0[forget gate, unit 5, h[2]]``."""
        parts: list[str] = []
        if self.step is not None:
            parts.append(f"step {self.step}")
        if self.batch is not None:
            parts.append(f"batch {self.batch}")
        if self.gate is not None:
            parts.append(f"{GATE_NAMES[self.gate]} gate")
        if self.unit is not None:
            parts.append(("output " if self.tensor.startswith("head") else "unit ") + str(self.unit))
        if self.column is not None:
            parts.append(self.column)
        where = ", ".join(parts) if parts else ",".join(map(str, self.index))
        return f"{self.tensor}[{where}]"

    def as_dict(self) -> dict[str, object]:
        return {
            "tensor": self.tensor,
            "index": list(self.index),
            "layer": self.layer,
            "gate": self.gate,
            "unit": self.unit,
            "column": self.column,
            "step": self.step,
            "batch": self.batch,
        }


def locate(name: str, index: tuple[int, ...], hidden_size: int) -> Location:
    """Translate an element ``index`` of gradient ``name`` into LSTM terms."""
    parsed = parse_name(name)
    index = tuple(int(i) for i in index)
    kind, layer = parsed.kind, parsed.layer
    if kind in ("weight_ih", "weight_hh"):
        row, col = index
        gate, unit = row_to_gate_unit(row, hidden_size)
        source = "x" if (kind == "weight_ih" and layer == 0) else "h"
        return Location(name, index, layer=layer, gate=gate, unit=unit, column=f"{source}[{col}]")
    if kind in ("bias_ih", "bias_hh"):
        gate, unit = row_to_gate_unit(index[0], hidden_size)
        return Location(name, index, layer=layer, gate=gate, unit=unit)
    if kind == "head_weight":
        out, col = index
        return Location(name, index, unit=out, column=f"h[{col}]")
    if kind == "head_bias":
        return Location(name, index, unit=index[0])
    if kind == "x":
        step, batch, col = index
        return Location(name, index, layer=0, column=f"x[{col}]", step=step, batch=batch)
    # h0 / c0: (layer, batch, unit); they enter before step 0.
    lay, batch, unit = index
    return Location(name, index, layer=lay, unit=unit, batch=batch)


# ============================================================================= other layouts
#
# Note [Layout converters]
# ------------------------
# Derivations in the wild store the same parameters in other shapes. Every
# conversion between those shapes and the contract's (torch's) layout lives
# here, so no other module re-derives block or column arithmetic:
#
#   separate   per gate: w_x[g] (H, I), w_h[g] (H, H), b_x[g], b_h[g] (H,)   (seed 002's W/U)
#   concat     one (4H, I+H) matrix acting on [x, h] ("xh", seeds 001, 003)
#              or [h, x] ("hx", seed 004); per-gate views via gate_blocks
#   tf_ijfo    TensorFlow BasicLSTMCell: kernel (I+H, 4H) acting on the row
#              [x, h] from the right, column blocks i, j, f, o (j = the
#              candidate, our g); one bias (4H,) in the same order
#   fused bias b = b_ih + b_hh (concat, tf_ijfo and the fused 4H matrix)
#
# The weight maps are permutations, so the same function converts gradients:
# the gradient of a permuted array is the permuted gradient. Fusing the biases
# is a sum; its adjoint hands the fused bias's gradient to both b_ih and b_hh
# (:func:`split_fused_bias_grad`).

CONCAT_ORDERS: tuple[str, ...] = ("xh", "hx")
#: TensorFlow's i, j, f, o in our gate letters (j is the candidate, g here).
TF_GATE_ORDER: tuple[str, ...] = ("i", "g", "f", "o")

__all__ += [
    "CONCAT_ORDERS",
    "TF_GATE_ORDER",
    "gate_blocks_in",
    "stack_gates_in",
    "SeparateGates",
    "to_separate",
    "from_separate",
    "concat_inputs",
    "split_concat_inputs",
    "to_concat",
    "from_concat",
    "fuse_biases",
    "split_fused_bias_grad",
    "to_tf_ijfo",
    "from_tf_ijfo",
]


def _check_order(order: tuple[str, ...]) -> None:
    if sorted(order) != sorted(GATES) or len(order) != len(GATES):
        raise ValueError(f"a gate order must list each of {', '.join(GATES)} once, got {order!r}")


def gate_blocks_in(a: np.ndarray, hidden_size: int, order: tuple[str, ...], axis: int = 0) -> dict[str, np.ndarray]:
    """Views of the gate blocks of ``a``, whose ``axis`` (length 4H) stacks them in ``order``.

    ``gate_blocks_in(a, H, GATES)`` is :func:`gate_blocks` as a dict; with
    :data:`TF_GATE_ORDER` it reads TensorFlow's i, j, f, o columns.
    """
    _check_order(order)
    # Block k of `order` sits where gate GATES[k] sits in the contract's layout.
    positional = dict(zip(order, gate_blocks(a, hidden_size, axis=axis), strict=True))
    return {gate: positional[gate] for gate in GATES}


def stack_gates_in(blocks: Mapping[str, np.ndarray], order: tuple[str, ...], axis: int = 0) -> np.ndarray:
    """Stack per-gate arrays along ``axis`` in ``order`` (the inverse of :func:`gate_blocks_in`)."""
    _check_order(order)
    return stack_gates(dict(zip(GATES, (blocks[gate] for gate in order), strict=True)), axis=axis)


@dataclass(frozen=True)
class SeparateGates:
    """Per-gate parameters, keyed by gate letter: ``w_x[g]`` (H, I) acts on the
    input, ``w_h[g]`` (H, H) on h_{t-1}; ``b_x[g]``, ``b_h[g]`` (H,) are the two biases."""

    w_x: Mapping[str, np.ndarray]
    w_h: Mapping[str, np.ndarray]
    b_x: Mapping[str, np.ndarray]
    b_h: Mapping[str, np.ndarray]


def to_separate(w_ih: np.ndarray, w_hh: np.ndarray, b_ih: np.ndarray, b_hh: np.ndarray) -> SeparateGates:
    """Split the contract's (4H, I), (4H, H), (4H,), (4H,) into per-gate blocks (copies)."""
    hidden = w_hh.shape[1]

    def split(a: np.ndarray) -> dict[str, np.ndarray]:
        return {g: block.copy() for g, block in zip(GATES, gate_blocks(a, hidden, axis=0), strict=True)}

    return SeparateGates(split(w_ih), split(w_hh), split(b_ih), split(b_hh))


def from_separate(sep: SeparateGates) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(w_ih, w_hh, b_ih, b_hh) in the contract's layout from per-gate blocks."""
    return stack_gates(sep.w_x), stack_gates(sep.w_h), stack_gates(sep.b_x), stack_gates(sep.b_h)


def _check_concat_order(order: str) -> None:
    if order not in CONCAT_ORDERS:
        raise ValueError(f"concatenation order must be one of {CONCAT_ORDERS}, got {order!r}")


def concat_inputs(x: np.ndarray, h: np.ndarray, order: str = "xh") -> np.ndarray:
    """The concatenated input ``[x, h]`` or ``[h, x]`` along the last axis (the columns of :func:`to_concat`)."""
    _check_concat_order(order)
    parts = (x, h) if order == "xh" else (h, x)
    return np.concatenate(parts, axis=-1)


def split_concat_inputs(v: np.ndarray, input_size: int, order: str = "xh") -> tuple[np.ndarray, np.ndarray]:
    """(x-part, h-part) of an array whose last axis is laid out as :func:`concat_inputs`."""
    _check_concat_order(order)
    if order == "xh":
        return v[..., :input_size], v[..., input_size:]
    hidden = v.shape[-1] - input_size
    return v[..., hidden:], v[..., :hidden]


def to_concat(w_ih: np.ndarray, w_hh: np.ndarray, order: str = "xh") -> np.ndarray:
    """One (4H, I+H) matrix ``W`` with ``W @ concat_inputs(x, h, order) = W_ih x + W_hh h``."""
    return concat_inputs(w_ih, w_hh, order)


def from_concat(w: np.ndarray, input_size: int, order: str = "xh") -> tuple[np.ndarray, np.ndarray]:
    """(w_ih, w_hh) from a (4H, I+H) matrix on the concatenated input (inverse of :func:`to_concat`)."""
    w_ih, w_hh = split_concat_inputs(w, input_size, order)
    return w_ih.copy(), w_hh.copy()


def fuse_biases(b_ih: np.ndarray, b_hh: np.ndarray) -> np.ndarray:
    """The single bias ``b = b_ih + b_hh`` of one-bias layouts."""
    return b_ih + b_hh


def split_fused_bias_grad(db: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gradients of b_ih and b_hh from the fused bias's gradient (the adjoint of :func:`fuse_biases`)."""
    return db.copy(), db.copy()


def to_tf_ijfo(w_ih: np.ndarray, w_hh: np.ndarray, b_ih: np.ndarray, b_hh: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """TensorFlow BasicLSTMCell's (kernel (I+H, 4H), bias (4H,)) from the contract's parameters.

    ``concat_inputs(x, h, "xh") @ kernel + bias`` gives the pre-activations in
    column blocks i, j, f, o. TensorFlow's forget_bias is not a parameter; the
    cell adds it inside the forget sigmoid, exactly as the contract does.
    """
    hidden = w_hh.shape[1]
    w = to_concat(w_ih, w_hh, "xh")
    kernel = stack_gates_in(gate_blocks_in(w, hidden, GATES, axis=0), TF_GATE_ORDER, axis=0).T.copy()
    bias = stack_gates_in(gate_blocks_in(fuse_biases(b_ih, b_hh), hidden, GATES), TF_GATE_ORDER)
    return kernel, bias


def from_tf_ijfo(kernel: np.ndarray, bias: np.ndarray, input_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(w_ih, w_hh, b) in the contract's layout from a TensorFlow kernel and bias.

    ``b`` is the fused bias b_ih + b_hh (a TensorFlow cell has one bias). The
    same call converts (d kernel, d bias) to (dW_ih, dW_hh, db); hand ``db`` to
    :func:`split_fused_bias_grad`.
    """
    hidden = kernel.shape[1] // 4
    w = stack_gates_in(gate_blocks_in(kernel.T, hidden, TF_GATE_ORDER, axis=0), GATES, axis=0)
    w_ih, w_hh = from_concat(w, input_size, "xh")
    b = stack_gates_in(gate_blocks_in(bias, hidden, TF_GATE_ORDER), GATES)
    return w_ih, w_hh, b
