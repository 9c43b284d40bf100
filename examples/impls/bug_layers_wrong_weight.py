"""The gradient handed to the layer below is dz @ W_hh instead of dz @ W_ih.

Trigger: num_layers >= 2 and some gradient reaches the top layer (a live loss or the final-state term).
Minimal case: num_layers == 2, one step, batch 1.
(A live loss: anything but cross_entropy over output_size 1, which is identically 0.)
"""

from textbook_lstm import make_grads

grads = make_grads("layers_wrong_weight")
