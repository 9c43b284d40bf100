"""Oracle ``torch-nn``: the real ``torch.nn.LSTM`` with an ``nn.Linear`` head and torch's loss modules.

A thin adapter. Parameters are copied into the modules by name (the
contract's names are torch's); TensorFlow's constant ``forget_bias`` is folded
into the forget rows of ``bias_ih`` (a constant shift, so the gradient of
``bias_ih`` is unchanged); variable lengths go through
``pack_padded_sequence``; ``proj_size`` and ``bidirectional`` are ``nn.LSTM``'s own
(``weight_hr_l{k}``, the ``_reverse`` parameters, h0 and h_n indexed k * D + d).
``cell_output = "identity"`` (h = o * c), peepholes and coupled gates cannot be
expressed with ``nn.LSTM``: such a case raises :class:`NotExpressible` instead of
being guessed at.
"""

from __future__ import annotations

import time

import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from lstm_gradcheck.oracles.expressible import torch_nn_unfit
from lstm_gradcheck.oracles.torch_autograd import (
    TorchResult,
    final_state_term,
    reduced_loss,
    scored_logits,
    threads_for,
)
from lstm_gradcheck.reference.case import Case
from lstm_gradcheck.reference.layout import HEAD_BIAS, HEAD_WEIGHT, STATE_INPUTS, bias_ih, gate_slice

__all__ = ["NotExpressible", "nn_grads"]

_LOSSES = {"cross_entropy": nn.CrossEntropyLoss, "mse": nn.MSELoss, "bce": nn.BCEWithLogitsLoss}


class NotExpressible(Exception):
    """The case uses a setting that torch.nn.LSTM cannot express."""


def nn_grads(case: Case) -> TorchResult:
    """Loss and gradients of ``case`` from torch.nn.LSTM in float64."""
    with threads_for(case):
        return _nn_grads(case)


def _nn_grads(case: Case) -> TorchResult:
    reason = torch_nn_unfit(case.config)
    if reason is not None:
        raise NotExpressible(reason)
    cfg = case.config
    dtype = torch.float64
    lstm = nn.LSTM(
        cfg.input_size, cfg.hidden_size, num_layers=cfg.num_layers, dtype=dtype,
        proj_size=cfg.proj_size, bidirectional=cfg.bidirectional,
    )  # fmt: skip
    head = nn.Linear(cfg.top_width, cfg.output_size, dtype=dtype)
    forget = gate_slice("f", cfg.hidden_size)
    with torch.no_grad():
        for name, value in case.params.items():
            module, attr = (head, name.split(".", 1)[1]) if name in (HEAD_WEIGHT, HEAD_BIAS) else (lstm, name)
            getattr(module, attr).copy_(torch.tensor(np.array(value, dtype=np.float64)))
        for k in range(cfg.num_layers):
            for d in range(cfg.num_directions):
                getattr(lstm, bias_ih(k, d))[forget] += cfg.forget_bias
    states = {n: torch.tensor(np.array(getattr(case, n), dtype=np.float64), requires_grad=True) for n in STATE_INPUTS}
    named = {**dict(lstm.named_parameters()), **{f"head.{n}": p for n, p in head.named_parameters()}}
    leaves = {**{n: named[n] for n in case.params}, **states}
    start = time.perf_counter()  # the forward and backward alone, for the report's speed ratio
    x = states["x"]
    if case.lengths is None:
        out, (h_n, c_n) = lstm(x, (states["h0"], states["c0"]))
    else:
        lengths = torch.tensor(np.array(case.lengths), dtype=torch.long)
        packed = pack_padded_sequence(x, lengths, enforce_sorted=False)
        packed_out, (h_n, c_n) = lstm(packed, (states["h0"], states["c0"]))
        out, _ = pad_packed_sequence(packed_out, total_length=cfg.seq_len)
    # torch's own loss modules (nn.CrossEntropyLoss, ...); "upstream" has no head and no module.
    if cfg.has_head:
        logits, targets = scored_logits(head(out), case)
        loss = _LOSSES[cfg.loss](reduction=cfg.reduction)(logits, targets)
    else:
        loss = reduced_loss(out, case)
    if cfg.final_state:
        loss = loss + final_state_term(case, h_n, c_n)
    got = torch.autograd.grad(loss, list(leaves.values()))
    seconds = time.perf_counter() - start
    grads = {n: g.detach().numpy().copy() for n, g in zip(leaves, got, strict=True)}
    return TorchResult(float(loss.detach()), grads, forward_backward_seconds=seconds)
