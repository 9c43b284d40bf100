"""The hand-written NumPy reference for the contract's stacked LSTM.

Public surface: :class:`LSTMConfig`, :class:`Case`, :func:`make_case`, and the
contract's :func:`grads`, plus :func:`forward` / :func:`backward` with an
explicit cache for callers that want the intermediate values.
"""

from reference.case import Case, make_case
from reference.config import CaseError, LSTMConfig
from reference.lstm import backward, forward, grads

__all__ = ["Case", "CaseError", "LSTMConfig", "backward", "forward", "grads", "make_case"]
