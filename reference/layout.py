"""Gate layout and parameter names and shapes: the one source of truth.

Parameter names and shapes are exactly ``torch.nn.LSTM``'s plus the head and the peepholes,
with P = proj_size or H (the width of h) and D = 2 directions when bidirectional, else 1::

    weight_ih_l{k}  (4H, I if k == 0 else D*P)
    weight_hh_l{k}  (4H, P)
    bias_ih_l{k}    (4H,)
    bias_hh_l{k}    (4H,)
    weight_ci_l{k}, weight_cf_l{k}, weight_co_l{k}   (H,)   with peepholes (diagonal weights)
    weight_hr_l{k}  (P, H)        with a projection (torch's LSTMP)
    head.weight     (O, D*P)      (no head for the layer-only loss "upstream")
    head.bias       (O,)

each layer's parameters again with the suffix ``_reverse`` for the reverse direction, and the
differentiable inputs ``x`` (T, B, I), ``h0`` (L*D, B, P) and ``c0`` (L*D, B, H), state
k * D + d being layer k's direction d (torch's order). Element locations live in
:mod:`lstm_gradcheck.reference.locations`, other storage layouts in
:mod:`lstm_gradcheck.reference.converters`.

Note [Gate layout]
------------------
Every 4H-row array here (weights, biases, pre-activations, gates, their gradients)
stacks the gate blocks in torch's order i, f, g, o: row k belongs to gate GATES[k // H],
unit k % H. Nothing outside this module does that arithmetic: the reference, the oracles,
the report and the tests call :func:`gate_slice`, :func:`gate_blocks` or
:func:`row_to_gate_unit`, so a layout mistake can live in one place only.

Note [Interleaved gates]
------------------------
Some libraries (Chainer's lstm, code that reshapes z to (B, H, 4)) store the 4H axis unit
by unit: row k is unit k // 4, gate position k % 4. The gate-major layout of
Note [Gate layout] has that element at row (k % 4) * H + k // 4, whatever order the four
gate blocks are in, so one permutation converts either way (:func:`interleave`,
:func:`deinterleave`); a user's gate order applies within each unit's four rows.
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
    "interleave_rows",
    "interleave",
    "deinterleave",
    "weight_ih",
    "weight_hh",
    "bias_ih",
    "bias_hh",
    "weight_ci",
    "weight_cf",
    "weight_co",
    "weight_hr",
    "REVERSE",
    "direction_suffix",
    "state_index",
    "state_layer_direction",
    "layer_param_names",
    "direction_param_names",
    "param_names",
    "gradient_names",
    "model_gradient_names",
    "gradient_shapes",
    "param_shapes",
    "parse_name",
    "LSTM_PARAM_KINDS",
    "PEEPHOLE_KINDS",
    "PEEPHOLE_GATES",
    "PROJECTION_KIND",
    "LAYER_PARAM_KINDS",
    "is_lstm_param",
    "is_layer_param",
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


def interleave_rows(hidden_size: int) -> np.ndarray:
    """(4H,) int: for each row of the unit-major ("interleaved") layout, its row in the gate-major
    one, (k % 4) * H + k // 4 (Note [Interleaved gates])."""
    k = np.arange(4 * hidden_size)
    return (k % 4) * hidden_size + k // 4


def interleave(a: np.ndarray, hidden_size: int, axis: int = 0) -> np.ndarray:
    """``a`` with its gate-major 4H ``axis`` rearranged unit-major (Note [Interleaved gates]); a copy."""
    _check_gate_axis(a, hidden_size, axis)
    return np.take(a, interleave_rows(hidden_size), axis=axis)


def deinterleave(a: np.ndarray, hidden_size: int, axis: int = 0) -> np.ndarray:
    """The inverse of :func:`interleave`: a unit-major 4H ``axis`` back to gate blocks; a copy."""
    _check_gate_axis(a, hidden_size, axis)
    return np.take(a, np.argsort(interleave_rows(hidden_size)), axis=axis)


def _check_gate_axis(a: np.ndarray, hidden_size: int, axis: int) -> None:
    if np.shape(a)[axis] != 4 * hidden_size:
        raise ValueError(f"expected an axis of length 4*hidden_size = {4 * hidden_size}, got shape {np.shape(a)}")


# ----------------------------------------------------------------------------- names

#: The suffix of the reverse direction's parameter names (torch's).
REVERSE = "_reverse"


def direction_suffix(direction: int) -> str:
    """``""`` for the forward direction (0), ``"_reverse"`` for the reverse one (1)."""
    if direction not in (0, 1):
        raise ValueError(f"direction must be 0 (forward) or 1 (reverse), got {direction!r}")
    return REVERSE if direction else ""


def weight_ih(layer: int, direction: int = 0) -> str:
    return f"weight_ih_l{layer}{direction_suffix(direction)}"


def weight_hh(layer: int, direction: int = 0) -> str:
    return f"weight_hh_l{layer}{direction_suffix(direction)}"


def bias_ih(layer: int, direction: int = 0) -> str:
    return f"bias_ih_l{layer}{direction_suffix(direction)}"


def bias_hh(layer: int, direction: int = 0) -> str:
    return f"bias_hh_l{layer}{direction_suffix(direction)}"


def weight_ci(layer: int, direction: int = 0) -> str:
    """The input gate's peephole weights on c_{t-1}, (H,)."""
    return f"weight_ci_l{layer}{direction_suffix(direction)}"


def weight_cf(layer: int, direction: int = 0) -> str:
    """The forget gate's peephole weights on c_{t-1}, (H,)."""
    return f"weight_cf_l{layer}{direction_suffix(direction)}"


def weight_co(layer: int, direction: int = 0) -> str:
    """The output gate's peephole weights on c_t, (H,)."""
    return f"weight_co_l{layer}{direction_suffix(direction)}"


def weight_hr(layer: int, direction: int = 0) -> str:
    """The projection (P, H) of torch's LSTMP: h_t = W_hr (o_t * tanh(c_t))."""
    return f"weight_hr_l{layer}{direction_suffix(direction)}"


def state_index(layer: int, direction: int, num_directions: int) -> int:
    """The index of layer ``layer``'s direction ``direction`` in h0, c0, h_n, c_n: k * D + d (torch's)."""
    return layer * num_directions + direction


def state_layer_direction(index: int, num_directions: int) -> tuple[int, int]:
    """(layer, direction) of state index ``index`` (the inverse of :func:`state_index`)."""
    return divmod(int(index), num_directions)


def layer_param_names(layer: int, direction: int = 0) -> tuple[str, str, str, str]:
    """The four 4H-row parameter names of one layer's direction, in torch's order."""
    return tuple(name(layer, direction) for name in (weight_ih, weight_hh, bias_ih, bias_hh))  # type: ignore[return-value]


def direction_param_names(config: LSTMConfig, layer: int, direction: int = 0) -> tuple[str, ...]:
    """Every parameter name of one layer's direction: the four 4H-row tensors, then the peepholes
    (i, f, o) and the projection where ``config`` has them."""
    names = layer_param_names(layer, direction)
    if config.peepholes:
        names += (weight_ci(layer, direction), weight_cf(layer, direction), weight_co(layer, direction))
    if config.proj_size:
        names += (weight_hr(layer, direction),)
    return names


def param_names(num_layers: int, *, head: bool = True) -> tuple[str, ...]:
    """Every parameter name of a plain model with ``num_layers`` layers (and a head, if ``head``), in
    torch's order (:func:`param_shapes` names those of any config)."""
    names: list[str] = []
    for layer in range(num_layers):
        names.extend(layer_param_names(layer))
    return (*names, HEAD_WEIGHT, HEAD_BIAS) if head else tuple(names)


def gradient_names(num_layers: int, *, head: bool = True) -> tuple[str, ...]:
    """Every name an implementation of a plain model may return: the parameters, then x, h0, c0."""
    return (*param_names(num_layers, head=head), *STATE_INPUTS)


def model_gradient_names(config: LSTMConfig) -> tuple[str, ...]:
    """Every gradient name of ``config``'s model: its parameters (:func:`param_shapes`), then x, h0, c0."""
    return (*param_shapes(config), *STATE_INPUTS)


def param_shapes(config: LSTMConfig) -> dict[str, tuple[int, ...]]:
    """Shapes of every parameter of ``config``'s model, keyed by name in torch's order (layer by
    layer, the forward direction before the reverse; no head for the loss ``upstream``)."""
    hidden, width = config.hidden_size, config.h_size
    shapes: dict[str, tuple[int, ...]] = {}
    for layer in range(config.num_layers):
        fan_in = config.input_size if layer == 0 else config.top_width
        for direction in range(config.num_directions):
            shapes[weight_ih(layer, direction)] = (4 * hidden, fan_in)
            shapes[weight_hh(layer, direction)] = (4 * hidden, width)
            shapes[bias_ih(layer, direction)] = (4 * hidden,)
            shapes[bias_hh(layer, direction)] = (4 * hidden,)
            if config.peepholes:
                for name in (weight_ci, weight_cf, weight_co):
                    shapes[name(layer, direction)] = (hidden,)
            if config.proj_size:
                shapes[weight_hr(layer, direction)] = (width, hidden)
    if config.has_head:
        shapes[HEAD_WEIGHT] = (config.output_size, config.top_width)
        shapes[HEAD_BIAS] = (config.output_size,)
    return shapes


def gradient_shapes(config: LSTMConfig) -> dict[str, tuple[int, ...]]:
    """Shapes of every gradient an implementation may return (parameters, x, h0, c0)."""
    states = config.num_layers * config.num_directions
    return {
        **param_shapes(config),
        "x": (config.seq_len, config.batch_size, config.input_size),
        "h0": (states, config.batch_size, config.h_size),
        "c0": (states, config.batch_size, config.hidden_size),
    }


@dataclass(frozen=True)
class ParamName:
    """A parsed gradient name: ``kind`` is one of weight_ih, weight_hh, bias_ih, bias_hh,
    weight_ci, weight_cf, weight_co, weight_hr, head_weight, head_bias, x, h0, c0; ``layer``
    and ``direction`` (0 forward, 1 reverse) are set for a layer's parameters."""

    kind: str
    layer: int | None = None
    direction: int | None = None


#: The kinds of a layer's own 4H-row parameters, whose rows are gates.
LSTM_PARAM_KINDS: tuple[str, ...] = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
#: The peephole weights (H,) and the gate each feeds.
PEEPHOLE_KINDS: tuple[str, ...] = ("weight_ci", "weight_cf", "weight_co")
PEEPHOLE_GATES: Mapping[str, str] = {"weight_ci": "i", "weight_cf": "f", "weight_co": "o"}
#: The projection (P, H).
PROJECTION_KIND = "weight_hr"
#: Every kind of a layer's own parameters.
LAYER_PARAM_KINDS: tuple[str, ...] = (*LSTM_PARAM_KINDS, *PEEPHOLE_KINDS, PROJECTION_KIND)
_LAYER_PARAM = re.compile(r"^(" + "|".join(LAYER_PARAM_KINDS) + r")_l(\d+)(" + REVERSE + r")?$")


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
            f"unknown gradient name {name!r}: expected weight_ih_l<k>, weight_hh_l<k>, bias_ih_l<k>, "
            f"bias_hh_l<k>, weight_ci_l<k>, weight_cf_l<k>, weight_co_l<k>, weight_hr_l<k> (each also with "
            f"{REVERSE}), {HEAD_WEIGHT}, {HEAD_BIAS}, x, h0 or c0"
        )
    return ParamName(match.group(1), int(match.group(2)), 1 if match.group(3) else 0)


def is_lstm_param(name: str) -> bool:
    """True for a layer's 4H-row parameter (either direction): weight_ih_l{k} ... bias_hh_l{k}."""
    return parse_name(name).kind in LSTM_PARAM_KINDS


def is_layer_param(name: str) -> bool:
    """True for any parameter of a layer: the 4H-row tensors, the peepholes and the projection."""
    return parse_name(name).kind in LAYER_PARAM_KINDS
