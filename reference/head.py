"""The model's head and loss on the top layer's outputs, for the reference and for users' adapters.

For the top layer's outputs ``h_top`` (T, B, D*P), both directions' h concatenated (P =
proj_size or H; D = 2 when bidirectional)::

    y_t  = W_head h_t + b_head                        (T, B, O)   the contract's losses
    y_t  = h_t                                        (T, B, D*P) the layer-only loss "upstream"
    loss = reduce over scored (t, b) of l(y_t[b], target)          (reference.losses)
         + sum(dh_n * h_n) + sum(dc_n * c_n)                       with config.final_state

and backwards ``dh_top = dL/dy W_head`` (``dL/dy`` itself for ``upstream``),
``d head.weight = sum_t,b dL/dy h^T``, ``d head.bias = sum_t,b dL/dy``.

:func:`head` is the public helper for code that has an LSTM but not the
contract's loss: hand it the top layer's outputs and it returns the loss, the
gradient to hand to the LSTM's own backward, and the head's gradients.
"""

from __future__ import annotations

import numpy as np

from lstm_gradcheck.reference.case import Case
from lstm_gradcheck.reference.layout import HEAD_BIAS, HEAD_WEIGHT
from lstm_gradcheck.reference.losses import head_loss, loss_terms, scored_steps

__all__ = ["logits", "loss_and_dy", "head_backward", "final_state_loss", "loss_magnitude", "head"]


def logits(case: Case, h_top: np.ndarray) -> np.ndarray:
    """y (T, B, O) = h_top W_head^T + b_head; for ``upstream``, h_top itself."""
    if not case.config.has_head:
        return h_top
    return h_top @ case.params[HEAD_WEIGHT].T + case.params[HEAD_BIAS]


def loss_and_dy(case: Case, y: np.ndarray) -> tuple[float, np.ndarray]:
    """The loss of logits ``y`` (T, B, O) over the scored steps, reduced, and dL/dy (T, B, O)
    (zero on unscored steps). Without the final-state term."""
    cfg = case.config
    loss, dy = head_loss(y, cfg, scored_steps(cfg, case.targets, case.lengths))
    return float(loss), dy


def head_backward(case: Case, h_top: np.ndarray, dy: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(dL/dh_top (T, B, D*P), {head.weight: (O, D*P), head.bias: (O,)}) from dL/dy; no head
    gradients for ``upstream``, where dL/dh_top is dL/dy."""
    cfg = case.config
    if not cfg.has_head:
        return dy, {}
    flat_dy = dy.reshape(-1, cfg.output_size)
    grads = {
        HEAD_WEIGHT: flat_dy.T @ h_top.reshape(-1, cfg.top_width),
        HEAD_BIAS: flat_dy.sum(axis=0),
    }
    return dy @ case.params[HEAD_WEIGHT], grads


def final_state_loss(case: Case, h_n: np.ndarray, c_n: np.ndarray) -> float:
    """sum(dh_n * h_n) + sum(dc_n * c_n) for every layer's and direction's final states h_n (L*D, B, P),
    c_n (L*D, B, H); 0 without ``config.final_state``. Added after the reduction, never divided."""
    if not case.config.final_state:
        return 0.0
    return float(np.sum(case.dh_n * h_n) + np.sum(case.dc_n * c_n))


def loss_magnitude(case: Case, y: np.ndarray, h_n: np.ndarray, c_n: np.ndarray) -> float:
    """The size of what the loss adds up and rounds: the head's terms
    (:func:`lstm_gradcheck.reference.losses.loss_terms` of ``y`` (T, B, O)) plus
    sum |dh_n h_n| + sum |dc_n c_n| of the final states (L*D, B, P) and (L*D, B, H). What rounding every
    term by eps can move the loss by is eps times this."""
    cfg = case.config
    size = loss_terms(y, cfg, scored_steps(cfg, case.targets, case.lengths))
    if cfg.final_state:
        size += float(np.sum(np.abs(case.dh_n * h_n)) + np.sum(np.abs(case.dc_n * c_n)))
    return size


def head(
    case: Case, h_top: np.ndarray, h_n: np.ndarray | None = None, c_n: np.ndarray | None = None
) -> tuple[float, np.ndarray, dict[str, np.ndarray]]:
    """The contract's head and loss on an LSTM's top-layer outputs, for adapters.

    Args:
        case: the case being checked.
        h_top: (T, B, D*P) the top layer's h at every step, time-major (transpose
            batch-major outputs first), a bidirectional layer's two directions
            concatenated [forward, reverse]; padding steps may hold anything.
        h_n: (L*D, B, P), c_n: (L*D, B, H) every layer's and direction's final states
            (torch's order), required when ``case.config.final_state`` (their term joins the loss).

    Returns:
        ``(loss, dh_top, head_grads)``: the case's whole loss; dL/dh_top (T, B, D*P)
        in the case's dtype, zero on steps that are not scored (padding, every
        step but each sequence's last for ``loss_at`` "last"), to hand to the
        LSTM's backward as the gradient of its outputs; and the head's
        gradients ``{"head.weight", "head.bias"}`` (empty for ``upstream``).
        With ``final_state``, the LSTM's backward must also start from
        ``case.dh_n`` and ``case.dc_n`` at each sequence's last step.

    Raises:
        ValueError: ``h_top`` has the wrong shape, or the case has the
            final-state term and ``h_n``/``c_n`` are missing.
    """
    cfg = case.config
    h_top = np.asarray(h_top)
    expected = (cfg.seq_len, cfg.batch_size, cfg.top_width)
    if h_top.shape != expected:
        raise ValueError(
            f"head: h_top must be the top layer's outputs, time-major {'(T, B, H)' if cfg.is_plain else '(T, B, D*P)'} "
            f"= {expected}, got {h_top.shape} "
            "(transpose batch-major outputs with .transpose(1, 0, 2))"
        )
    if cfg.final_state and (h_n is None or c_n is None):
        raise ValueError(
            "head: this case has the final-state term sum(dh_n * h_n) + sum(dc_n * c_n); pass h_n and c_n "
            "(every layer's final states, (L*D, B, P) and (L*D, B, H)), or raise NotImplementedError for "
            "final_state cases"
        )
    h_top = h_top.astype(cfg.np_dtype, copy=False)
    loss, dy = loss_and_dy(case, logits(case, h_top))
    dh_top, grads = head_backward(case, h_top, dy)
    if cfg.final_state:
        loss += final_state_loss(case, np.asarray(h_n), np.asarray(c_n))
    return loss, dh_top.astype(cfg.np_dtype, copy=False), grads
