"""Oracle ``screen``: complex-step directional probes over every tensor at once, searched on disagreement.

Note [Screen]
-------------
A probe compares ⟨g, v⟩ with the complex step along v (Note [Complex-step directions]), exact
to roundoff, and allows the tolerance rule summed along v plus both inner products' roundoff.
Each gate block and each other tensor owns one unit of that allowance, so an element of a small
tensor weighs as much as the largest weight's. On a failing probe the search narrows, a level per
forward: groups of tensors, one tensor, its gate blocks, rows, columns, down to one element. The
allowances add up, so a failing probe has a failing part and the element reached is over its own.

The screen judges every provided tensor at any size in a few forwards: SCREEN_DIRECTIONS
directions (:mod:`lstm_gradcheck.oracles.screen_blocks`) run as copies of one forward; x is
narrowed by step, then row, then feature. A failing tensor small enough for the budget gets the
full complex step of every element instead of the search.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from lstm_gradcheck.oracles import cost
from lstm_gradcheck.oracles.batched_forward import Base, prepare
from lstm_gradcheck.oracles.compare import compare_tensor
from lstm_gradcheck.oracles.complex_step import complex_step_gradient
from lstm_gradcheck.oracles.directions import tensor_names
from lstm_gradcheck.oracles.judging import JudgingContext
from lstm_gradcheck.oracles.records import MISMATCH, NOT_PROVIDED, OK, CheckResult, TensorResult
from lstm_gradcheck.oracles.screen_blocks import Box, balanced, box_values, random_parts, restrict, top_boxes
from lstm_gradcheck.oracles.tangent_forward import Tangent, start_layer, tangent_losses
from lstm_gradcheck.oracles.tolerance import Tolerance
from lstm_gradcheck.oracles.types import FAIL, JUDGE, PASS, LossFn, OracleAbstains, OracleReport, OracleSpec
from lstm_gradcheck.reference.config import LSTMConfig
from lstm_gradcheck.reference.layout import parse_name

__all__ = ["SCREEN_DIRECTIONS", "SPLIT", "ROUNDOFF_ULPS", "Probe", "screen_judge", "SCREEN"]

SCREEN_DIRECTIONS = 2
#: Parts each failing group or block is cut into per level of the search (one forward per level).
SPLIT = 4
#: Each inner product's roundoff: at most this many eps times the sum of its terms' sizes.
ROUNDOFF_ULPS = 64.0
_EPS = float(np.finfo(np.float64).eps)


@dataclass(frozen=True)
class Probe:
    """One probe: its boxes and direction, ⟨g, v⟩, the complex step's value, and what it allows."""

    boxes: tuple[Box, ...]
    direction: int
    analytic: float
    numeric: float
    allowed: float
    weight: float  # sum |v_i| over the boxes

    @property
    def error(self) -> float:
        return abs(self.analytic - self.numeric)

    @property
    def ratio(self) -> float:
        if self.allowed > 0:
            return self.error / self.allowed
        return 0.0 if self.error == 0 else math.inf

    @property
    def ok(self) -> bool:
        return self.error <= self.allowed  # a NaN is never ok

    @property
    def element_error(self) -> float:
        """A lower bound on the largest element's error: |⟨g - ∇L, v⟩| <= max |g_i - ∂_i L| sum |v_i|."""
        return self.error / self.weight if self.weight > 0 else 0.0


class _Screen:
    """One judgment's fixed facts: the case, gradients, rule, directions and a clock."""

    def __init__(self, context: JudgingContext, grads: Mapping[str, np.ndarray], names, seconds: float | None):
        self.context, self.case = context, context.case
        self.grads = {n: np.asarray(grads[n], dtype=np.float64) for n in names}
        self.tolerance: Tolerance = context.tolerance(self.grads)
        self.scale = {n: float(np.max(np.abs(g), initial=0.0)) for n, g in self.grads.items()}
        self.allowed = {n: self.tolerance.allowed(n, self.scale[n]) for n in names}
        self.deadline = time.perf_counter() + (cost.MAX_SECONDS if seconds is None else seconds)
        self.forwards = 0
        self.base: Base = prepare(context.exact_case)
        self.speed = cost.SPEED
        boxes = top_boxes(self.case, names)
        self.tangents = []
        for d in range(SCREEN_DIRECTIONS):
            parts = random_parts(self.case, names, d)
            weights = {}
            for box in boxes:
                size = float(np.sum(np.abs(box_values(self.case, parts[box.name], box))))
                allowed = self.allowed[box.name]
                weights[box] = 1.0 / (size * allowed) if allowed > 0 else 1.0 / size
            self.tangents.append(balanced(self.case, parts, weights))

    def affordable(self, copies: int, first_layer: int) -> bool:
        estimate = self.speed.seconds(cost.tangent_work(self.case.config, copies, first_layer))
        return time.perf_counter() + estimate <= self.deadline

    def measure(self, asked: Sequence[tuple[int, tuple[Box, ...]]]) -> list[Probe]:
        """Probes (direction, boxes), all in one forward."""
        restricted: list[Tangent] = [restrict(self.case, self.tangents[d], boxes) for d, boxes in asked]
        started = time.perf_counter()
        numeric = tangent_losses(self.base, restricted)
        self.forwards += len(asked)
        if self.forwards == len(asked):  # the first forward tells how fast this machine is now
            layer = min(start_layer(self.case.config, t) for t in restricted)
            self.speed = cost.calibrated(
                time.perf_counter() - started, cost.tangent_work(self.case.config, len(asked), layer)
            )
        exact = self.context.exact_grads
        out = []
        for (d, boxes), value in zip(asked, numeric, strict=True):
            analytic = allowed = weight = roundoff = 0.0
            for box in boxes:
                v = box_values(self.case, self.tangents[d][box.name], box)
                g = self.grads[box.name][box.slices]
                analytic += float(np.sum(g * v))
                size = float(np.sum(np.abs(v)))
                weight += size
                allowed += size * self.allowed[box.name]
                roundoff += float(np.sum((np.abs(g) + np.abs(np.asarray(exact[box.name])[box.slices])) * np.abs(v)))
            out.append(
                Probe(tuple(boxes), d, analytic, float(value), allowed + ROUNDOFF_ULPS * _EPS * roundoff, weight)
            )
        return out

    def first_layer(self, boxes: Sequence[Box]) -> int:
        """The lowest layer any of ``boxes`` moves (the forward starts there)."""
        cfg = self.case.config
        layers = [cfg.num_layers]
        for box in boxes:
            kind, layer = parse_name(box.name).kind, parse_name(box.name).layer
            layers.append(
                0 if kind == "x" else box.lo[0] if kind in ("h0", "c0") else cfg.num_layers if layer is None else layer
            )
        return min(layers)


def _parts(items: Sequence, parts: int) -> list[list]:
    step = -(-len(items) // parts)
    return [list(items[k : k + step]) for k in range(0, len(items), step)]


def _search_tensors(screen: _Screen, probe: Probe, names: Sequence[str]) -> tuple[dict[str, Probe], list[str]]:
    """Split the failing probe's tensors until each failing part is one tensor.

    Returns each failing tensor's probe, and the tensors of failing groups the budget left unsplit."""
    boxes = {n: [b for b in probe.boxes if b.name == n] for n in names}
    pending: list[list[str]] = [list(names)]
    failing: dict[str, Probe] = {}
    if len(names) == 1:
        return {names[0]: probe}, []
    while pending:
        groups = [part for group in pending for part in _parts(group, SPLIT)]
        asked = [(probe.direction, tuple(b for n in g for b in boxes[n])) for g in groups]
        if not screen.affordable(len(asked), screen.first_layer([b for _, bs in asked for b in bs])):
            return failing, [n for g in pending for n in g]
        pending = []
        for group, p in zip(groups, screen.measure(asked), strict=True):
            if p.ok:
                continue
            if len(group) == 1:
                failing[group[0]] = p
            else:
                pending.append(group)
    return failing, []


def _worst(asked: Sequence[tuple[int, tuple[Box, ...]]], probes: Sequence[Probe]) -> dict[str, Probe]:
    """Per tensor, the probe with the largest error over its allowance."""
    best: dict[str, Probe] = {}
    for (_, (box,)), p in zip(asked, probes, strict=True):
        if box.name not in best or p.ratio > best[box.name].ratio:
            best[box.name] = p
    return best


def _locate(screen: _Screen, failing: Mapping[str, Probe]) -> dict[str, Probe]:
    """Per failing tensor, the finest failing probe the budget reaches: its worst gate block, then
    its rows, columns (x: steps, rows, features), a SPLIT-th at a time, down to one element."""
    current = dict(failing)
    split = {n: top_boxes(screen.case, [n]) for n in failing}
    while split:
        asked = [(current[n].direction, (part,)) for n, parts in split.items() for part in parts]
        if not screen.affordable(len(asked), screen.first_layer([b for _, (b,) in asked])):
            break
        best = _worst(asked, screen.measure(asked))
        split = {}
        for name, p in best.items():
            if p.ok:  # no part over its allowance: only roundoff can do that; stop at this level
                continue
            current[name] = p
            if p.boxes[0].size > 1:
                split[name] = list(p.boxes[0].split(SPLIT))
    return current


def _record(screen: _Screen, name: str, probe: Probe | None, status: str) -> TensorResult:
    size = int(screen.grads[name].size)
    scale, allowed = screen.scale[name], screen.allowed[name]
    if probe is None:
        return TensorResult(name, status, "screen", scale=scale, allowed=allowed, size=size)
    box = probe.boxes[0]
    hidden = screen.case.config.hidden_size
    err = probe.element_error
    element = box.size == 1
    return TensorResult(
        name=name,
        status=status,
        oracle="screen",
        max_abs_err=err,
        max_rel_err=err / scale if scale > 0 else (0.0 if err == 0 else math.inf),
        scale=scale,
        allowed=probe.allowed / probe.weight if probe.weight > 0 else allowed,
        bad=1 if status == MISMATCH else 0,
        size=size,
        worst=box.location(hidden),
        analytic_value=probe.analytic / probe.weight if element else math.nan,
        oracle_value=probe.numeric / probe.weight if element else math.nan,
        worst_ratio=probe.ratio,
    )


def screen_judge(
    context: JudgingContext,
    loss: float | None,
    grads: Mapping[str, np.ndarray],
    loss_fn: LossFn | None = None,
    *,
    seconds: float | None = None,
) -> OracleReport:
    """Judge ``grads`` by the screen (Note [Screen]), its search stopping at the finest level
    ``seconds`` allows (None: :data:`lstm_gradcheck.oracles.cost.MAX_SECONDS`)."""
    if loss_fn is not None:
        raise OracleAbstains("the screen differentiates the contract's model only, not another loss function")
    case = context.case
    names = [n for n in tensor_names(case) if n in grads]
    screen = _Screen(context, grads, names, seconds)
    ill = [n for n in names if screen.tolerance.ill_conditioned(n, screen.scale[n])]
    judged = [n for n in names if n not in ill]
    records: dict[str, TensorResult] = {}
    for n in tensor_names(case):
        if n not in grads:
            records[n] = TensorResult(n, NOT_PROVIDED, "screen", size=int(np.size(case.arrays()[n])))
        elif n in ill:
            records[n] = TensorResult(n, OK, "screen", scale=screen.scale[n], ill_conditioned=True, size=grads[n].size)
    blocks = len(top_boxes(case, judged))
    summary = [f"{SCREEN_DIRECTIONS} complex-step directions over {len(judged)} tensors ({blocks} blocks)"]
    failing_summary: list[str] = []
    verdict = PASS
    if judged:
        top = screen.measure([(d, tuple(top_boxes(case, judged))) for d in range(SCREEN_DIRECTIONS)])
        summary[0] += f", largest error {max(p.ratio for p in top):.2g} of the allowance"
        bad = [p for p in top if not p.ok]
        for n in judged:
            records[n] = _record(screen, n, None, OK)
        if bad:
            verdict = FAIL
            worst = max(bad, key=lambda p: p.ratio)
            failing, unsplit = _search_tensors(screen, worst, judged)
            if unsplit:
                failing_summary.append(
                    f"a probe over {', '.join(unsplit)} fails; the budget ended before it was narrowed"
                )
                for n in unsplit:
                    records.pop(n, None)
            full = _full_checks(screen, list(failing))
            located = _locate(screen, {n: p for n, p in failing.items() if n not in full})
            for n in failing:
                records[n] = full[n] if n in full else _record(screen, n, located[n], MISMATCH)
            failing_summary.append("failing: " + ", ".join(_where(records[n], n in full) for n in failing))
    summary += failing_summary
    ordered = tuple(records[n] for n in tensor_names(case) if n in records)
    check = CheckResult("screen", screen.tolerance, None, ordered)
    details = {"directions": SCREEN_DIRECTIONS, "forwards": screen.forwards, "summary": "; ".join(summary)}
    return OracleReport("screen", verdict, 0.0, screen.forwards, check, details=details)


def _where(record: TensorResult, every: bool) -> str:
    """One failing tensor as the summary names it, with how far it was located."""
    where = record.worst.describe() if record.worst is not None else record.name
    if every:
        return f"{where} ({record.bad} of {record.size} elements over, every element checked)"
    if record.worst is not None and record.worst.index:
        return f"{where} (one element located by the search)"
    return f"{where} (the budget ended before one element was located)"


def _full_checks(screen: _Screen, names: Sequence[str]) -> dict[str, TensorResult]:
    """The complex step of every element of each failing tensor that fits in half the time left:
    the element-level verdict (every element judged, the worst located)."""
    out = {}
    cfg = screen.case.config
    for name in names:
        estimate = screen.speed.seconds(cost.full_check_work(cfg, "complex-step", [name]))
        if time.perf_counter() + 2.0 * estimate > screen.deadline:
            continue
        answer = complex_step_gradient(screen.context.exact_case, [name], base=screen.base)
        screen.forwards += answer.forward_passes
        out[name] = compare_tensor(
            name, screen.grads[name], answer.grads[name], screen.tolerance, cfg.hidden_size, "screen"
        )
    return out


def screen_unfit(config: LSTMConfig) -> str | None:
    """The tangent forward runs the plain LSTM only."""
    if config.is_plain:
        return None
    return "its tangent forward runs the plain LSTM only (the family's settings are judged by the other oracles)"


SCREEN = OracleSpec(
    "screen",
    "complex-step directional probes over every tensor and gate block at once, each weighted alike; "
    "a failing probe is searched down to the element",
    kind=JUDGE,
    precedence=7,
    judge=screen_judge,
    unfit=screen_unfit,
    takes_seconds=True,
)
