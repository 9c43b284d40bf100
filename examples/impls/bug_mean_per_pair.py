"""reduction mean with mse/bce averages over the scored (t, b) pairs instead of the (t, b, o) elements.

Trigger: reduction mean, loss mse or bce, output_size >= 2.
Minimal case: reduction mean, mse, output_size 2, everything else 1.
"""

from textbook_lstm import make_grads

grads = make_grads("mean_per_pair")
