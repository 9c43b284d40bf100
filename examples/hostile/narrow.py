"""Bugs that show only in a corner of the space: the search must reach every region."""

from lstm_gradcheck import reference
from lstm_gradcheck.reference.layout import gate_slice


def grads_unit6(case):
    """Wrong in the forget gate's unit 6 of weight_hh_l0: only at hidden_size >= 7."""
    loss, grads = reference.grads(case)
    hidden = case.config.hidden_size
    if hidden >= 7:
        rows = gate_slice("f", hidden)
        g = grads["weight_hh_l0"].copy()
        g[rows.start + 6] *= 1.05
        grads["weight_hh_l0"] = g
    return loss, grads


def grads_batch1_states(case):
    """Takes random initial states only at batch 1 (one state shared by the batch), and is wrong there."""
    cfg = case.config
    if (cfg.h0 != "zero" or cfg.c0 != "zero") and cfg.batch_size != 1:
        raise NotImplementedError("random initial states only at batch 1 (one state for the batch)")
    loss, grads = reference.grads(case)
    if cfg.c0 != "zero":
        grads["c0"] = grads["c0"] * 1.05
    return loss, grads


def grads_forget_window(case):
    """Wrong only when forget_bias lies in (2, 3)."""
    loss, grads = reference.grads(case)
    if 2 < case.config.forget_bias < 3:
        grads["bias_ih_l0"] = grads["bias_ih_l0"] * 1.05
    return loss, grads
