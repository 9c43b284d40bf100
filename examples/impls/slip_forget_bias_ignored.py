"""No forget_bias anywhere: code without one whose adapter did not fold it into the bias.

Forward and backward are consistent (the LSTM with forget_bias 0); with forget_bias != 0 the loss and every
gradient differ from the contract's. The diagnosis must say the loss is the contract's at forget_bias 0.
"""

from textbook_lstm import make_grads

grads = make_grads("forget_bias_ignored")
