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

Note [Reverse steps]
--------------------
A reverse direction runs from each sequence's last step back to step 0, so its BPTT runs
from step 0 up: its error enters at the earliest wrong step, and its windows are each
sequence's first T' steps with it started from its exact state. Those runs are its steps'
contributions only in one layer and with every step scored (a last-step loss outside the
window is no term of the run); in a deeper bidirectional stack each layer mixes both
directions, so no window is exact there and only ``grads.per_step`` locates the step.
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
from lstm_gradcheck.reference.layout import GATES, gate_slice, is_layer_param, is_lstm_param, parse_name
from lstm_gradcheck.reference.lstm import forward_layers
from lstm_gradcheck.summaries import PER_STEP, PREFIX, REVERSE_SUFFIX, SUFFIX, StepLocalization, TensorSummary

__all__ = [
    "localize_steps",
    "suffix_case",
    "reverse_suffix_case",
    "per_step_errors",
    "entry_from_end",
    "entry_from_start",
    "entry_step",
    "first_from_start",
    "MAX_SUFFIX_STEPS",
]

MAX_SUFFIX_STEPS = 64


def localize_steps(case: Case, impl: Implementation, tensors: Sequence[TensorSummary]) -> tuple[StepLocalization, ...]:
    """Step localizations for the mismatching tensors of a report."""
    bad = [t for t in tensors if t.status == MISMATCH and t.record is not None]
    per_step_names = [t.name for t in bad if is_layer_param(t.name)]
    if impl.has_per_step and per_step_names:
        located = _per_step(case, impl, [t for t in bad if t.name in per_step_names])
        if located is not None:
            return located
    if case.config.bidirectional:
        return _bidirectional(case, impl, bad)
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
        reverse = _reverse(name)
        entry, unknown = entry_step(per_step, allowed, lambda t: "", reverse=reverse)
        out.append(StepLocalization(name, PER_STEP, entry, per_step, allowed, gate_rows, unknown, reverse=reverse))
    return tuple(out) if out else None


def per_step_errors(
    analytic: np.ndarray, oracle: np.ndarray, hidden: int
) -> tuple[tuple[float, ...], tuple[tuple[float, ...], ...]]:
    """Each step's largest absolute error of one layer parameter's contributions (T, *shape), and
    for a 4H-row tensor the same per gate (4 rows of T; none for the peepholes and the projection)."""
    diff = np.abs(np.asarray(analytic, dtype=np.float64) - oracle)
    steps = diff.shape[0]
    per_step = tuple(float(v) for v in diff.reshape(steps, -1).max(axis=1))
    if diff.ndim < 2 or diff.shape[1] != 4 * hidden:
        return per_step, ()
    gates = tuple(tuple(float(v) for v in diff[:, gate_slice(g, hidden)].reshape(steps, -1).max(axis=1)) for g in GATES)
    return per_step, gates


def _reverse(name: str) -> bool:
    """A reverse-direction parameter (Note [Reverse steps])."""
    return parse_name(name).direction == 1


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
    # A reverse direction starts at each sequence's last step, in the window too: its own initial state.
    h0, c0 = np.array(case.h0), np.array(case.c0)
    targets = np.zeros((steps, *case.targets.shape[1:]), dtype=case.targets.dtype) if cfg.loss_at == "every" else None
    for b in range(batch):
        window = slice(int(starts[b]), int(starts[b] + new_lengths[b]))
        x[: new_lengths[b], b] = case.x[window, b]
        if targets is not None:
            targets[: new_lengths[b], b] = case.targets[window, b]
        for state in range(0, len(layers), cfg.num_directions):  # the forward directions
            h0[state, b], c0[state, b] = layers[state].h[starts[b], b], layers[state].c[starts[b], b]
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


def entry_from_start(
    errors: Sequence[float], allowed: float, why: Callable[[int], str]
) -> tuple[int | None, str | None]:
    """The earliest step over ``allowed`` with every earlier step measured: a reverse direction's
    entry step (Note [Reverse steps]), and the reason it is unknown."""
    for t, err in enumerate(errors):
        if math.isnan(err):
            return None, f"step {t} could not be measured{why(t)}"
        if err > allowed:
            return t, None
    return None, None


def entry_step(
    errors: Sequence[float], allowed: float, why: Callable[[int], str], *, reverse: bool = False
) -> tuple[int | None, str | None]:
    """:func:`entry_from_start` for a reverse-direction tensor, else :func:`entry_from_end`."""
    return (entry_from_start if reverse else entry_from_end)(errors, allowed, why)


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
    cuts = {SUFFIX: suffix_case, REVERSE_SUFFIX: reverse_suffix_case, PREFIX: lambda c, n: c.truncated(n)}
    for steps in range(1, t_len + 1):
        cut = cuts[method](case, steps)
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
        if method in (SUFFIX, REVERSE_SUFFIX):
            reverse = method == REVERSE_SUFFIX
            entry, unknown = entry_step(ratios[name], 1.0, lambda t: reasons.get(t, " (not provided)"), reverse=reverse)
            out.append(
                StepLocalization(name, method, entry, tuple(ratios[name]), 1.0, gate_rows, unknown, reverse=reverse)
            )
        else:
            first, unknown = first_from_start(ratios[name], 1.0, lambda k: reasons.get(k - 1, " (not provided)"))
            out.append(StepLocalization(name, PREFIX, None, tuple(ratios[name]), 1.0, gate_rows, unknown, first))
    return tuple(out)


def _suffix(case: Case, impl: Implementation, bad: Sequence[TensorSummary]) -> tuple[StepLocalization, ...]:
    return _runs(case, impl, bad, SUFFIX)


def _prefix(case: Case, impl: Implementation, bad: Sequence[TensorSummary]) -> tuple[StepLocalization, ...]:
    return _runs(case, impl, bad, PREFIX)


def reverse_suffix_case(case: Case, steps: int) -> Case:
    """A one-layer bidirectional case's first ``steps`` steps of each sequence, the reverse direction
    started from its exact state before them (after it ran the later steps), the forward one from
    its own: the run's reverse-direction gradients are those steps' contributions (Note [Reverse steps])."""
    cfg = case.config
    if cfg.num_layers != 1 or not cfg.bidirectional:
        raise ValueError("reverse_suffix_case: a one-layer bidirectional case only (Note [Reverse steps])")
    lengths = np.full(cfg.batch_size, cfg.seq_len) if case.lengths is None else np.asarray(case.lengths)
    new_lengths = np.minimum(lengths, steps)
    reverse = forward_layers(case)[1]  # its arrays in its own processing order
    h0, c0 = np.array(case.h0), np.array(case.c0)
    done = lengths - new_lengths  # the steps it ran before the window
    h0[1], c0[1] = reverse.h[done, np.arange(cfg.batch_size)], reverse.c[done, np.arange(cfg.batch_size)]
    h0, c0 = round_to_dtype(h0, cfg.dtype), round_to_dtype(c0, cfg.dtype)
    states = {name: RANDOM for name, a in (("h0", h0), ("c0", c0)) if np.any(a != 0)}
    targets = case.targets[:steps] if cfg.loss_at == "every" else case.targets
    return case.replace(
        config=cfg.replace(seq_len=steps, **states),
        x=case.x[:steps],
        h0=h0,
        c0=c0,
        targets=targets,
        lengths=None if np.all(new_lengths == steps) else new_lengths.astype(np.int64),
    )


def _unknown(bad: Sequence[TensorSummary], why: str) -> tuple[StepLocalization, ...]:
    return tuple(StepLocalization(t.name, SUFFIX, None, (), 1.0, (), why, reverse=_reverse_safe(t.name)) for t in bad)


def _reverse_safe(name: str) -> bool:
    return is_layer_param(name) and _reverse(name)


def _bidirectional(case: Case, impl: Implementation, bad: Sequence[TensorSummary]) -> tuple[StepLocalization, ...]:
    """Windows of a bidirectional case (Note [Reverse steps]): suffix runs for the forward direction's
    parameters and first-step runs for the reverse one's, in one layer; every other answer unknown."""
    cfg = case.config
    per_step = " (give grads.per_step(case) to locate it)"
    if cfg.num_layers > 1:
        return _unknown(bad, "in a bidirectional stack every layer mixes both directions, so no run on a window "
                        "of steps is its steps' contributions" + per_step)  # fmt: skip
    forward = [t for t in bad if is_layer_param(t.name) and not _reverse(t.name)]
    backward = [t for t in bad if is_layer_param(t.name) and _reverse(t.name)]
    others = [t for t in bad if not is_layer_param(t.name)]
    located = _runs(case, impl, forward, SUFFIX) if forward else ()
    if backward and cfg.loss_at == "every":
        located += _runs(case, impl, backward, REVERSE_SUFFIX)
    elif backward:
        located += _unknown(backward, "a last-step loss falls outside the reverse direction's windows" + per_step)
    why = "a window of steps cuts one direction or the other of a bidirectional layer" + per_step
    return located + _unknown(others, why)
