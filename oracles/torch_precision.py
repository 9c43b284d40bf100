"""Torch's own error in a lower precision: what a torch-native implementation may err k times.

A thin adapter: torch.nn.LSTM (through the torch-native path, so with the contract's head
and loss in the same dtype) and the contract's equations under torch autograd, each in the
case's dtype on the implementation's device, against the exact float64 answer
(Note [Same-precision rule] in :mod:`lstm_gradcheck.oracles.tolerance`).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

from lstm_gradcheck.oracles.expressible import torch_nn_unfit
from lstm_gradcheck.oracles.tolerance import SCALE_FLOOR
from lstm_gradcheck.oracles.torch_autograd import torch_grads
from lstm_gradcheck.oracles.torch_native import MODULE, TORCH_DTYPES, native_grads
from lstm_gradcheck.reference.case import Case

__all__ = ["torch_errors", "relative_error"]


def relative_error(grads: Mapping[str, np.ndarray], exact: Mapping[str, np.ndarray]) -> float:
    """max over tensors of max |g - exact| / max(scale, SCALE_FLOOR * the largest scale)."""
    largest = max((float(np.max(np.abs(g), initial=0.0)) for g in exact.values()), default=0.0)
    worst = 0.0
    for name, value in exact.items():
        scale = max(float(np.max(np.abs(value), initial=0.0)), SCALE_FLOOR * largest)
        if name in grads and scale > 0:
            worst = max(worst, float(np.max(np.abs(np.asarray(grads[name], dtype=np.float64) - value))) / scale)
    return worst


def torch_errors(case: Case, exact: tuple[float, Mapping[str, np.ndarray]], device: str = "cpu") -> tuple[float, float]:
    """The worse of torch.nn.LSTM's and the torch equations' relative error (and loss error) in the
    case's dtype, against the exact answer."""
    exact_loss, exact_grads = exact
    answers = [torch_grads(case, dtype=TORCH_DTYPES[case.config.dtype], device=device)]
    if torch_nn_unfit(case.config) is None:
        loss, grads = native_grads(torch.nn.LSTM, MODULE, device)(case)
        answers.append(type(answers[0])(loss, grads))
    relative = max(relative_error(a.grads, exact_grads) for a in answers)
    loss_error = max(abs(a.loss - float(exact_loss)) for a in answers)
    return relative, loss_error
