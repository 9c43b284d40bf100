"""Where in time an error enters: per-step contributions, or prefix runs.

Per-step contributions (when the implementation offers ``per_step(case)``, as
the reference and the derivation variants do): each step's dW_t, db_t is
compared with torch's, which gives every step its own leaf copy of the
weights. BPTT runs from the last step backwards, so the step where the error
*enters* is the latest step whose contribution is wrong; every earlier step
inherits it.

Prefix runs (any implementation): the implementation and torch on the case's
first T' = 1, 2, ... steps; the first T' that mismatches tells that the error
needs step T' - 1 to appear.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from lstm_gradcheck.implementation import OK, Implementation, call_implementation
from lstm_gradcheck.report import StepLocalization, TensorSummary
from oracles.compare import compare_gradients, conditioning_allowance, make_tolerance
from reference.case import Case
from reference.layout import GATES, gate_slice, parse_name

__all__ = ["localize_steps", "MAX_PREFIX_STEPS"]

MAX_PREFIX_STEPS = 64
_PER_STEP_KINDS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


def localize_steps(case: Case, impl: Implementation, tensors: Sequence[TensorSummary]) -> tuple[StepLocalization, ...]:
    """Step localizations for the mismatching tensors of a report."""
    bad = [t for t in tensors if t.status == "mismatch" and t.record is not None]
    per_step_names = [t.name for t in bad if parse_name(t.name).kind in _PER_STEP_KINDS]
    if impl.per_step is not None and per_step_names:
        located = _per_step(case, impl, [t for t in bad if t.name in per_step_names])
        if located is not None:
            return located
    return _prefix(case, impl)


def _per_step(case: Case, impl: Implementation, bad: Sequence[TensorSummary]) -> tuple[StepLocalization, ...] | None:
    from oracles.torch_autograd import torch_grads  # noqa: PLC0415 (torch loads only here)

    try:
        analytic = impl.per_step(case)
    except Exception:
        return None
    oracle = torch_grads(case, per_step=True).per_step
    hidden = case.config.hidden_size
    out = []
    for summary in bad:
        name = summary.name
        if name not in analytic or name not in oracle:
            continue
        diff = np.abs(np.asarray(analytic[name], dtype=np.float64) - oracle[name])  # (T, 4H[, cols])
        per_step = diff.reshape(diff.shape[0], -1).max(axis=1)
        gate_rows = tuple(
            tuple(float(v) for v in diff[:, gate_slice(g, hidden)].reshape(diff.shape[0], -1).max(axis=1))
            for g in GATES
        )
        allowed = summary.record.allowed
        wrong = np.flatnonzero(per_step > allowed)
        entry = int(wrong.max()) if wrong.size else None
        out.append(
            StepLocalization(name, "per-step contributions", entry, tuple(map(float, per_step)), allowed, gate_rows)
        )
    return tuple(out) if out else None


def _prefix(case: Case, impl: Implementation) -> tuple[StepLocalization, ...]:
    from oracles.torch_autograd import torch_grads  # noqa: PLC0415

    t_len = case.config.seq_len
    if t_len > MAX_PREFIX_STEPS:
        return ()
    errors: list[float] = []
    for steps in range(1, t_len + 1):
        cut = case.truncated(steps)
        outcome = call_implementation(impl, cut)
        if outcome.status != OK:
            errors.append(float("nan"))
            continue
        oracle = torch_grads(cut)
        tolerance = make_tolerance(cut.config.dtype, oracle.grads, conditioning_allowance(cut))
        check = compare_gradients(
            cut, outcome.loss, outcome.grads, oracle.loss, oracle.grads, "torch", tolerance=tolerance
        )
        worst = max((t.severity for t in check.tensors), default=0.0)
        errors.append(worst)
        if not check.ok:
            names = ", ".join(t.name for t in check.mismatches)
            return (StepLocalization(names, "prefix", steps - 1, tuple(errors), 1.0),)
    return (StepLocalization("all", "prefix", None, tuple(errors), 1.0),)
