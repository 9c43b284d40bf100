"""The final-state term's dc_n is ignored: the c-gradient of the last step starts at 0.

Trigger: final_state.
Minimal case: final_state, every size 1 (cross_entropy over 1 class is fine: dc_n alone matters).
"""

from textbook_lstm import make_grads

grads = make_grads("final_state_ignores_dc_n")
