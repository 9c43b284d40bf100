"""Where one element of a gradient sits, in LSTM terms: tensor, layer, direction, gate, unit, column, step."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from lstm_gradcheck.reference.layout import (
    GATE_NAMES,
    LSTM_PARAM_KINDS,
    PEEPHOLE_GATES,
    PROJECTION_KIND,
    parse_name,
    row_to_gate_unit,
    state_layer_direction,
)

if TYPE_CHECKING:
    from lstm_gradcheck.reference.config import LSTMConfig

__all__ = ["Location", "locate"]

#: What each peephole weight multiplies (Gers et al.: c_{t-1} for the input and forget gates, c_t for the output).
_PEEPHOLE_SOURCE = {"i": "c[t-1]", "f": "c[t-1]", "o": "c[t]"}


@dataclass(frozen=True)
class Location:
    """Where one element of a gradient sits, in LSTM terms.

    ``gate``/``unit`` for rows of 4H arrays, for peephole weights (their gate, the
    cell unit) and for h0/c0 (unit only); ``unit`` is the output index for the head
    and the cell unit for the projection, whose row (the unit of h it feeds) is
    ``projection_row``; ``column`` names the input feeding a weight column (``"x[j]"``,
    ``"h[j]"``, ``"h_reverse[j]"`` for the reverse half of a bidirectional layer's
    output, ``"c[t-1]"`` for a peephole) or the feature of ``x``; ``direction`` is
    1 for the reverse direction (0 forward, None where it does not apply); ``step``
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
    direction: int | None = None
    projection_row: int | None = None

    def describe(self) -> str:
        """A one-line human description, e.g. ``weight_hh_l0[forget gate, unit 5, h[2]]``."""
        parts: list[str] = []
        if self.step is not None:
            parts.append(f"step {self.step}")
        if self.batch is not None:
            parts.append(f"batch {self.batch}")
        if self.tensor in ("h0", "c0") and self.direction == 1:
            parts.append(f"layer {self.layer} reverse")
        if self.projection_row is not None:
            parts.append(f"projection row {self.projection_row}")
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
            "direction": self.direction,
            "projection_row": self.projection_row,
        }


def _output_column(col: int, width: int, directions: int) -> str:
    """The element of a layer's output (both directions concatenated, each ``width`` wide)."""
    if directions == 2 and col >= width:
        return f"h_reverse[{col - width}]"
    return f"h[{col}]"


def locate(name: str, index: tuple[int, ...], hidden_size: int | LSTMConfig) -> Location:
    """Translate an element ``index`` of gradient ``name`` into LSTM terms.

    ``hidden_size`` is the case's config (or, for a plain LSTM, its hidden size alone):
    the width of h and the number of directions name the columns and the states."""
    if isinstance(hidden_size, int):
        hidden, width, directions = hidden_size, hidden_size, 1
    else:
        hidden, width, directions = hidden_size.hidden_size, hidden_size.h_size, hidden_size.num_directions
    parsed = parse_name(name)
    index = tuple(int(i) for i in index)
    kind, layer, direction = parsed.kind, parsed.layer, parsed.direction
    if kind in ("weight_ih", "weight_hh"):
        row, col = index
        gate, unit = row_to_gate_unit(row, hidden)
        if kind == "weight_ih" and layer == 0:
            column = f"x[{col}]"
        else:
            column = _output_column(col, width, directions if kind == "weight_ih" else 1)
        return Location(name, index, layer=layer, gate=gate, unit=unit, column=column, direction=direction)
    if kind in LSTM_PARAM_KINDS:  # the biases
        gate, unit = row_to_gate_unit(index[0], hidden)
        return Location(name, index, layer=layer, gate=gate, unit=unit, direction=direction)
    if kind in PEEPHOLE_GATES:
        gate = PEEPHOLE_GATES[kind]
        return Location(name, index, layer=layer, gate=gate, unit=index[0], column=_PEEPHOLE_SOURCE[gate],
                        direction=direction)  # fmt: skip
    if kind == PROJECTION_KIND:
        row, unit = index
        return Location(name, index, layer=layer, unit=unit, direction=direction, projection_row=row)
    if kind == "head_weight":
        out, col = index
        return Location(name, index, unit=out, column=_output_column(col, width, directions))
    if kind == "head_bias":
        return Location(name, index, unit=index[0])
    if kind == "x":
        step, batch, col = index
        return Location(name, index, layer=0, column=f"x[{col}]", step=step, batch=batch)
    # h0 / c0: (layer * D + direction, batch, unit); they enter before the direction's first step.
    state, batch, unit = index
    lay, state_direction = state_layer_direction(state, directions)
    return Location(name, index, layer=lay, unit=unit, batch=batch, direction=state_direction)
