"""The hand-written NumPy reference for the contract's stacked LSTM.

Public surface: :class:`LSTMConfig`, :class:`Case`, :func:`make_case`, and the
contract's :func:`grads`, plus :func:`forward` / :func:`backward` with an
explicit cache for callers that want the intermediate values.
"""

from lstm_gradcheck.reference.case import Case, make_case
from lstm_gradcheck.reference.config import CaseError, LSTMConfig
from lstm_gradcheck.reference.lstm import backward, forward, grads

__all__ = ["Case", "CaseError", "LSTMConfig", "backward", "forward", "grads", "make_case"]
