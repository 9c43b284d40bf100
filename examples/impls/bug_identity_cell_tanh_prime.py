"""cell_output identity: the backward still multiplies dh * o by tanh'(c).

Trigger: cell_output identity and some gradient reaches the LSTM.
Minimal case: cell_output identity, every size 1, a live loss or the final-state term.
(A live loss: anything but cross_entropy over output_size 1, which is identically 0.)
"""

from textbook_lstm import make_grads

grads = make_grads("identity_cell_tanh_prime")
