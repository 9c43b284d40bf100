"""The cell gate g is sigmoid(z_g) instead of tanh(z_g), in the forward and (consistently) in the backward.

The code is right for the model it computes, which is not the contract's LSTM: the loss differs, and so does
every gradient. The report's diagnosis must say the forward differs and the backward is consistent with it.
"""

from textbook_lstm import make_grads

grads = make_grads("cell_gate_sigmoid")
