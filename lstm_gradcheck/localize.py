"""Where in time an error enters: per-step contributions, or prefix runs.

Per-step contributions (when the implementation offers ``per_step(case)``, as
the reference and the derivation variants do): each step's dW_t, db_t is
compared with torch's, which gives every step its own leaf copy of the
weights. BPTT runs from the last step backwards, so the step where the error
*enters* is the latest step whose contribution is wrong; every earlier step
inherits it.

Suffix runs (any implementation): the implementation and torch on each
sequence's last T' = 1, 2, ... steps, started from the exact states before
them (:func:`suffix_case`). A suffix case's gradients are exactly the full
case's contributions of those steps, so the first T' on which a tensor
mismatches says the same as per-step contributions: the error enters at step
T - T'. Both methods count the way BPTT runs, from the last step backwards.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from lstm_gradcheck.implementation import OK, Implementation, call_implementation
from lstm_gradcheck.oracles.compare import conditioning_allowance, make_tolerance
from lstm_gradcheck.reference.case import Case
from lstm_gradcheck.reference.layout import GATES, gate_slice, parse_name
from lstm_gradcheck.report import StepLocalization, TensorSummary

__all__ = ["localize_steps", "suffix_case", "MAX_SUFFIX_STEPS"]

MAX_SUFFIX_STEPS = 64
_PER_STEP_KINDS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


def localize_steps(case: Case, impl: Implementation, tensors: Sequence[TensorSummary]) -> tuple[StepLocalization, ...]:
    """Step localizations for the mismatching tensors of a report."""
    bad = [t for t in tensors if t.status == "mismatch" and t.record is not None]
    per_step_names = [t.name for t in bad if parse_name(t.name).kind in _PER_STEP_KINDS]
    if impl.per_step is not None and per_step_names:
        located = _per_step(case, impl, [t for t in bad if t.name in per_step_names])
        if located is not None:
            return located
    return _suffix(case, impl, bad)


def _per_step(case: Case, impl: Implementation, bad: Sequence[TensorSummary]) -> tuple[StepLocalization, ...] | None:
    from lstm_gradcheck.oracles.torch_autograd import torch_grads  # noqa: PLC0415 (torch loads only here)

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


def suffix_case(case: Case, steps: int) -> Case:
    """Each sequence's last ``steps`` valid steps, started from the exact states before them.

    Sequence b (length l_b) keeps steps ``max(0, l_b - steps) .. l_b - 1``; its
    initial h, c (every layer) are the reference forward's states just before
    that window, so the suffix case's gradients are exactly the full case's
    per-step contributions of those steps (BPTT flows backwards in time).
    """
    from lstm_gradcheck.reference.lstm import forward_layers  # noqa: PLC0415

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
    return case.replace(
        config=cfg.replace(seq_len=steps),
        x=x,
        h0=h0,
        c0=c0,
        targets=case.targets if targets is None else targets,
        lengths=None if np.all(new_lengths == steps) else new_lengths.astype(np.int64),
    )


def _suffix(case: Case, impl: Implementation, bad: Sequence[TensorSummary]) -> tuple[StepLocalization, ...]:
    """Run the implementation and torch on each sequence's last T' = 1..T steps; per
    tensor and gate, the error over its allowance for each T' (``errors[T - T']``)."""
    from lstm_gradcheck.oracles.torch_autograd import torch_grads  # noqa: PLC0415

    t_len = case.config.seq_len
    if t_len > MAX_SUFFIX_STEPS:
        return ()
    hidden = case.config.hidden_size
    names = [t.name for t in bad]
    nan = float("nan")
    ratios = {n: [nan] * t_len for n in names}
    gates = {n: [[nan] * t_len for _ in GATES] for n in names}
    for steps in range(1, t_len + 1):
        cut = suffix_case(case, steps)
        outcome = call_implementation(impl, cut)
        oracle = torch_grads(cut)
        tolerance = make_tolerance(cut.config.dtype, oracle.grads, conditioning_allowance(cut))
        column = t_len - steps  # the earliest step the suffix covers (for full-length sequences)
        for name in names:
            got = outcome.grads.get(name) if outcome.status == OK else None
            if got is None:
                continue
            scale = float(np.max(np.abs(oracle.grads[name]), initial=0.0))
            err = np.abs(np.asarray(got, dtype=np.float64) - oracle.grads[name]) / tolerance.allowed(name, scale)
            ratios[name][column] = float(err.max(initial=0.0))
            if parse_name(name).kind in _PER_STEP_KINDS:
                for k, g in enumerate(GATES):
                    gates[name][k][column] = float(err[gate_slice(g, hidden)].max(initial=0.0))
    out = []
    for name in names:
        over = [t for t, r in enumerate(ratios[name]) if r > 1.0]
        entry = max(over) if over else None
        gate_rows = tuple(tuple(row) for row in gates[name]) if parse_name(name).kind in _PER_STEP_KINDS else ()
        out.append(StepLocalization(name, "suffix", entry, tuple(ratios[name]), 1.0, gate_rows))
    return tuple(out)
