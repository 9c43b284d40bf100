"""head.bias's gradient is dy.mean(axis=0) over the batch instead of the sum.

Trigger: batch_size >= 2 and a live loss.
Minimal case: batch_size 2, every other size 1, a live loss.
(A live loss: anything but cross_entropy over output_size 1, which is identically 0.)
"""

from textbook_lstm import make_grads

grads = make_grads("head_bias_batch_mean")
