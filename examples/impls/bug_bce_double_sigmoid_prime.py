"""The bce gradient sigmoid(y) - target is multiplied by sigmoid'(y) once more.

Trigger: loss bce.
Minimal case: loss bce, every size 1.
"""

from textbook_lstm import make_grads

grads = make_grads("bce_double_sigmoid_prime")
