"""The benchmark's yardsticks, in torch: ``gradcheck`` and one bare ``torch.nn.LSTM`` pass, timed.

:func:`time_gradcheck` runs ``gradcheck(fast_mode=False)`` over every
parameter and ``x`` (h0, c0, the targets are constants) of the case's model
as ``torch.nn.LSTM`` + ``torch.nn.Linear`` + torch's loss in float64;
:func:`forward_backward_pass` is one forward and backward, ready to time.
Both take what ``torch.nn.LSTM`` expresses directly: tanh cell output,
forget_bias 0, no lengths, no final-state term.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lstm_gradcheck.reference.case import Case
from lstm_gradcheck.reference.layout import HEAD_BIAS, HEAD_WEIGHT, STATE_INPUTS

__all__ = ["GradcheckTiming", "gradcheck_inputs", "time_gradcheck", "forward_backward_pass"]


@dataclass(frozen=True)
class GradcheckTiming:
    """Seconds of one ``gradcheck`` call, its verdict, the number of checked input
    elements and of forward passes its numerical Jacobian takes (2 per element)."""

    seconds: float
    passed: bool
    inputs: int
    forward_passes: int


def _supported(case: Case) -> None:
    cfg = case.config
    if cfg.cell_output != "tanh" or case.lengths is not None or cfg.final_state or cfg.forget_bias != 0:
        raise ValueError(
            "torch gradcheck adapter: needs cell_output tanh, forget_bias 0, no lengths, final_state False"
        )


def gradcheck_inputs(case: Case) -> int:
    """How many scalars gradcheck perturbs: every parameter element and x."""
    return sum(int(a.size) for a in case.params.values()) + int(case.x.size)


def time_gradcheck(case: Case, fast_mode: bool = False) -> GradcheckTiming:
    """Run ``torch.autograd.gradcheck(fast_mode=...)`` on ``case``'s model in float64; return its time.

    The checked inputs are the modules' own parameters and x, as a user checks
    a module: gradcheck perturbs them in place and the closure runs the modules.
    """
    _supported(case)
    cfg = case.config
    lstm = torch.nn.LSTM(cfg.input_size, cfg.hidden_size, cfg.num_layers).double()
    head = torch.nn.Linear(cfg.hidden_size, cfg.output_size).double()
    with torch.no_grad():
        for name, param in lstm.named_parameters():
            param.copy_(torch.tensor(np.array(case.params[name], dtype=np.float64)))
        head.weight.copy_(torch.tensor(np.array(case.params[HEAD_WEIGHT], dtype=np.float64)))
        head.bias.copy_(torch.tensor(np.array(case.params[HEAD_BIAS], dtype=np.float64)))
    x = torch.tensor(np.asarray(case.x, dtype=np.float64), requires_grad=True)
    h0 = torch.tensor(np.asarray(case.h0, dtype=np.float64))
    c0 = torch.tensor(np.asarray(case.c0, dtype=np.float64))
    targets = torch.tensor(np.array(case.targets))

    def loss_of(*inputs: torch.Tensor) -> torch.Tensor:
        out, _ = lstm(inputs[-1], (h0, c0))
        if cfg.loss_at == "last":
            out = out[-1:]
        flat = head(out).reshape(-1, cfg.output_size)
        if cfg.loss == "cross_entropy":
            return F.cross_entropy(flat, targets.reshape(-1), reduction=cfg.reduction)
        tgt = targets.reshape(flat.shape).to(flat.dtype)
        if cfg.loss == "mse":
            return F.mse_loss(flat, tgt, reduction=cfg.reduction)
        return F.binary_cross_entropy_with_logits(flat, tgt, reduction=cfg.reduction)

    inputs = (*lstm.parameters(), *head.parameters(), x)
    start = time.perf_counter()
    passed = torch.autograd.gradcheck(loss_of, inputs, fast_mode=fast_mode, raise_exception=False)
    seconds = time.perf_counter() - start
    n = gradcheck_inputs(case)
    # Fast mode checks one random projection of the Jacobian: two forwards per output.
    return GradcheckTiming(seconds, bool(passed), n, 2 if fast_mode else 2 * n)


_LOSSES = {"cross_entropy": nn.CrossEntropyLoss, "mse": nn.MSELoss, "bce": nn.BCEWithLogitsLoss}


def forward_backward_pass(case: Case) -> Callable[[], None]:
    """One torch.nn.LSTM forward+backward pass on ``case``, ready to time.

    The modules and tensors are built once, here (as the reference receives
    ready arrays); each call clears the gradients, then runs the LSTM, the
    head, the loss and ``backward()`` to every parameter and x, h0, c0, in the
    case's dtype, with torch's default (all-core) threads. For the speed benchmark.
    """
    cfg = case.config
    dtype = torch.float64 if cfg.dtype == "float64" else torch.float32
    lstm = nn.LSTM(cfg.input_size, cfg.hidden_size, num_layers=cfg.num_layers, dtype=dtype)
    head = nn.Linear(cfg.hidden_size, cfg.output_size, dtype=dtype)
    with torch.no_grad():
        for name, value in case.params.items():
            module, attr = (head, name.split(".", 1)[1]) if name in (HEAD_WEIGHT, HEAD_BIAS) else (lstm, name)
            getattr(module, attr).copy_(torch.tensor(np.array(value)))
    states = [torch.tensor(np.array(getattr(case, n)), requires_grad=True) for n in STATE_INPUTS]
    loss_fn = _LOSSES[cfg.loss](reduction=cfg.reduction)
    targets = torch.tensor(np.array(case.targets))
    targets = targets.reshape(-1) if cfg.loss == "cross_entropy" else targets.reshape(-1, cfg.output_size)
    last = cfg.loss_at == "last"
    leaves = (*lstm.parameters(), *head.parameters(), *states)

    def one_pass() -> None:
        for p in leaves:
            p.grad = None
        out, _ = lstm(states[0], (states[1], states[2]))
        y = head(out[-1] if last else out).reshape(-1, cfg.output_size)
        loss_fn(y, targets).backward()

    return one_pass
