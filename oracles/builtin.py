"""Registers the built-in oracles; torch is imported only when a torch oracle runs."""

from __future__ import annotations

from oracles.registry import FullGradient, OracleSpec, register
from reference.case import Case
from reference.config import LSTMConfig


def _torch(case: Case) -> FullGradient:
    from oracles.torch_autograd import torch_grads  # noqa: PLC0415 (torch loads only when used)

    result = torch_grads(case)
    return FullGradient(result.loss, result.grads, forward_passes=1)


def _torch_nn(case: Case) -> FullGradient:
    from oracles.torch_nn import nn_grads  # noqa: PLC0415

    result = nn_grads(case)
    return FullGradient(result.loss, result.grads, forward_passes=1)


def torch_nn_unfit(config: LSTMConfig) -> str | None:
    """Why torch.nn.LSTM cannot express ``config`` (None if it can)."""
    if config.cell_output != "tanh":
        return "cell_output 'identity' (h = o*c): torch.nn.LSTM always computes h = o*tanh(c)"
    return None


register(
    OracleSpec(
        "torch",
        "the contract's equations in torch float64 under autograd",
        unfit=lambda config: None,
        gradient=_torch,
    )
)
register(
    OracleSpec(
        "torch-nn",
        "the real torch.nn.LSTM + nn.Linear + torch's loss modules, float64",
        unfit=torch_nn_unfit,
        gradient=_torch_nn,
    )
)
