"""The property suite must fail, and say where, when the backward is wrong."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest
from hypothesis import settings

import lstm_gradcheck.reference.lstm  # noqa: F401 (reference.lstm below)
from lstm_gradcheck import reference
from lstm_gradcheck.oracles.records import GradientMismatchError
from lstm_gradcheck.properties.counting import count_example
from tests.properties import test_oracles

LOCATED = re.compile(
    r"(weight_ih|weight_hh|bias_ih|bias_hh)_l\d+: mismatch.*worst \1_l\d+\[(input|forget|cell|output) gate"
)


def _without_recurrent_dh(real):
    """The real layer backward with W_hh^T dz_{t+1} dropped from dh_t (seed 004's eq. (3))."""

    def layer_backward(cache, dh_out, dh_n=None, dc_n=None, **options):
        # w_hh enters the layer backward only through the recurrent term, so zeroing it drops exactly
        # that term between steps; the gradient to h0 is still formed from step 0's (now wrong) deltas.
        wrong = real(dataclasses.replace(cache, w_hh=np.zeros_like(cache.w_hh)), dh_out, dh_n, dc_n, **options)
        return dataclasses.replace(wrong, dh0=wrong.dz[0] @ cache.w_hh)

    return layer_backward


@pytest.mark.parametrize(
    "prop",
    [test_oracles.test_reference_equals_torch_autograd_float64, test_oracles.test_reference_equals_torch_nn_lstm],
    ids=["torch", "torch-nn"],
)
def test_property_suite_catches_a_missing_recurrent_term(monkeypatch, prop):
    count_example("planted bug caught")
    monkeypatch.setattr(reference.lstm, "layer_backward", _without_recurrent_dh(reference.lstm.layer_backward))
    shrink_quietly = settings(prop._hypothesis_internal_use_settings, database=None, print_blob=False)
    with pytest.raises(GradientMismatchError) as caught:
        shrink_quietly(prop)()
    message = str(caught.value)
    assert LOCATED.search(message), message
    # Shrunk to the minimal trigger: two steps (at T = 1 there is no recurrent term to drop).
    notes = "\n".join(getattr(caught.value, "__notes__", []))
    assert re.search(r"\bseq_len=2\b", notes), notes


def test_correct_reference_passes_the_same_property():
    count_example("planted bug caught")
    test_oracles.test_reference_equals_torch_autograd_float64()
    assert reference.grads is reference.lstm.grads
