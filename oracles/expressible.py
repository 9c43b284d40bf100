"""What the real ``torch.nn.LSTM`` can express of the contract, without importing torch."""

from __future__ import annotations

from lstm_gradcheck.reference.config import LSTMConfig

__all__ = ["torch_nn_unfit"]


def torch_nn_unfit(config: LSTMConfig) -> str | None:
    """Why torch.nn.LSTM cannot express ``config`` (None if it can): it always applies tanh to the
    cell and has neither peephole weights nor coupled gates (it does have proj_size and
    bidirectional)."""
    if config.cell_output != "tanh":
        return "cell_output 'identity' (h = o*c): torch.nn.LSTM always computes h = o*tanh(c)"
    if config.peepholes:
        return "peepholes: torch.nn.LSTM has no peephole weights"
    if config.coupled:
        return "coupled gates (i = 1 - f): torch.nn.LSTM always has its own input gate"
    return None
