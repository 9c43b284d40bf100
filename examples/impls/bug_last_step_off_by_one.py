"""loss_at last: the head's gradient enters hs[t_last] instead of hs[t_last + 1], one step early.

Trigger: loss_at last and a live loss (at seq_len 1 the gradient lands on h0).
Minimal case: loss_at last, one step, one layer, batch 1, a live loss.
(A live loss: anything but cross_entropy over output_size 1, which is identically 0.)
"""

from textbook_lstm import make_grads

grads = make_grads("last_step_off_by_one")
