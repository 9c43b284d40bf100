"""The cell gate's backward writes tanh'(z_g) as 1 - tanh(z_g) instead of 1 - tanh(z_g)^2.

The forward (and so the loss) is right; on one step only the cell gate's rows of the LSTM's weights and biases
are wrong, and the error enters at the last step. The diagnosis must name the cell gate (g) alone.
"""

from textbook_lstm import make_grads

grads = make_grads("cell_gate_tanh_prime")
