"""An LSTM as a function of its parameters, lstm(x, hx, params), the form torch.func code takes.

    lstm-gradcheck search --impl examples/torch_function/functional.py:lstm

lstm-gradcheck calls it with x (T, B, I), hx = (h0, c0) and the parameters by torch.nn.LSTM's
names, as tensors of the case's dtype, and differentiates what it returns with autograd.
"""

import torch
from torch.func import functional_call


def lstm(x, hx, params):
    layers = sum(1 for name in params if name.startswith("weight_ih_l"))
    w = params["weight_ih_l0"]
    hidden = params["weight_hh_l0"].shape[1]
    module = torch.nn.LSTM(w.shape[1], hidden, num_layers=layers, device=w.device, dtype=w.dtype)
    return functional_call(module, params, (x, hx))
