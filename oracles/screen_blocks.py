"""The screen's blocks and its scale-balanced random directions.

A block is a box of one tensor's elements: at the screen's top, each gate block of a 4H-row
tensor and each other tensor whole; below, the halves and quarters the search cuts them into
(Note [Screen]). A direction draws random values r (signs times U(0.5, 1.5), seeded by the
case, the tensor and the direction's number), rank one for the weights and x (so the forward
needs no GEMM per copy for them), and weights each top block by 1 / (allowed_T sum |r|): every
block then owns one unit of the probe's allowance, whatever its size or scale.
"""

from __future__ import annotations

import itertools
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from lstm_gradcheck.oracles.tangent_forward import Outer, Part, Tangent, dense_part
from lstm_gradcheck.reference.case import Case
from lstm_gradcheck.reference.layout import (
    GATES,
    gate_slice,
    gradient_shapes,
    is_lstm_param,
    parse_name,
    row_to_gate_unit,
    rows_to_gate_units,
)
from lstm_gradcheck.reference.locations import Location, locate

__all__ = ["Box", "top_boxes", "random_parts", "balanced", "restrict", "box_values"]


@dataclass(frozen=True)
class Box:
    """Elements ``lo[a] <= index[a] < hi[a]`` of tensor ``name`` (every axis)."""

    name: str
    lo: tuple[int, ...]
    hi: tuple[int, ...]

    @property
    def size(self) -> int:
        return int(np.prod([h - lo for lo, h in zip(self.lo, self.hi, strict=True)]))

    @property
    def slices(self) -> tuple[slice, ...]:
        return tuple(slice(lo, h) for lo, h in zip(self.lo, self.hi, strict=True))

    def split(self, parts: int) -> tuple[Box, ...]:
        """Up to ``parts`` boxes cutting the first axis longer than one (rows, then columns; x by
        step, then batch row, then feature): the search's next level."""
        axis = next((a for a, (lo, h) in enumerate(zip(self.lo, self.hi, strict=True)) if h - lo > 1), None)
        if axis is None:
            return (self,)
        edges = np.unique(np.linspace(self.lo[axis], self.hi[axis], parts + 1).round().astype(int))
        out = []
        for a, b in itertools.pairwise(edges):
            out.append(
                Box(
                    self.name,
                    (*self.lo[:axis], int(a), *self.lo[axis + 1 :]),
                    (*self.hi[:axis], int(b), *self.hi[axis + 1 :]),
                )
            )
        return tuple(out)

    def gate(self, hidden: int) -> str | None:
        """The gate block holding every row of the box (a 4H-row tensor), else None."""
        if not is_lstm_param(self.name):
            return None
        first, last = (row_to_gate_unit(r, hidden)[0] for r in (self.lo[0], self.hi[0] - 1))
        return first if first == last else None

    def location(self, hidden: int) -> Location:
        """The box in LSTM terms: its element when it holds one, else its tensor and gate."""
        if self.size == 1:
            return locate(self.name, self.lo, hidden)
        return Location(self.name, (), layer=parse_name(self.name).layer, gate=self.gate(hidden))


def top_boxes(case: Case, names: Sequence[str]) -> list[Box]:
    """The screen's blocks: each gate block of a 4H-row tensor, every other tensor whole."""
    shapes = gradient_shapes(case.config)
    hidden = case.config.hidden_size
    out = []
    for name in names:
        shape = shapes[name]
        if is_lstm_param(name):
            for gate in GATES:
                rows = gate_slice(gate, hidden)
                out.append(Box(name, (rows.start, *(0,) * (len(shape) - 1)), (rows.stop, *shape[1:])))
        else:
            out.append(Box(name, (0,) * len(shape), tuple(shape)))
    return out


def _values(rng: np.random.Generator, shape) -> np.ndarray:
    """±U(0.5, 1.5): random signs and sizes, never near zero, never all alike."""
    return rng.choice([-1.0, 1.0], size=shape) * rng.uniform(0.5, 1.5, size=shape)


def random_parts(case: Case, names: Sequence[str], direction: int) -> dict[str, Part]:
    """Direction number ``direction``'s raw values over ``names``, seeded by the case, tensor and number."""
    seed = 0 if case.seed is None else int(case.seed) & 0xFFFFFFFF
    shapes = gradient_shapes(case.config)
    out: dict[str, Part] = {}
    for name in names:
        rng = np.random.default_rng([zlib.crc32(b"screen"), seed, zlib.crc32(name.encode()), direction])
        shape = shapes[name]
        kind = parse_name(name).kind
        if kind in ("weight_ih", "weight_hh"):
            out[name] = Outer(_values(rng, shape[0]), _values(rng, (len(GATES), shape[1])))
        elif kind == "x":
            out[name] = Outer(_values(rng, shape[:2]), _values(rng, shape[2]))
        else:
            out[name] = _values(rng, shape)
    return out


def box_values(case: Case, part: Part, box: Box) -> np.ndarray:
    """The direction's values on the box's elements (dense, the box's shape)."""
    return dense_part(gradient_shapes(case.config)[box.name], part)[box.slices]


def balanced(case: Case, parts: Mapping[str, Part], weights: Mapping[Box, float]) -> Tangent:
    """``parts`` with every top box's values times its weight (the boxes tile their tensors)."""
    hidden = case.config.hidden_size
    out: dict[str, Part] = {}
    for name, part in parts.items():
        boxes = [b for b in weights if b.name == name]
        if isinstance(part, Outer) and parse_name(name).kind == "x":
            (box,) = boxes
            out[name] = Outer(part.p * weights[box], part.q)
        elif isinstance(part, Outer):  # the gate boxes of a weight: scale p's rows
            p = part.p.copy()
            for box in boxes:
                p[gate_slice(box.gate(hidden), hidden)] *= weights[box]
            out[name] = Outer(p, part.q)
        else:
            v = np.array(part, dtype=np.float64)
            for box in boxes:
                v[box.slices] *= weights[box]
            out[name] = v
    return out


def restrict(case: Case, tangent: Mapping[str, Part], boxes: Sequence[Box]) -> Tangent:
    """The tangent on ``boxes`` only (zero elsewhere). An Outer tensor takes whole gate boxes
    (all columns) or a single box."""
    hidden = case.config.hidden_size
    shapes = gradient_shapes(case.config)
    out: dict[str, Part] = {}
    for name in dict.fromkeys(b.name for b in boxes):
        mine = [b for b in boxes if b.name == name]
        part = tangent[name]
        if isinstance(part, Outer):
            out[name] = _restrict_outer(part, mine, shapes[name], hidden)
        else:
            v = np.zeros(shapes[name])
            for box in mine:
                v[box.slices] = np.asarray(part)[box.slices]
            out[name] = v
    return out


def _restrict_outer(part: Outer, boxes: Sequence[Box], shape: tuple[int, ...], hidden: int) -> Outer:
    if len(shape) == 3:  # x: p over (step, row), q over features
        (box,) = boxes
        p, q = np.zeros_like(part.p), np.zeros_like(part.q)
        p[box.slices[:2]] = part.p[box.slices[:2]]
        q[box.slices[2]] = part.q[box.slices[2]]
        return Outer(p, q)
    p, q = np.zeros_like(part.p), np.zeros_like(part.q)
    whole = all(b.lo[1] == 0 and b.hi[1] == shape[1] for b in boxes)
    if not whole and len(boxes) > 1:
        raise ValueError("restrict: a weight takes whole gate boxes or a single box")
    for box in boxes:
        p[box.slices[0]] = part.p[box.slices[0]]
        for k in np.unique(rows_to_gate_units(np.arange(box.lo[0], box.hi[0]), hidden)[0]):
            q[k, box.slices[1]] = part.q[k, box.slices[1]]
    return Outer(p, q)
