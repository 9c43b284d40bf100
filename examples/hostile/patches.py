"""Wrong gradients from code that patches the harness it can reach, and mutates its case."""

import math

import numpy as np
from _wrong import wrong_answer

from lstm_gradcheck import reference
from lstm_gradcheck.oracles import registry, tolerance, torch_autograd


def _patch_everything(numpy: bool = True):
    tolerance.Tolerance.allowed = lambda self, *args, **kwargs: math.inf
    torch_autograd.torch_grads = lambda case, **kwargs: None
    registry.run_oracle = lambda *args, **kwargs: None
    if numpy:  # the reference's own tanh' reads np.abs: code that patches it is wrong itself
        np.abs = lambda x, *args, **kwargs: np.zeros_like(x)


def grads_patching(case):
    _patch_everything()
    return wrong_answer(case)


def grads_patching_but_right(case):
    _patch_everything(numpy=False)
    return reference.grads(case)


def grads_mutating_config(case):
    # Right for the case as it now reads, wrong for the case the harness sent.
    object.__setattr__(case.config, "forget_bias", 0.0)
    return reference.grads(case)
