"""Comparing an implementation's loss and gradients with an oracle's, under the one tolerance rule."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from lstm_gradcheck.oracles.records import MISMATCH, NOT_PROVIDED, OK, CheckResult, LossResult, TensorResult
from lstm_gradcheck.oracles.tolerance import VANISHING_FRACTION, Tolerance
from lstm_gradcheck.reference.case import Case
from lstm_gradcheck.reference.config import LSTMConfig
from lstm_gradcheck.reference.layout import gradient_shapes, model_gradient_names
from lstm_gradcheck.reference.locations import locate

__all__ = ["compare_tensor", "compare_gradients"]


def compare_tensor(
    name: str,
    analytic: np.ndarray | None,
    oracle_value: np.ndarray,
    tolerance: Tolerance,
    hidden_size: int | LSTMConfig,
    oracle: str,
    oracle_error: np.ndarray | None = None,
) -> TensorResult:
    """Compare one gradient tensor under ``tolerance`` (Note [Tolerance rule]); ``hidden_size`` is the
    case's config (or a plain LSTM's hidden size), for the worst element's location."""
    if analytic is None:
        return TensorResult(name, NOT_PROVIDED, oracle, size=int(np.size(oracle_value)))
    o = np.asarray(oracle_value, dtype=np.float64)
    a = np.asarray(analytic, dtype=np.float64)
    err = np.abs(a - o)
    scale = float(np.max(np.abs(o), initial=0.0))
    allowed = tolerance.allowed(name, scale)
    per_element = np.full(o.shape, allowed)
    if oracle_error is not None:
        per_element = per_element + tolerance.oracle_error_factor * np.asarray(oracle_error, dtype=np.float64)
    ill = tolerance.ill_conditioned(name, scale)
    # Written as "not within" so that a NaN anywhere counts as over (NaN > x is False).
    over = ~(err <= per_element) & (not ill)
    err = np.where(np.isfinite(err), err, np.inf)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(per_element > 0, err / per_element, np.where(err > 0, np.inf, 0.0))
    flat = int(np.argmax(ratio)) if ratio.size else 0
    index = np.unravel_index(flat, o.shape) if o.size else ()
    max_abs = float(err.max(initial=0.0))
    return TensorResult(
        name=name,
        status=MISMATCH if over.any() else OK,
        oracle=oracle,
        max_abs_err=max_abs,
        max_rel_err=max_abs / scale if scale > 0 else (0.0 if max_abs == 0 else math.inf),
        scale=scale,
        allowed=float(per_element.flat[flat]) if o.size else allowed,
        bad=int(over.sum()),
        size=int(o.size),
        worst=locate(name, tuple(int(i) for i in index), hidden_size) if o.size else None,
        analytic_value=float(a[index]) if o.size else math.nan,
        oracle_value=float(o[index]) if o.size else math.nan,
        ill_conditioned=ill,
        vanishing=tolerance.rtol * scale < tolerance.floor and scale < VANISHING_FRACTION * tolerance.global_scale,
        worst_ratio=float(ratio.flat[flat]) if o.size else math.nan,
    )


def compare_gradients(
    case: Case,
    loss: float | None,
    analytic: Mapping[str, np.ndarray],
    oracle_loss: float | None,
    oracle_grads: Mapping[str, np.ndarray],
    oracle: str,
    *,
    tolerance: Tolerance,
    oracle_errors: Mapping[str, np.ndarray] | None = None,
    names: Sequence[str] | None = None,
) -> CheckResult:
    """Compare an implementation's loss and gradients with one oracle's.

    Args:
        case: the case both were computed on.
        loss, analytic: the implementation's loss and gradients (missing keys
            are reported as "not provided").
        oracle_loss, oracle_grads: the oracle's (``oracle_loss`` may be None
            for oracles that do not evaluate the loss).
        oracle: the oracle's name, for the records.
        tolerance: the rule's numbers for this comparison
            (:meth:`lstm_gradcheck.oracles.judging.JudgingContext.tolerance`).
        oracle_errors: per-element error estimates of the oracle, if any.
        names: which tensors to compare (default: every name the oracle gave).
    """
    cfg = case.config
    shapes = gradient_shapes(cfg)
    order = [n for n in model_gradient_names(cfg) if n in oracle_grads]
    if names is not None:
        order = [n for n in order if n in names]
    results = []
    for name in order:
        oracle_value = np.asarray(oracle_grads[name]).reshape(shapes[name])
        error = None if oracle_errors is None else oracle_errors.get(name)
        results.append(compare_tensor(name, analytic.get(name), oracle_value, tolerance, cfg, oracle, error))
    loss_result = None
    if loss is not None and oracle_loss is not None:
        allowed = tolerance.allowed_loss(float(oracle_loss))
        abs_err = abs(float(loss) - float(oracle_loss))
        ill = tolerance.ill_conditioned("loss", abs(float(oracle_loss)))
        status = OK if (abs_err <= allowed or ill) else MISMATCH  # a NaN loss is never <= allowed
        loss_result = LossResult(status, float(loss), float(oracle_loss), abs_err, allowed, ill)
    return CheckResult(oracle, tolerance, loss_result, tuple(results))
