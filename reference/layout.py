"""Gate layout and parameter names and shapes: the one source of truth.

Parameter names and shapes are exactly ``torch.nn.LSTM``'s plus the head::

    weight_ih_l{k}  (4H, I if k == 0 else H)
    weight_hh_l{k}  (4H, H)
    bias_ih_l{k}    (4H,)
    bias_hh_l{k}    (4H,)
    head.weight     (O, H)        (no head for the layer-only loss "upstream")
    head.bias       (O,)

and the differentiable inputs ``x`` (T, B, I), ``h0`` and ``c0`` (L, B, H). Element
locations live in :mod:`lstm_gradcheck.reference.locations`, other storage layouts in
:mod:`lstm_gradcheck.reference.converters`.

Note [Gate layout]
------------------
Every 4H-row array here (weights, biases, pre-activations, gates, their gradients)
stacks the gate blocks in torch's order i, f, g, o: row k belongs to gate GATES[k // H],
unit k % H. Nothing outside this module does that arithmetic: the reference, the oracles,
the report and the tests call :func:`gate_slice`, :func:`gate_blocks` or
:func:`row_to_gate_unit`, so a layout mistake can live in one place only.
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
    "LSTM_PARAM_KINDS",
    "is_lstm_param",
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


#: The kinds of a layer's own parameters: the 4H-row tensors, whose rows are gates.
LSTM_PARAM_KINDS: tuple[str, ...] = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
_LAYER_PARAM = re.compile(r"^(" + "|".join(LSTM_PARAM_KINDS) + r")_l(\d+)$")


def parse_name(name: str) -> ParamName:
    """Parse a gradient name (the module docstring lists them); ``ValueError`` if unknown."""
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


def is_lstm_param(name: str) -> bool:
    """True for a layer's own parameter (a 4H-row tensor): weight_ih_l{k} ... bias_hh_l{k}."""
    return parse_name(name).kind in LSTM_PARAM_KINDS
