"""With loss_at every the loss mask ignores lengths: padding steps are scored too.

Trigger: loss_at every, some length < seq_len, and a live loss.
Minimal case: seq_len 2, batch 1, lengths [1], loss_at every, a live loss, one layer.
(A live loss: anything but cross_entropy over output_size 1, which is identically 0.)
"""

from textbook_lstm import make_grads

grads = make_grads("lengths_padding_scored")
