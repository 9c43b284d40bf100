"""lstm-gradcheck adapter for peeplstm.py (peepholes, stacked layers): layout and calls only.

lstm-gradcheck search --impl examples/peephole_library/adapter.py:grads
"""

from peeplstm import backward, forward

from lstm_gradcheck import Layout, head

# x @ W + h @ U + b, gate columns z (the block input, our g), i, f, o; no forget_bias of its own.
LAYOUT = Layout(gates="zifo", letters={"z": "g"}, rows=True, bias="one", fold_forget_bias=True)
NAMES = {"Wx": "W", "Wh": "U", "b": "b", "wci": "p_i", "wcf": "p_f", "wco": "p_o"}  # ours -> peeplstm's


def grads(case):
    cfg = case.config
    if cfg.proj_size or cfg.bidirectional or cfg.coupled or cfg.cell_output != "tanh" or case.lengths is not None:
        raise NotImplementedError("peeplstm: one direction, peepholes or none, h = o tanh(c), no lengths")
    layers = [{NAMES[key]: a for key, a in LAYOUT.params(case, k).items()} for k in range(cfg.num_layers)]
    top, h_n, c_n, caches = forward(case.x, case.h0, case.c0, layers)
    loss, d_top, out = head(case, top, h_n, c_n)
    dx, dh0, dc0, layer_grads = backward(d_top, caches, case.dh_n, case.dc_n)
    for k, g in enumerate(layer_grads):
        out.update(LAYOUT.grads({key: g[name] for key, name in NAMES.items() if name in g}, case, k))
    return loss, {**out, "x": dx, "h0": dh0, "c0": dc0}
