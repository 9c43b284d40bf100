"""lstm-gradcheck adapter for bilstm.py (one flat vector, two directions, stacked): layout and calls only.

lstm-gradcheck search --impl examples/bidirectional_library/adapter.py:grads
"""

from bilstm import backward, forward

from lstm_gradcheck import Layout, flat_grads, flat_params, head

# theta: per layer and direction Wx, Wh, bx, bh (cuDNN's order), rows interleaved per unit, gates a, i, f, o.
LAYOUT = Layout(gates="aifo", letters={"a": "g"}, interleaved=True, fold_forget_bias=True)


def grads(case):
    cfg = case.config
    if cfg.peepholes or cfg.proj_size or cfg.coupled or cfg.cell_output != "tanh" or case.lengths is not None:
        raise NotImplementedError("bilstm: no peepholes, projection or coupled gates; h = o tanh(c); no lengths")
    theta = flat_params(case, LAYOUT)
    out, h_n, c_n, caches = forward(theta, case.x, case.h0, case.c0, cfg.hidden_size, cfg.num_directions)
    loss, d_out, head_grads = head(case, out, h_n, c_n)
    dtheta, dx, dh0, dc0 = backward(d_out, caches, case.dh_n, case.dc_n)
    return loss, {**flat_grads(dtheta, case, LAYOUT), **head_grads, "x": dx, "h0": dh0, "c0": dc0}
