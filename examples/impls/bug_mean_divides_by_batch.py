"""reduction mean divides the loss and its gradient by the batch size, not by torch's count.

Trigger: reduction mean, a live loss, and torch's count (scored pairs for cross_entropy, elements for mse/bce)
!= batch_size.
Minimal case: reduction mean, batch 1, and count 2: two steps of cross_entropy (2 classes) or one step of
mse/bce with 2 outputs.
(A live loss: anything but cross_entropy over output_size 1, which is identically 0.)
"""

from textbook_lstm import make_grads

grads = make_grads("mean_divides_by_batch")
