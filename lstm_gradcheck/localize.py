"""Where in time an error enters: per-step contributions, suffix runs, or prefix runs.

Per-step contributions (when the implementation offers ``per_step(case)``): each step's
dW_t, db_t against torch's, which gives every step its own copy of the weights. Suffix
runs (any implementation): the implementation on each sequence's last T' steps, from the
exact states before them, whose gradients are exactly those steps' contributions. An
implementation that refuses nonzero initial states cannot take suffix runs; prefix runs
(its first T' steps, from its own states) then say from how many steps the error shows.

Note [Step localization]
------------------------
BPTT runs from the last step back, so the error enters at the latest wrong step (the
first wrong suffix T' says step T - T'), and every earlier step inherits it. A step whose
run could not be measured is NaN, and no answer may rest on it: the entry step is then
"unknown", with the reason, never a guess from the steps that could be measured.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from lstm_gradcheck.implementation import OK, Implementation, call_implementation
from lstm_gradcheck.oracles.judging import judging_context
from lstm_gradcheck.oracles.records import MISMATCH
from lstm_gradcheck.reference.case import Case
from lstm_gradcheck.reference.config import RANDOM, round_to_dtype
from lstm_gradcheck.reference.layout import GATES, gate_slice, is_lstm_param
from lstm_gradcheck.reference.lstm import forward_layers
from lstm_gradcheck.summaries import PER_STEP, PREFIX, SUFFIX, StepLocalization, TensorSummary

__all__ = ["localize_steps", "suffix_case", "per_step_errors", "entry_from_end", "first_from_start", "MAX_SUFFIX_STEPS"]

MAX_SUFFIX_STEPS = 64


def localize_steps(case: Case, impl: Implementation, tensors: Sequence[TensorSummary]) -> tuple[StepLocalization, ...]:
    """Step localizations for the mismatching tensors of a report."""
    bad = [t for t in tensors if t.status == MISMATCH and t.record is not None]
    per_step_names = [t.name for t in bad if is_lstm_param(t.name)]
    if impl.has_per_step and per_step_names:
        located = _per_step(case, impl, [t for t in bad if t.name in per_step_names])
        if located is not None:
            return located
    located = _suffix(case, impl, bad)
    if any(s.unknown is not None for s in located) and case.config.seq_len > 1:
        return located + _prefix(case, impl, bad)
    return located


def _per_step(case: Case, impl: Implementation, bad: Sequence[TensorSummary]) -> tuple[StepLocalization, ...] | None:
    from lstm_gradcheck.oracles.torch_autograd import torch_grads  # noqa: PLC0415 (torch loads only here)

    analytic = impl.step_contributions(case)
    if analytic is None:
        return None
    oracle = torch_grads(case, per_step=True).per_step
    out = []
    for summary in bad:
        name = summary.name
        if name not in analytic or name not in oracle:
            continue
        per_step, gate_rows = per_step_errors(analytic[name], oracle[name], case.config.hidden_size)
        allowed = summary.record.allowed
        entry, unknown = entry_from_end(per_step, allowed, lambda t: "")
        out.append(StepLocalization(name, PER_STEP, entry, per_step, allowed, gate_rows, unknown))
    return tuple(out) if out else None


def per_step_errors(
    analytic: np.ndarray, oracle: np.ndarray, hidden: int
) -> tuple[tuple[float, ...], tuple[tuple[float, ...], ...]]:
    """Each step's largest absolute error of one 4H-row tensor's contributions (T, 4H[, cols]),
    and the same per gate (4 rows of T)."""
    diff = np.abs(np.asarray(analytic, dtype=np.float64) - oracle)
    steps = diff.shape[0]
    per_step = tuple(float(v) for v in diff.reshape(steps, -1).max(axis=1))
    gates = tuple(tuple(float(v) for v in diff[:, gate_slice(g, hidden)].reshape(steps, -1).max(axis=1)) for g in GATES)
    return per_step, gates


def suffix_case(case: Case, steps: int) -> Case:
    """Each sequence's last ``steps`` valid steps, started from the exact states before them.

    Sequence b (length l_b) keeps steps ``max(0, l_b - steps) .. l_b - 1``; its
    initial h, c (every layer) are the reference forward's states just before
    that window, so the suffix case's gradients are exactly the full case's
    per-step contributions of those steps (BPTT flows backwards in time).
    """
    cfg = case.config
    t_len, batch = cfg.seq_len, cfg.batch_size
    lengths = np.full(batch, t_len) if case.lengths is None else np.asarray(case.lengths)
    starts = np.maximum(0, lengths - steps)
    new_lengths = np.minimum(lengths, steps)
    layers = forward_layers(case)
    x = np.zeros((steps, batch, cfg.input_size), dtype=case.x.dtype)
    h0, c0 = np.empty_like(case.h0), np.empty_like(case.c0)
    targets = np.zeros((steps, *case.targets.shape[1:]), dtype=case.targets.dtype) if cfg.loss_at == "every" else None
    for b in range(batch):
        window = slice(int(starts[b]), int(starts[b] + new_lengths[b]))
        x[: new_lengths[b], b] = case.x[window, b]
        if targets is not None:
            targets[: new_lengths[b], b] = case.targets[window, b]
        for k, layer in enumerate(layers):
            h0[k, b], c0[k, b] = layer.h[starts[b], b], layer.c[starts[b], b]
    # The states before the window are the forward's, nonzero: the config must say so. A bfloat16
    # case holds bfloat16 values, so they are rounded (the cut is then a case of its own, judged so).
    h0, c0 = round_to_dtype(h0, cfg.dtype), round_to_dtype(c0, cfg.dtype)
    states = {name: RANDOM for name, a in (("h0", h0), ("c0", c0)) if np.any(a != 0)}
    return case.replace(
        config=cfg.replace(seq_len=steps, **states),
        x=x,
        h0=h0,
        c0=c0,
        targets=case.targets if targets is None else targets,
        lengths=None if np.all(new_lengths == steps) else new_lengths.astype(np.int64),
    )


def entry_from_end(errors: Sequence[float], allowed: float, why: Callable[[int], str]) -> tuple[int | None, str | None]:
    """The latest step over ``allowed`` with every later step measured (Note [Step localization]),
    and the reason it is unknown (``why(t)`` of the unmeasured step t it would rest on)."""
    for t in range(len(errors) - 1, -1, -1):
        if math.isnan(errors[t]):
            return None, f"step {t} could not be measured{why(t)}"
        if errors[t] > allowed:
            return t, None
    return None, None


def first_from_start(
    errors: Sequence[float], allowed: float, why: Callable[[int], str]
) -> tuple[int | None, str | None]:
    """The fewest steps k (``errors[k - 1]`` over ``allowed``) with every shorter prefix measured."""
    for k, err in enumerate(errors, start=1):
        if math.isnan(err):
            return None, f"the run on the first {k} step(s) could not be measured{why(k)}"
        if err > allowed:
            return k, None
    return None, None


def _ratios(case: Case, impl: Implementation, names: Sequence[str], cut: Case) -> tuple[dict, dict, str | None]:
    """Per tensor, the implementation's largest error over its allowance on ``cut`` (and per gate,
    for 4H tensors), against torch; NaN where it could not be measured, with the reason."""
    from lstm_gradcheck.oracles.torch_autograd import torch_grads  # noqa: PLC0415 (torch only here)

    hidden = case.config.hidden_size
    nan = float("nan")
    outcome = call_implementation(impl, cut)
    if outcome.status != OK:
        reason = f" (the implementation's run was {outcome.status}: {outcome.error})"
        return dict.fromkeys(names, nan), {n: [nan] * len(GATES) for n in names}, reason
    oracle = torch_grads(cut)
    context = judging_context(cut)
    if impl.native is not None:
        context = context.with_same_precision(impl.device)
    tolerance = context.tolerance(oracle.grads)
    whole, gates = {}, {}
    for name in names:
        got = outcome.grads.get(name)
        if got is None:
            whole[name], gates[name] = nan, [nan] * len(GATES)
            continue
        scale = float(np.max(np.abs(oracle.grads[name]), initial=0.0))
        err = np.abs(np.asarray(got, dtype=np.float64) - oracle.grads[name]) / tolerance.allowed(name, scale)
        whole[name] = float(err.max(initial=0.0))
        if is_lstm_param(name):
            gates[name] = [float(err[gate_slice(g, hidden)].max(initial=0.0)) for g in GATES]
        else:
            gates[name] = [nan] * len(GATES)
    return whole, gates, None


def _runs(case: Case, impl: Implementation, bad: Sequence[TensorSummary], method: str) -> tuple[StepLocalization, ...]:
    """Suffix runs (column T - T' for the last T' steps) or prefix runs (column T' - 1)."""
    t_len = case.config.seq_len
    if t_len > MAX_SUFFIX_STEPS:
        return ()
    names = [t.name for t in bad]
    nan = float("nan")
    ratios = {n: [nan] * t_len for n in names}
    gates = {n: [[nan] * t_len for _ in GATES] for n in names}
    reasons: dict[int, str] = {}
    for steps in range(1, t_len + 1):
        cut = suffix_case(case, steps) if method == SUFFIX else case.truncated(steps)
        column = t_len - steps if method == SUFFIX else steps - 1
        whole, per_gate, reason = _ratios(case, impl, names, cut)
        if reason is not None:
            reasons[column] = reason
        for name in names:
            ratios[name][column] = whole[name]
            for k in range(len(GATES)):
                gates[name][k][column] = per_gate[name][k]
    out = []
    for name in names:
        four_h = is_lstm_param(name)
        gate_rows = tuple(tuple(row) for row in gates[name]) if four_h else ()
        if method == SUFFIX:
            entry, unknown = entry_from_end(ratios[name], 1.0, lambda t: reasons.get(t, " (not provided)"))
            out.append(StepLocalization(name, SUFFIX, entry, tuple(ratios[name]), 1.0, gate_rows, unknown))
        else:
            first, unknown = first_from_start(ratios[name], 1.0, lambda k: reasons.get(k - 1, " (not provided)"))
            out.append(StepLocalization(name, PREFIX, None, tuple(ratios[name]), 1.0, gate_rows, unknown, first))
    return tuple(out)


def _suffix(case: Case, impl: Implementation, bad: Sequence[TensorSummary]) -> tuple[StepLocalization, ...]:
    return _runs(case, impl, bad, SUFFIX)


def _prefix(case: Case, impl: Implementation, bad: Sequence[TensorSummary]) -> tuple[StepLocalization, ...]:
    return _runs(case, impl, bad, PREFIX)
