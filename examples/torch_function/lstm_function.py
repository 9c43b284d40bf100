"""A kernel writer's LSTM: a torch.autograd.Function with a hand-written backward, in an nn.Module.

The module has torch.nn.LSTM's constructor, parameter names and call, so lstm-gradcheck
checks it with no adapter at all, in float64, float32 or bfloat16:

    lstm-gradcheck search --impl examples/torch_function/lstm_function.py:LSTM
    lstm-gradcheck report --impl examples/torch_function/lstm_function.py:LSTM --dtype bfloat16

The gradients judged are the ones this backward computes (the forward runs under no_grad).
"""

import math

import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence


class LSTMLayer(torch.autograd.Function):
    """One layer over a whole sequence: x (T, B, I), h0 and c0 (B, H), gates i, f, g, o."""

    @staticmethod
    def forward(ctx, x, h0, c0, w_ih, w_hh, b_ih, b_hh):
        hidden = w_hh.shape[1]
        projected = x @ w_ih.T + b_ih + b_hh
        h, c = h0, c0
        hs, cs, acts, cells = [h0], [c0], [], []
        for t in range(x.shape[0]):
            z = projected[t] + h @ w_hh.T
            i, f, o = (torch.sigmoid(z[:, k * hidden : (k + 1) * hidden]) for k in (0, 1, 3))
            g = torch.tanh(z[:, 2 * hidden : 3 * hidden])
            c = f * c + i * g
            cell = torch.tanh(c)
            h = o * cell
            hs.append(h)
            cs.append(c)
            acts.append(torch.cat([i, f, g, o], dim=1))
            cells.append(cell)
        ctx.save_for_backward(x, w_ih, w_hh, torch.stack(hs), torch.stack(cs), torch.stack(acts), torch.stack(cells))
        return torch.stack(hs[1:]), h, c

    @staticmethod
    def backward(ctx, d_out, d_hn, d_cn):
        x, w_ih, w_hh, hs, cs, acts, cells = ctx.saved_tensors
        hidden = w_hh.shape[1]
        dh_next = torch.zeros_like(hs[0]) if d_hn is None else d_hn
        dc_next = torch.zeros_like(cs[0]) if d_cn is None else d_cn
        dz = torch.empty_like(acts)
        for t in range(x.shape[0] - 1, -1, -1):
            i, f, g, o = acts[t].split(hidden, dim=1)
            dh = dh_next + (0 if d_out is None else d_out[t])
            dc = dc_next + dh * o * (1 - cells[t] ** 2)
            dz[t] = torch.cat([dc * g * i * (1 - i), dc * cs[t] * f * (1 - f), dc * i * (1 - g**2),
                               dh * cells[t] * o * (1 - o)], dim=1)  # fmt: skip
            dh_next = dz[t] @ w_hh
            dc_next = dc * f
        flat = dz.reshape(-1, 4 * hidden)
        dx = dz @ w_ih
        dw_ih = flat.T @ x.reshape(-1, x.shape[-1])
        dw_hh = flat.T @ hs[:-1].reshape(-1, hidden)
        db = flat.sum(dim=0)
        return dx, dh_next, dc_next, dw_ih, dw_hh, db, db


class LSTM(nn.Module):
    """torch.nn.LSTM's interface (time-major, no projection, one direction) on :class:`LSTMLayer`."""

    def __init__(self, input_size, hidden_size, num_layers=1):
        super().__init__()
        self.num_layers = num_layers
        bound = 1 / math.sqrt(hidden_size)
        for k in range(num_layers):
            fan_in = input_size if k == 0 else hidden_size
            for name, shape in (("weight_ih", (4 * hidden_size, fan_in)), ("weight_hh", (4 * hidden_size, hidden_size)),
                                ("bias_ih", (4 * hidden_size,)), ("bias_hh", (4 * hidden_size,))):  # fmt: skip
                self.register_parameter(f"{name}_l{k}", nn.Parameter(torch.empty(shape).uniform_(-bound, bound)))

    def forward(self, x, hx):
        if isinstance(x, PackedSequence):
            raise NotImplementedError("LSTMLayer takes whole sequences, not packed ones")
        h0, c0 = hx
        out, h_n, c_n = x, [], []
        for k in range(self.num_layers):
            weights = [getattr(self, f"{name}_l{k}") for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
            out, h, c = LSTMLayer.apply(out, h0[k], c0[k], *weights)
            h_n.append(h)
            c_n.append(c)
        return out, (torch.stack(h_n), torch.stack(c_n))
