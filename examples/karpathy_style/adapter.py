"""lstm-gradcheck adapter for lstm.py (one fused WLSTM per layer, stacked): layout and calls only.

lstm-gradcheck search --impl examples/karpathy_style/adapter.py:grads
"""

import numpy as np
from lstm import LSTM

from lstm_gradcheck import Layout, head

# Hin = [1, x, h] @ WLSTM: the bias is row 0, gate columns i, f, o, g; no forget_bias of its own.
LAYOUT = Layout(gates="ifog", rows=True, concat="xh", bias="first", fold_forget_bias=True)


def grads(case):
    cfg = case.config
    if case.lengths is not None or cfg.cell_output != "tanh":
        raise NotImplementedError("lstm.py: h = o tanh(c), no variable lengths")
    caches, h_n, c_n, inputs = [], [], [], case.x
    for k in range(cfg.num_layers):  # each layer's outputs are the next one's inputs
        inputs, c_last, h_last, cache = LSTM.forward(inputs, LAYOUT.params(case, k)["W"], case.c0[k], case.h0[k])
        caches.append(cache)
        h_n.append(h_last)
        c_n.append(c_last)
    loss, d_out, out = head(case, inputs, np.stack(h_n), np.stack(c_n))
    dh0, dc0 = np.empty_like(case.h0), np.empty_like(case.c0)
    for k in reversed(range(cfg.num_layers)):
        dcn, dhn = (case.dc_n[k], case.dh_n[k]) if cfg.final_state else (None, None)
        d_out, dW, dc0[k], dh0[k] = LSTM.backward(d_out, caches[k], dcn, dhn)
        out.update(LAYOUT.grads({"W": dW}, case, k))
    return loss, {**out, "x": d_out, "h0": dh0, "c0": dc0}
