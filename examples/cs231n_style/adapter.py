"""lstm-gradcheck adapter for rnn_layers.py: the layout, the calls, nothing re-derived.

lstm-gradcheck search --impl examples/cs231n_style/adapter.py:grads
"""

from rnn_layers import lstm_backward, lstm_forward

from lstm_gradcheck import Layout, head

# x @ Wx with gate columns i, f, o, g and one bias; rnn_layers has no forget_bias, so it is folded in.
LAYOUT = Layout(gates="ifog", rows=True, bias="one", fold_forget_bias=True)


def grads(case):
    cfg = case.config
    refused = cfg.num_layers != 1 or cfg.c0 != "zero" or cfg.cell_output != "tanh" or cfg.final_state
    if refused or case.lengths is not None:
        raise NotImplementedError("rnn_layers.py: one layer, c0 = 0, h = o tanh(c), no lengths, no final state")
    p = LAYOUT.params(case)
    h, cache = lstm_forward(case.x.transpose(1, 0, 2), case.h0[0], p["Wx"], p["Wh"], p["b"])  # batch-major
    loss, dh_top, head_grads = head(case, h.transpose(1, 0, 2))
    dx, dh0, dWx, dWh, db = lstm_backward(dh_top.transpose(1, 0, 2), cache)
    layer = LAYOUT.grads({"Wx": dWx, "Wh": dWh, "b": db}, case)
    return loss, {**layer, **head_grads, "x": dx.transpose(1, 0, 2), "h0": dh0[None]}
