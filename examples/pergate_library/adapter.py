"""lstm-gradcheck adapter for minilstm.py (a stateful layer, zero initial states): layout and calls only.

lstm-gradcheck search --impl examples/pergate_library/adapter.py:grads
"""

from minilstm import LSTMLayer

from lstm_gradcheck import Layout, head

# Per-gate [A_prev, X] @ W_g (hidden first), biases (1, H) rows, gates f, u (input), c, o; no forget_bias.
LAYOUT = Layout(
    gates="fuco", rows=True, concat="hx", bias="one", bias_shape="row", per_gate=True, fold_forget_bias=True
)


def grads(case):
    cfg = case.config
    if cfg.num_layers != 1 or (cfg.h0, cfg.c0) != ("zero", "zero") or cfg.cell_output != "tanh":
        raise NotImplementedError("minilstm.LSTMLayer: one layer, zero initial states, h = o tanh(c)")
    if cfg.final_state or case.lengths is not None:
        raise NotImplementedError("minilstm.LSTMLayer: no final-state term, no variable lengths")
    layer = LSTMLayer(cfg.input_size, cfg.hidden_size)
    p = LAYOUT.params(case)
    layer.parameters.update({f"{kind}{gate}": block for kind in ("W", "b") for gate, block in p[kind].items()})
    A = layer.forward(case.x.transpose(1, 2, 0))  # (n_ex, n_in, n_t)
    loss, dh_top, head_grads = head(case, A.transpose(2, 0, 1))
    dX = layer.backward(dh_top.transpose(1, 2, 0))
    g = layer.gradients
    per_gate = {kind: {gate: g[f"{kind}{gate}"] for gate in LAYOUT.gates} for kind in ("W", "b")}
    return loss, {**LAYOUT.grads(per_gate, case), **head_grads, "x": dX.transpose(2, 0, 1)}
