"""The backward recomputes the forget gate as sigmoid(z_f), without forget_bias.

Trigger: forget_bias != 0 and some gradient reaches the LSTM (a live loss or the final-state term); seq_len 1
suffices: dz_f at step 0 multiplies c0 != 0.
Minimal case: forget_bias != 0, one layer, one step, batch 1, and a live loss (cross_entropy with 2 outputs,
or mse/bce with 1) or the final-state term.
(A live loss: anything but cross_entropy over output_size 1, which is identically 0.)
"""

from textbook_lstm import make_grads

grads = make_grads("forget_bias_backward")
