"""Support probing: narrow the search space to the settings an implementation supports.

Before a search, the implementation is called on tiny cases. A call that
raises ``NotImplementedError`` says "not supported"; anything else (a result,
a crash, a malformed return) says "supported", so the search then reports
the crash as a finding. Values added after contract v1 (the loss
``upstream``) are the exception: code written for v1 may not know them, so
they count as supported only when the implementation returns a valid result
on them, or when it supports no v1 value of that setting (then a crash on
them is its failure, reported as such). The LSTM family's settings (peepholes,
proj_size, bidirectional, coupled) ask more: code written for v1 ignores them
and still returns a valid result, so they count as supported only where the
implementation's loss agrees with the exact loss (it computes the setting's
forward). See Note [Probing order].

Note [Probing order]
--------------------
A base case is found first: every combination of the categorical settings
(:data:`~lstm_gradcheck.reference.config.CHOICES`, zero initial states
included, the LSTM family's off) at sizes 2, one layer, forget_bias 0; if every
one is refused, again with batch 1, then with batch 1 and one step; then all
that with each family setting on alone. From the base, each setting is varied
alone, then 2-3 layers, lengths, a nonzero forget_bias and a projection. A base
at batch 1 or one step narrows the space to that size.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from lstm_gradcheck.implementation import FAILED, OK, UNSUPPORTED, Implementation, call_implementation
from lstm_gradcheck.oracles.judging import judging_context
from lstm_gradcheck.properties.strategies import DEFAULT_SPACE, CaseSpace
from lstm_gradcheck.reference.case import make_case
from lstm_gradcheck.reference.config import CHOICES, FAMILY_FIELDS, V1_CHOICES, CaseError, LSTMConfig

__all__ = ["PROBE_SIZES", "FALLBACK_SIZES", "Support", "supported_space"]

PROBE_SIZES = {"input_size": 2, "hidden_size": 2, "output_size": 2, "seq_len": 2, "batch_size": 2, "num_layers": 1}
#: Tried in this order when every setting is refused at PROBE_SIZES (Note [Probing order]).
FALLBACK_SIZES: tuple[dict[str, int], ...] = ({}, {"batch_size": 1}, {"batch_size": 1, "seq_len": 1})
#: At most this many distinct refusal messages are kept for the "nothing checked" message.
_MAX_REFUSALS = 3


@dataclass(frozen=True)
class Support:
    """What probing found: the narrowed ``space``, ``notes`` saying what was narrowed,
    ``found`` (some probe was supported) and the implementation's own words when it
    refused (distinct ``NotImplementedError`` messages, for a "nothing checked" verdict)."""

    space: CaseSpace
    notes: tuple[str, ...]
    found: bool
    refusals: tuple[str, ...] = ()


class _Prober:
    """Calls the implementation on tiny cases, remembering its refusals."""

    def __init__(self, impl: Implementation) -> None:
        self.impl = impl
        self.refusals: list[str] = []

    def status(self, config: LSTMConfig, lengths: list[int] | None = None) -> str:
        outcome = call_implementation(self.impl, make_case(config, seed=0, lengths=lengths))
        if outcome.status == UNSUPPORTED and outcome.error and len(self.refusals) < _MAX_REFUSALS:
            if outcome.error not in self.refusals:
                self.refusals.append(outcome.error)
        return outcome.status

    def supports(self, config: LSTMConfig, lengths: list[int] | None = None) -> bool:
        return self.status(config, lengths) != UNSUPPORTED

    def computes(self, config: LSTMConfig) -> bool:
        """A valid result whose loss agrees with the exact loss under the tolerance rule: what a
        setting of the LSTM family needs to count as supported (code written for v1 ignores them)."""
        case = make_case(config, seed=0)
        outcome = call_implementation(self.impl, case)
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
    for family in _family_passes(space):
        for sizes in FALLBACK_SIZES:
            for combo in itertools.product(*choices.values()):
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


def supported_space(impl: Implementation, space: CaseSpace = DEFAULT_SPACE) -> Support:
    """Narrow ``space`` to the settings ``impl`` supports (Note [Probing order]).

    An implementation may still refuse some combinations; the search counts those
    as unsupported examples.
    """
    prober = _Prober(impl)
    base = _find_base(prober, space)
    if base is None:
        return Support(space, ("the implementation refused every probe",), False, tuple(prober.refusals))
    narrowed: dict[str, object] = {}
    notes = []
    for name in CHOICES:
        values = getattr(space, name)
        kept = _values(prober, base, name, values)
        if kept != values:
            narrowed[name] = kept
            notes.append(f"{name}: only {', '.join(map(str, kept))}")
    if base.batch_size < PROBE_SIZES["batch_size"]:
        narrowed.update(min_batch=1, max_batch=1)
        notes.append("batch_size: only 1")
    if base.seq_len < PROBE_SIZES["seq_len"]:
        narrowed.update(short_seq=1, long_seq=1, with_lengths=False)
        notes.append("seq_len: only 1")
    layers = 1
    while layers < space.max_layers and prober.supports(base.replace(num_layers=layers + 1)):
        layers += 1
    if layers < space.max_layers:
        narrowed["max_layers"] = layers
        notes.append(f"num_layers: up to {layers}")
    padded = [2, 1] if base.batch_size == 2 else [1]
    if space.with_lengths and base.seq_len >= 2 and not prober.supports(base, lengths=padded):
        narrowed["with_lengths"] = False
        notes.append("lengths: not supported")
    if not prober.supports(base.replace(forget_bias=1.0)):
        narrowed.update(forget_bias_special=(), forget_bias_range=0.0)
        notes.append("forget_bias: only 0")
    if base.proj_size and not prober.supports(base.replace(proj_size=0)):
        narrowed["require_projection"] = True
        notes.append("proj_size: only > 0")
    elif space.with_projection and not prober.computes(base.replace(proj_size=1)):
        narrowed["with_projection"] = False
        notes.append("proj_size: only 0")
    family = [f"{name}: only {'0' if name == 'proj_size' else 'False'}" for name in FAMILY_FIELDS]
    if all(note in notes for note in family):  # code written for v1: one note, not four
        notes = [note for note in notes if note not in family] + [f"{', '.join(FAMILY_FIELDS)}: not supported"]
    return Support(space.restrict(**narrowed), tuple(notes), True, tuple(prober.refusals))
