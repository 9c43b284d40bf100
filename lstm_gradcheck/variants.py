"""``lstm-gradcheck variants``: the regression table of derivation variants, and its kill matrix.

For each registered variant (:mod:`lstm_gradcheck.reference.variants`) the observed verdict
comes from a search (the property suite's strategies, narrowed to what the
variant supports). A wrong variant's recorded minimal failing case is tried
first (``@example``), so the verdict never depends on search luck; with
``pinned=False`` the search must find and shrink a failure on its own. The
failing case is then located (tensors, gates, the step where the error
enters) and compared with the record.

The kill matrix runs every oracle and every metamorphic property on each
wrong variant's minimal case and on a richer case within its convention, to
show which checks catch what: an oracle that catches nothing would be dead
weight, a variant caught by one check alone would have a single guard.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from lstm_gradcheck.implementation import InProcess
from lstm_gradcheck.localize import entry_step, per_step_errors
from lstm_gradcheck.oracles.judging import JudgingContext, judging_context
from lstm_gradcheck.oracles.records import CheckResult
from lstm_gradcheck.oracles.registry import default_oracles, oracle_names, run_oracle
from lstm_gradcheck.properties.metamorphic import METAMORPHIC
from lstm_gradcheck.reference.case import Case
from lstm_gradcheck.reference.layout import (
    GATES,
    PEEPHOLE_GATES,
    gate_blocks,
    is_layer_param,
    is_lstm_param,
    parse_name,
)
from lstm_gradcheck.reference.variants import VARIANTS, Variant, build_case
from lstm_gradcheck.reference.verdicts import FAIL, OK, PASS, SKIPPED
from lstm_gradcheck.report import case_json
from lstm_gradcheck.searching import search

__all__ = [
    "ObservedLocation",
    "VariantOutcome",
    "observed_location",
    "check_variant",
    "run_variants",
    "kill_matrix",
    "matrix_cases",
]


def _as_impl(variant: Variant) -> InProcess:
    # A registered variant is the harness's own code: it runs here, as the reference does.
    per_step = getattr(variant.grads, "per_step", None)
    return InProcess(f"lstm_gradcheck.reference.variants:{variant.name}", variant.grads, per_step)


@dataclass(frozen=True)
class ObservedLocation:
    """Where a variant is wrong on a case: mismatching tensors (and whether the loss is),
    the gates with any element over the allowance in mismatching 4H tensors (and the gate
    of a mismatching peephole weight), and the step where the error enters (per-step
    contributions: the latest of the forward direction's parameters, else the earliest of
    the reverse direction's, which runs back to step 0; None if no layer parameter)."""

    tensors: frozenset[str]
    gates: frozenset[str]
    step: int | None
    loss_wrong: bool = False

    def as_dict(self) -> dict[str, object]:
        return {
            "tensors": sorted(self.tensors),
            "gates": sorted(self.gates),
            "step": self.step,
            "loss_wrong": self.loss_wrong,
        }


def _torch_check(case: Case, grads: Mapping[str, np.ndarray], loss: float) -> CheckResult:
    return run_oracle("torch", judging_context(case), loss, grads).check


def observed_location(case: Case, variant: Variant) -> ObservedLocation:
    """Locate ``variant``'s error on ``case`` against the torch oracle."""
    from lstm_gradcheck.oracles.torch_autograd import torch_grads  # noqa: PLC0415 (torch only when locating)

    loss, grads = variant.grads(case)
    check = _torch_check(case, grads, loss)
    tensors = frozenset(t.name for t in check.mismatches)
    hidden = case.config.hidden_size
    oracle = torch_grads(case, per_step=True)
    gates: set[str] = {PEEPHOLE_GATES[parse_name(t.name).kind] for t in check.mismatches
                       if is_layer_param(t.name) and parse_name(t.name).kind in PEEPHOLE_GATES}  # fmt: skip
    params = [t for t in check.mismatches if is_layer_param(t.name)]
    for record in (r for r in params if is_lstm_param(r.name)):
        ours = gate_blocks(np.asarray(grads[record.name]), hidden, axis=0)
        theirs = gate_blocks(oracle.grads[record.name], hidden, axis=0)
        for gate, a, o in zip(GATES, ours, theirs, strict=True):
            if np.max(np.abs(a - o)) > record.allowed:
                gates.add(gate)
    step = None
    per_step = getattr(variant.grads, "per_step", None)
    if params and per_step is not None:
        analytic = per_step(case)
        errors = {r.name: per_step_errors(analytic[r.name], oracle.per_step[r.name], hidden)[0] for r in params}
        reverse = {r.name: parse_name(r.name).direction == 1 for r in params}
        entries = {
            r.name: entry_step(errors[r.name], r.allowed, lambda t: "", reverse=reverse[r.name])[0] for r in params
        }
        forward = [e for n, e in entries.items() if e is not None and not reverse[n]]
        backward = [e for n, e in entries.items() if e is not None and reverse[n]]
        step = max(forward) if forward else min(backward, default=None)
    loss_wrong = check.loss is not None and check.loss.status != OK
    return ObservedLocation(tensors, frozenset(gates), step, loss_wrong)


@dataclass(frozen=True)
class VariantOutcome:
    """One row of the regression table.

    ``observed`` is "pass" or "fail"; for a found failure, ``case`` is the
    (shrunk or pinned) failing case, ``found_by`` says which, ``minimal_ok``
    whether it meets the recorded minimal condition and ``location_ok``
    whether the observed tensors and gates lie within the record's.
    """

    variant: Variant
    observed: str
    examples: int
    seconds: float
    case: Case | None = None
    found_by: str | None = None
    location: ObservedLocation | None = None
    minimal_ok: bool | None = None
    location_ok: bool | None = None
    why: str | None = None

    @property
    def verdict_as_recorded(self) -> bool:
        return self.observed == self.variant.expected

    @property
    def as_recorded(self) -> bool:
        """The verdict, and for a wrong variant also the minimal case and the location, as recorded."""
        return self.verdict_as_recorded and self.minimal_ok is not False and self.location_ok is not False

    def as_dict(self) -> dict[str, object]:
        out = dict(self.variant.as_dict())
        out.update(
            {
                "observed": self.observed,
                "as_recorded": self.as_recorded,
                "examples": self.examples,
                "seconds": self.seconds,
            }
        )
        if self.variant.expected == FAIL:
            out["recorded_minimal_case"] = out.pop("minimal_case", None)
            out["recorded_location"] = out.pop("location", None)
        if self.case is not None:
            out["minimal_case"] = case_json(self.case)
            out["found_by"] = self.found_by
            out["minimal_ok"] = self.minimal_ok
        if self.location is not None:
            out["location"] = self.location.as_dict()
            out["location_ok"] = self.location_ok
        return out


def check_variant(variant: Variant, *, max_examples: int = 100, seed: int = 0, pinned: bool = True) -> VariantOutcome:
    """Search ``variant`` for a failure (its recorded minimal case first, if ``pinned``)."""
    start = time.perf_counter()
    pins = [variant.example_case()] if (pinned and variant.expected == FAIL) else []
    result = search(_as_impl(variant), max_examples=max_examples, seed=seed, examples=pins)
    if not result.found:
        return VariantOutcome(variant, PASS, result.examples, time.perf_counter() - start)
    case = result.case
    found_by = "pinned example" if (pins and result.examples == 1) else "search"
    location = observed_location(case, variant)
    minimal_ok = location_ok = None
    if variant.minimal is not None and variant.location is not None:
        minimal_ok = bool(variant.minimal.is_minimal(case.config, _lengths(case)))
        record = variant.location
        location_ok = bool(location.tensors) and location.tensors <= record.tensors
        location_ok = location_ok and (not record.gates or location.gates <= record.gates)
    return VariantOutcome(
        variant,
        FAIL,
        result.examples,
        time.perf_counter() - start,
        case,
        found_by,
        location,
        minimal_ok,
        location_ok,
        result.why,
    )


def _lengths(case: Case) -> list[int] | None:
    return None if case.lengths is None else [int(v) for v in case.lengths]


def run_variants(
    names: Iterable[str] | None = None,
    *,
    max_examples: int = 100,
    seed: int = 0,
    pinned: bool = True,
    on_outcome: Callable[[VariantOutcome], None] | None = None,
) -> list[VariantOutcome]:
    """:func:`check_variant` for every registered variant (or ``names``), in registry order."""
    outcomes = []
    for name in names if names is not None else VARIANTS:
        outcome = check_variant(VARIANTS[name], max_examples=max_examples, seed=seed, pinned=pinned)
        outcomes.append(outcome)
        if on_outcome is not None:
            on_outcome(outcome)
    return outcomes


# ----------------------------------------------------------------------------- kill matrix

#: A richer case for the matrix, adapted to each variant's convention: layers, steps,
#: lengths, forget_bias, the final-state term, a sum (for the additivity properties).
_RICH = {
    "seq_len": 4,
    "num_layers": 2,
    "batch_size": 3,
    "lengths": [4, 2, 3],
    "forget_bias": 1.0,
    "final_state": True,
    "reduction": "sum",
}


def matrix_cases(variant: Variant) -> list[Case]:
    """The cases a variant is judged on in the kill matrix: its minimal case, a rich case,
    and single-step variants of both (for the closed-form property); each within the
    variant's convention (cases it refuses are dropped)."""
    base = variant.minimal.example if variant.minimal is not None else {}
    rich = {**base, **_RICH}
    specs = [base, rich, {**base, "seq_len": 1, "num_layers": 1, "lengths": None}]
    out = []
    for spec in specs:
        try:
            case = build_case(spec)
            variant.grads(case)
        except NotImplementedError:
            continue
        out.append(case)
    return out


@dataclass(frozen=True)
class MatrixRow:
    """Which checks catch one wrong variant: check name -> True (caught), False (not),
    None (applies to none of its cases)."""

    variant: Variant
    caught: Mapping[str, bool | None] = field(default_factory=dict)

    @property
    def guards(self) -> list[str]:
        return [name for name, hit in self.caught.items() if hit]


def _oracle_catches(name: str, variant: Variant, context: JudgingContext) -> bool | None:
    if name not in default_oracles(context.case.config):
        return None
    loss, grads = variant.grads(context.case)
    report = run_oracle(name, context, loss, grads)
    return None if report.verdict == SKIPPED else report.verdict == FAIL


def _property_catches(check, variant: Variant, case: Case) -> bool | None:
    try:
        result = check(variant.grads, case)
    except NotImplementedError:
        return None
    return None if result is None else not result.ok


def _any_applicable(results: Iterable[bool | None]) -> bool | None:
    """True if any applicable result caught it, None if none applied."""
    applicable = [r for r in results if r is not None]
    return any(applicable) if applicable else None


def kill_matrix(names: Sequence[str] | None = None) -> list[MatrixRow]:
    """For each wrong variant: which oracle and which metamorphic property catch it."""
    rows = []
    for name in names if names is not None else VARIANTS:
        variant = VARIANTS[name]
        if variant.expected != FAIL:
            continue
        cases = matrix_cases(variant)
        contexts = [judging_context(case) for case in cases]
        caught: dict[str, bool | None] = {}
        for oracle in oracle_names():
            caught[oracle] = _any_applicable(_oracle_catches(oracle, variant, context) for context in contexts)
        for prop, check in METAMORPHIC.items():
            caught[prop] = _any_applicable(_property_catches(check, variant, case) for case in cases)
        rows.append(MatrixRow(variant, caught))
    return rows
