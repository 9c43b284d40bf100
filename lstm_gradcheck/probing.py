"""Support probing: find, on tiny cases, the regions of the search space an implementation supports.

Before a search, the implementation is called on tiny cases. A call that raises
``NotImplementedError`` says "not supported"; anything else (a result, a crash, a
malformed return) says "supported", so the search then reports the crash as a finding.
Values added after contract v1 (the loss ``upstream``) are the exception: code written for
v1 may not know them, so they count as supported only when the implementation returns a
valid result on them, or when it supports no v1 value of that setting (then a crash on
them is its failure, reported as such). The LSTM family's settings (peepholes, proj_size,
bidirectional, coupled) ask more: code written for v1 ignores them and still returns a valid
result, so they count as supported only where the implementation's loss agrees with the
exact loss (it computes the setting's forward). See Note [Probing order].

Note [Probing order]
--------------------
A base is found first: the first supported combination of the categorical settings at
sizes 2 (then batch 1, then also one step), the LSTM family's off, then each family
setting on alone (for code written only for it). With the base's other settings, a grid is
probed whole: batch 1 or 2, one step or two, one layer or two, h0 and c0 random or zero,
so no size or state is ruled out because of another. The supported cells are covered by
maximal boxes, the regions the search draws from; in each, every other setting, lengths,
a nonzero forget_bias, a projection and a third layer are tried from the region's simplest cell.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

from lstm_gradcheck.implementation import FAILED, OK, UNSUPPORTED, Implementation
from lstm_gradcheck.oracles.judging import judging_context
from lstm_gradcheck.properties.strategies import DEFAULT_SPACE, CaseSpace
from lstm_gradcheck.reference.case import make_case
from lstm_gradcheck.reference.config import CHOICES, FAMILY_FIELDS, V1_CHOICES, CaseError, LSTMConfig

__all__ = ["PROBE_SIZES", "FALLBACK_SIZES", "GRID", "Support", "supported_space"]

PROBE_SIZES = {"input_size": 2, "hidden_size": 2, "output_size": 2, "seq_len": 2, "batch_size": 2, "num_layers": 1}
#: Tried in this order when every setting is refused at PROBE_SIZES (Note [Probing order]).
FALLBACK_SIZES: tuple[dict[str, int], ...] = ({}, {"batch_size": 1}, {"batch_size": 1, "seq_len": 1})
#: The grid's settings and the values probed for each (Note [Probing order]); 2 stands for "2 or more".
GRID: tuple[tuple[str, tuple[object, ...]], ...] = (
    ("batch_size", (1, 2)),
    ("seq_len", (1, 2)),
    ("num_layers", (1, 2)),
    ("h0", CHOICES["h0"]),
    ("c0", CHOICES["c0"]),
)
_GRID_NAMES = tuple(name for name, _ in GRID)
#: At most this many distinct refusal messages are kept for the "nothing checked" message.
_MAX_REFUSALS = 3

Cell = tuple[object, ...]
Box = tuple[tuple[object, ...], ...]


@dataclass(frozen=True)
class Support:
    """What probing found: the regions of the space the implementation supports (``spaces``,
    the simplest first), ``notes`` saying what was narrowed, ``found`` (some probe was
    supported) and the implementation's own words when it refused (distinct
    ``NotImplementedError`` messages, for a "nothing checked" verdict)."""

    spaces: tuple[CaseSpace, ...]
    notes: tuple[str, ...]
    found: bool
    refusals: tuple[str, ...] = ()


class _LostWorker(Exception):
    """A probe hung or ended the implementation's process: probing stops there."""


class _Prober:
    """Calls the implementation on tiny cases, remembering each answer and its refusals."""

    def __init__(self, impl: Implementation) -> None:
        self.impl = impl
        self.refusals: list[str] = []
        self._seen: dict[tuple, str] = {}

    def status(self, config: LSTMConfig, lengths: list[int] | None = None) -> str:
        key = (config, None if lengths is None else tuple(lengths))
        if key not in self._seen:
            outcome = self.impl.call(make_case(config, seed=0, lengths=lengths))
            if outcome.lost_worker:
                raise _LostWorker(outcome.error)
            if outcome.status == UNSUPPORTED and outcome.error and len(self.refusals) < _MAX_REFUSALS:
                if outcome.error not in self.refusals:
                    self.refusals.append(outcome.error)
            self._seen[key] = outcome.status
        return self._seen[key]

    def supports(self, config: LSTMConfig, lengths: list[int] | None = None) -> bool:
        return self.status(config, lengths) != UNSUPPORTED

    def computes(self, config: LSTMConfig) -> bool:
        """A valid result whose loss agrees with the exact loss under the tolerance rule: what a
        setting of the LSTM family needs to count as supported (code written for v1 ignores them)."""
        case = make_case(config, seed=0)
        outcome = self.impl.call(case)
        if outcome.lost_worker:
            raise _LostWorker(outcome.error)
        if outcome.status != OK:
            return False
        context = judging_context(case)
        if context.unjudgeable is not None:
            return False
        allowed = context.tolerance(context.exact_grads).allowed_loss(context.exact_loss)
        return abs(float(outcome.loss) - context.exact_loss) <= allowed


def _config(**fields: object) -> LSTMConfig | None:
    try:
        return LSTMConfig(**fields)
    except CaseError:
        return None  # e.g. upstream with reduction mean: not a case at all


def _is_extension(name: str, value: object) -> bool:
    return value not in V1_CHOICES[name]


def _family_passes(space: CaseSpace) -> list[dict[str, object]]:
    """The family settings a base is searched with: all off first (a v1 base, at v1's cost), then
    each one alone, for code written only for it (a peephole library)."""
    passes: list[dict[str, object]] = [{}]
    passes += [{name: True} for name in FAMILY_FIELDS if name != "proj_size" and True in getattr(space, name)]
    return passes + ([{"proj_size": 1}] if space.with_projection else [])


def _find_base(prober: _Prober, space: CaseSpace) -> LSTMConfig | None:
    """The first supported combination (Note [Probing order]); an extension value counts only
    with a valid result (a family setting only with the right loss), but one that crashes is kept
    as the last resort."""
    fallback = None
    choices = {name: getattr(space, name) for name in CHOICES if name not in FAMILY_FIELDS}
    # A family pass varies the initial states only, the other settings at their simplest: code
    # written for one family setting takes the simplest v1 settings, and every combination again
    # per pass would cost thousands of calls for code that refuses everything.
    simplest = {name: values if name in ("h0", "c0") else values[:1] for name, values in choices.items()}
    for family in _family_passes(space):
        for sizes in FALLBACK_SIZES:
            for combo in itertools.product(*(simplest if family else choices).values()):
                fields = dict(zip(choices, combo, strict=True))
                config = _config(**{**PROBE_SIZES, **sizes}, **fields, **family, forget_bias=0.0)
                if config is None:
                    continue
                status = prober.status(config)
                if family:
                    if status == OK and prober.computes(config):
                        return config
                    continue
                extension = any(_is_extension(name, value) for name, value in fields.items())
                if status == OK or (status == FAILED and not extension):
                    return config
                if status == FAILED and fallback is None:
                    fallback = config
        if fallback is not None:
            break
    return fallback


def _grid_values(space: CaseSpace) -> tuple[tuple[object, ...], ...]:
    """The grid's values that ``space`` allows (batch, steps, layers, h0, c0)."""

    def classes(low: int, high: int) -> tuple[int, ...]:  # 1 stands for itself, 2 for "2 or more"
        return tuple(v for v, ok in ((1, low <= 1), (2, high >= 2)) if ok)

    allowed = {
        "batch_size": classes(space.min_batch, space.max_batch),
        "seq_len": classes(space.min_seq, space.long_seq),
        "num_layers": classes(space.min_layers, space.max_layers),
        "h0": space.h0,
        "c0": space.c0,
    }
    return tuple(allowed[name] for name in _GRID_NAMES)


def _regions(supported: set[Cell], values: Sequence[tuple[object, ...]]) -> list[Box]:
    """Maximal boxes of supported cells covering them all, greedily, the simplest first."""
    subsets = [[c for r in range(1, len(v) + 1) for c in itertools.combinations(v, r)] for v in values]
    boxes = [box for box in itertools.product(*subsets) if all(cell in supported for cell in itertools.product(*box))]
    maximal = [b for b in boxes if not any(o != b and _within(b, o) for o in boxes)]
    chosen: list[Box] = []
    covered: set[Cell] = set()
    while covered != supported:
        best = max(maximal, key=lambda b: len(set(itertools.product(*b)) - covered))
        chosen.append(best)
        covered |= set(itertools.product(*best))
    order = {cell: k for k, cell in enumerate(itertools.product(*values))}
    return sorted(chosen, key=lambda b: min(order[c] for c in itertools.product(*b)))


def _within(inner: Box, outer: Box) -> bool:
    return all(set(a) <= set(b) for a, b in zip(inner, outer, strict=True))


def _cell_config(base: LSTMConfig, cell: Cell, **more: object) -> LSTMConfig:
    return base.replace(**{**dict(zip(_GRID_NAMES, cell, strict=True)), **more})


def _region_space(space: CaseSpace, box: Box, layers: int) -> CaseSpace:
    batch, steps, depth, h0, c0 = (set(v) for v in box)
    changes: dict[str, object] = {
        "h0": tuple(v for v in space.h0 if v in h0),
        "c0": tuple(v for v in space.c0 if v in c0),
    }
    if batch == {1}:
        changes.update(min_batch=1, max_batch=1)
    elif batch == {2}:
        changes["min_batch"] = max(2, space.min_batch)
    if steps == {1}:
        changes.update(min_seq=1, short_seq=1, long_seq=1, with_lengths=False)
    elif steps == {2}:
        changes["min_seq"] = max(2, space.min_seq)
    changes["max_layers"] = 1 if depth == {1} else layers
    if depth == {2}:
        changes["min_layers"] = max(2, space.min_layers)
    return space.restrict(**changes)


def _box_notes(space: CaseSpace, region: CaseSpace) -> list[str]:
    """What a region narrows, relative to the space asked for."""
    notes = []
    for name in CHOICES:
        if getattr(region, name) != getattr(space, name):
            notes.append(f"{name}: only {', '.join(map(str, getattr(region, name)))}")
    if region.max_batch == 1 and space.max_batch > 1:
        notes.append("batch_size: only 1")
    elif region.min_batch > space.min_batch:
        notes.append(f"batch_size: from {region.min_batch}")
    if region.long_seq == 1 and space.long_seq > 1:
        notes.append("seq_len: only 1")
    elif region.min_seq > space.min_seq:
        notes.append(f"seq_len: from {region.min_seq}")
    if region.min_layers > space.min_layers:
        notes.append(f"num_layers: from {region.min_layers}")
    if region.max_layers < space.max_layers:
        notes.append(f"num_layers: up to {region.max_layers}")
    if space.with_lengths and not region.with_lengths and region.long_seq > 1:
        notes.append("lengths: not supported")
    if region.forget_bias_range == 0 and space.forget_bias_range > 0:
        notes.append("forget_bias: only 0")
    if region.require_projection and not space.require_projection:
        notes.append("proj_size: only > 0")
    elif space.with_projection and not region.with_projection:
        notes.append("proj_size: only 0")
    family = [f"{name}: only {'0' if name == 'proj_size' else 'False'}" for name in FAMILY_FIELDS]
    if all(note in notes for note in family):  # code written for v1: one note, not four
        notes = [note for note in notes if note not in family] + [f"{', '.join(FAMILY_FIELDS)}: not supported"]
    return notes


def _values(prober: _Prober, base: LSTMConfig, name: str, values: tuple) -> tuple:
    """The values of setting ``name`` the implementation supports, each tried alone from ``base``."""
    statuses = {}
    for value in values:
        config = base if value == getattr(base, name) else _config(**{**base.as_dict(), name: value})
        statuses[value] = OK if config is base else (None if config is None else prober.status(config))
    v1_supported = any(s not in (None, UNSUPPORTED) for v, s in statuses.items() if not _is_extension(name, v))
    kept = []
    for value, status in statuses.items():
        if status is None:  # not a valid case from this base (upstream and mean): not disproved
            kept.append(value)
        elif name in FAMILY_FIELDS and _is_extension(name, value):
            if status == OK and prober.computes(base.replace(**{name: value})):
                kept.append(value)
        elif _is_extension(name, value):
            if status == OK or (status == FAILED and not v1_supported):
                kept.append(value)
        elif status != UNSUPPORTED:
            kept.append(value)
    return tuple(kept)


def _narrow_region(prober: _Prober, space: CaseSpace, region: CaseSpace, box: Box, base: LSTMConfig) -> CaseSpace:
    """Every other setting, lengths, a nonzero forget_bias and more layers, tried from the region's simplest cell."""
    rep = _cell_config(base, tuple(v[0] for v in box))
    narrowed: dict[str, object] = {}
    for name in CHOICES:
        if name in _GRID_NAMES:
            continue
        values = getattr(space, name)
        kept = _values(prober, rep, name, values)
        if kept != values:
            narrowed[name] = kept
    longer = rep.replace(seq_len=2) if 2 in box[1] else None
    padded = [2, 1] if rep.batch_size == 2 else [1]
    if space.with_lengths and (longer is None or not prober.supports(longer, lengths=padded)):
        narrowed["with_lengths"] = False
    if space.forget_bias_range > 0 and not prober.supports(rep.replace(forget_bias=1.0)):
        narrowed.update(forget_bias_special=(), forget_bias_range=0.0)
    if rep.proj_size and not prober.supports(rep.replace(proj_size=0)):
        narrowed["require_projection"] = True
    elif space.with_projection and not prober.computes(rep.replace(proj_size=1)):
        narrowed["with_projection"] = False
    return region.restrict(**narrowed)


def _max_layers(prober: _Prober, space: CaseSpace, boxes: list[Box], base: LSTMConfig) -> int:
    """The most layers supported (from 2, where the grid found two supported)."""
    deep = [box for box in boxes if 2 in box[2]]
    if not deep:
        return 1
    rep = _cell_config(base, tuple(v[0] for v in deep[0]), num_layers=2)
    layers = 2
    while layers < space.max_layers and prober.supports(rep.replace(num_layers=layers + 1)):
        layers += 1
    return layers


def supported_space(impl: Implementation, space: CaseSpace = DEFAULT_SPACE) -> Support:
    """The regions of ``space`` that ``impl`` supports (Note [Probing order]).

    An implementation may still refuse some combinations inside a region; the search
    counts those as unsupported examples.
    """
    prober = _Prober(impl)
    try:
        return _probe(prober, space)
    except _LostWorker as lost:
        # Each such probe costs a timeout or a restart, and the search will meet it anyway.
        note = f"probing stopped at a probe on which {lost}; the whole space is searched"
        return Support((space,), (note,), True, tuple(prober.refusals))


def _probe(prober: _Prober, space: CaseSpace) -> Support:
    base = _find_base(prober, space)
    if base is None:
        return Support((space,), ("the implementation refused every probe",), False, tuple(prober.refusals))
    values = _grid_values(space)
    cells = {cell for cell in itertools.product(*values) if prober.supports(_cell_config(base, cell))}
    if not cells:  # the base itself is supported, so only a nondeterministic implementation gets here
        cells = {tuple(getattr(base, name) for name in _GRID_NAMES)}
    boxes = _regions(cells, values)
    layers = _max_layers(prober, space, boxes, base)
    spaces = tuple(_narrow_region(prober, space, _region_space(space, b, layers), b, base) for b in boxes)
    per_region = [_box_notes(space, region) for region in spaces]
    if len(spaces) == 1:
        notes = per_region[0]
    else:
        notes = [f"supported in {len(spaces)} regions, searched alike"] + [
            f"region {k}: {', '.join(n) or 'everything else'}" for k, n in enumerate(per_region, start=1)
        ]
    return Support(spaces, tuple(notes), True, tuple(prober.refusals))
