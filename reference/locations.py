"""Where one element of a gradient sits, in LSTM terms: tensor, layer, gate, unit, column, step."""

from __future__ import annotations

from dataclasses import dataclass

from lstm_gradcheck.reference.layout import GATE_NAMES, parse_name, row_to_gate_unit

__all__ = ["Location", "locate"]


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
