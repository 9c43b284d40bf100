"""bias_hh_l0's gradient of input-gate unit 0 is off by a relative 1e-5.

Trigger: float64 and some gradient reaches the LSTM (in float32 1e-5 is within the tolerance 4.8e-5).
Minimal case: float64, every size 1, a live loss or the final-state term.
(A live loss: anything but cross_entropy over output_size 1, which is identically 0.)
"""

from textbook_lstm import make_grads

grads = make_grads("tiny_error_one_element")
