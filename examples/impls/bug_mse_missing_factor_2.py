"""The mse gradient is y - target instead of 2 (y - target).

Trigger: loss mse.
Minimal case: loss mse, every size 1.
"""

from textbook_lstm import make_grads

grads = make_grads("mse_missing_factor_2")
