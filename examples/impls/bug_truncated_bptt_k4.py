"""Truncated BPTT in chunks of 4 steps: dh_next and dc_next are reset to 0 crossing from step 4 to 3.

Trigger: seq_len >= 5 and something reaches step 3 from a later step: the final-state term, or a live loss
with some length >= 5 (where gradients vanish within 4 steps, e.g. forget_bias -5 in float32, the lost part
can fall below the tolerance).
Minimal case: seq_len == 5 (no lengths, or some length 5), one layer, batch 1.
(A live loss: anything but cross_entropy over output_size 1, which is identically 0.)
"""

from textbook_lstm import make_grads

grads = make_grads("truncated_bptt_k4")
