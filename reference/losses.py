"""The loss heads: which steps are scored, the loss and its gradient wrt the logits.

For scored step t and batch element b, with logits y = y_t[b] (O,):

    cross_entropy:  l = logsumexp(y) - y[target]           dl/dy = softmax(y) - onehot(target)
    mse:            l = sum_o (y[o] - target[o])^2          dl/dy = 2 (y - target)
    bce:            l = sum_o softplus(y[o]) - target[o] y[o]   dl/dy = sigmoid(y) - target
    upstream:       l = sum_h dh_top[h] y[h]                dl/dy = dh_top

For ``upstream`` (the layer-only loss) there is no head: ``y`` is the top
layer's h itself and the targets are the fixed upstream gradient dh_top.

The loss is ``sum over scored (t, b) of l``, divided by the number of terms
torch averages over when ``reduction == "mean"``: scored (t, b) pairs for
cross_entropy, scored (t, b, o) elements for mse and bce.

Every function accepts logits with extra leading axes (K stacked copies of
the case, used by the finite-difference oracles) and is analytic: it runs
unchanged in complex128 for the complex-step oracle. The shift of the
log-sum-exp and the branch of softplus are taken from the real part, which
keeps them exact and differentiable there.
"""

from __future__ import annotations

import numpy as np

from lstm_gradcheck.reference.activations import sigmoid
from lstm_gradcheck.reference.config import UPSTREAM, LSTMConfig

__all__ = ["ScoredSteps", "scored_steps", "head_loss", "gradient_terms", "loss_terms"]


class ScoredSteps:
    """Which (t, b) pairs are scored and the per-step targets.

    Attributes:
        weight: (T, B) 1.0 where the step is scored, else 0.0 (float64).
        targets: per-step targets aligned with the logits: int64 (T, B) for
            cross_entropy, (T, B, O) floats otherwise; zeros where unscored.
        count: the divisor of ``reduction == "mean"`` (1 for ``sum``).
    """

    __slots__ = ("weight", "targets", "count")

    def __init__(self, weight: np.ndarray, targets: np.ndarray, count: int) -> None:
        self.weight = weight
        self.targets = targets
        self.count = count


def scored_steps(config: LSTMConfig, targets: np.ndarray, lengths: np.ndarray | None) -> ScoredSteps:
    """Expand ``case.targets`` to every step and mark the scored steps.

    Steps at or past ``lengths[b]`` are padding and never scored; with
    ``loss_at == "last"`` sequence b is scored at step ``lengths[b] - 1``.
    """
    t_len, batch = config.seq_len, config.batch_size
    length = np.full(batch, t_len, dtype=np.int64) if lengths is None else np.asarray(lengths)
    steps = np.arange(t_len)[:, None]
    if config.loss_at == "every":
        weight = (steps < length[None, :]).astype(np.float64)
        full = np.array(targets, copy=True)
    else:
        weight = (steps == (length - 1)[None, :]).astype(np.float64)
        full = np.zeros((t_len, *targets.shape), dtype=targets.dtype)
        full[length - 1, np.arange(batch)] = targets
    if config.loss == "cross_entropy":
        full = np.where(weight > 0, full, 0)
        terms = int(weight.sum())
    else:
        full = full * weight[..., None].astype(full.dtype)
        terms = int(weight.sum()) * config.output_size
    count = terms if config.reduction == "mean" else 1
    return ScoredSteps(weight, full, count)


def _softplus(y: np.ndarray) -> np.ndarray:
    positive = y.real > 0
    # log(1 + e^y) = y + log1p(e^-y) for Re y > 0, log1p(e^y) otherwise: e^(-|y|) never overflows.
    return np.where(positive, y, 0) + np.log1p(np.exp(np.where(positive, -y, y)))


def head_loss(
    y: np.ndarray, config: LSTMConfig, scored: ScoredSteps, need_grad: bool = True
) -> tuple[np.ndarray, np.ndarray | None]:
    """Loss of logits ``y`` (..., T, B, O) and, if ``need_grad``, dloss/dy.

    Returns ``(loss, dy)``: ``loss`` has the leading shape of ``y`` (a 0-d
    array for one case), ``dy`` the shape of ``y`` (or ``None``).
    """
    weight = scored.weight.astype(y.real.dtype)
    scale = 1.0 / scored.count
    if config.loss == "cross_entropy":
        shift = np.max(y.real, axis=-1, keepdims=True)
        e = np.exp(y - shift)
        total = np.sum(e, axis=-1, keepdims=True)
        index = np.broadcast_to(scored.targets[..., None], (*y.shape[:-1], 1))
        picked = np.take_along_axis(y, index, axis=-1)
        per_term = (shift + np.log(total) - picked)[..., 0]
        loss = np.sum(per_term * weight, axis=(-2, -1)) * scale
        if not need_grad:
            return loss, None
        dy = e / total
        np.put_along_axis(dy, index, np.take_along_axis(dy, index, axis=-1) - 1, axis=-1)
    elif config.loss == UPSTREAM:
        loss = np.sum(np.sum(scored.targets * y, axis=-1) * weight, axis=(-2, -1)) * scale
        if not need_grad:
            return loss, None
        dy = np.array(np.broadcast_to(scored.targets, y.shape), dtype=np.result_type(y, scored.targets))
    elif config.loss == "mse":
        diff = y - scored.targets
        loss = np.sum(np.sum(diff * diff, axis=-1) * weight, axis=(-2, -1)) * scale
        if not need_grad:
            return loss, None
        dy = 2 * diff
    else:
        per_term = np.sum(_softplus(y) - scored.targets * y, axis=-1)
        loss = np.sum(per_term * weight, axis=(-2, -1)) * scale
        if not need_grad:
            return loss, None
        dy = sigmoid(y) - scored.targets
    dy *= (weight * scale)[..., None]
    return loss, dy


def gradient_terms(dy: np.ndarray, config: LSTMConfig, scored: ScoredSteps) -> np.ndarray:
    """|a| + |a - b| for dl/dy = a - b (module docstring), scaled as ``dy`` is, from ``dy``
    (..., T, B, O) as :func:`head_loss` returns it: the size of what an implementation
    rounds when it forms dy in its own dtype.

    ``a`` is softmax(y), 2 y or sigmoid(y), ``b`` the exact target term, so
    ``a = dy + b`` (scaled alike). Where ``a`` nearly equals ``b`` (a confident,
    right prediction) dy is far smaller than ``a``, and rounding ``a`` to
    float32 alone moves dy by eps |a|: a relative error of eps |a| / |dy|,
    which no perturbation of the inputs shows.
    """
    dy = np.asarray(dy).real
    if config.loss == UPSTREAM:
        return np.zeros_like(dy)  # dy is the given dh_top: nothing is rounded forming it
    if config.loss == "cross_entropy":
        b = np.zeros_like(dy)
        np.put_along_axis(b, np.broadcast_to(scored.targets[..., None], (*dy.shape[:-1], 1)), 1.0, axis=-1)
    else:
        b = np.broadcast_to(scored.targets * (2.0 if config.loss == "mse" else 1.0), dy.shape)
    b = b * (scored.weight.astype(dy.dtype)[..., None] / scored.count)
    return np.abs(dy + b) + np.abs(dy)


def loss_terms(y: np.ndarray, config: LSTMConfig, scored: ScoredSteps) -> float:
    """The size of what an implementation rounds when it forms the loss of logits ``y``
    (T, B, O) in its own dtype, weighted and scaled as the loss is: rounding each by eps
    can move the loss by about eps times this.

    A cross-entropy term logsumexp(y) - y[target] is a difference of the shift max y,
    log(sum e^(y - max)) (whose sum, at least 1, is itself rounded) and y[target]; a
    confident, right prediction makes the term far smaller than those, so its float32
    value is only good to eps |max y|, however exact the logits. Likewise softplus(y) -
    target y for bce and dh_top y (of either sign) for upstream; mse adds squares.
    """
    y = np.asarray(y).real.astype(np.float64)
    weight = scored.weight / scored.count
    if config.loss == "cross_entropy":
        shift = np.max(y, axis=-1)
        picked = np.take_along_axis(y, scored.targets[..., None], axis=-1)[..., 0]
        log_total = np.log(np.sum(np.exp(y - shift[..., None]), axis=-1))
        per_term = np.abs(shift) + log_total + 1.0 + np.abs(picked)
    elif config.loss == UPSTREAM:
        per_term = np.sum(np.abs(scored.targets * y), axis=-1)
    elif config.loss == "mse":
        per_term = np.sum((y - scored.targets) ** 2, axis=-1)
    else:
        per_term = np.sum(_softplus(y) + np.abs(scored.targets * y), axis=-1)
    return float(np.sum(per_term * weight))
