"""lstm-gradcheck: prove an LSTM's hand-derived gradients right, or show exactly where they are wrong."""

__version__ = "0.1.0"
