"""The backward treats padding steps as real steps (gate gradients, nonzero dx on padding).

Trigger: some length < seq_len and final_state (only dh_n, dc_n reach the padding steps).
Minimal case: seq_len 2, batch 1, lengths [1], final_state, one layer.
"""

from textbook_lstm import make_grads

grads = make_grads("lengths_backward_unmasked")
