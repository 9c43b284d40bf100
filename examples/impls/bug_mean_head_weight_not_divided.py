"""reduction mean: head.weight's gradient is never divided by the count.

Trigger: reduction mean, a live loss and a count >= 2.
Minimal case: reduction mean, batch 1, count 2 (as for mean_divides_by_batch, or batch 2).
(A live loss: anything but cross_entropy over output_size 1, which is identically 0.)
"""

from textbook_lstm import make_grads

grads = make_grads("mean_head_weight_not_divided")
