"""lstm-gradcheck adapter for lstm_network.py: the layout, the calls, nothing re-derived.

lstm-gradcheck search --impl examples/dlcourse_style/adapter.py:grads
"""

import numpy as np
from lstm_network import lstm_backward, lstm_forward

from lstm_gradcheck import Layout, head

# Per-gate W_g @ [a_prev; x] (hidden first), biases (n_a, 1) columns, gates named f, i, c, o;
# lstm_network has no forget_bias of its own, so it is folded into bf.
LAYOUT = Layout(gates="fico", concat="hx", bias="one", bias_shape="column", per_gate=True, fold_forget_bias=True)


def grads(case):
    cfg = case.config
    refused = cfg.num_layers != 1 or cfg.c0 != "zero" or cfg.cell_output != "tanh" or cfg.final_state
    if refused or case.lengths is not None:
        raise NotImplementedError("lstm_network.py: one layer, c0 = 0, h = o tanh(c), no lengths, no final state")
    p = LAYOUT.params(case)
    parameters = {f"{kind}{gate}": block for kind in ("W", "b") for gate, block in p[kind].items()}
    # Wy, by only feed the forward's own softmax prediction, which the backward does not use.
    parameters["Wy"], parameters["by"] = np.zeros((1, cfg.hidden_size)), np.zeros((1, 1))
    a, _, _, caches = lstm_forward(case.x.transpose(2, 1, 0), case.h0[0].T, parameters)  # (n_x, m, T_x)
    loss, dh_top, head_grads = head(case, a.transpose(2, 1, 0))
    g = lstm_backward(dh_top.transpose(2, 1, 0), caches)
    per_gate = {kind: {gate: g[f"d{kind}{gate}"] for gate in LAYOUT.gates} for kind in ("W", "b")}
    layer = LAYOUT.grads(per_gate, case)
    return loss, {**layer, **head_grads, "x": g["dx"].transpose(2, 1, 0), "h0": g["da0"].T[None]}
