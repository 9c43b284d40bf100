"""``backward(cache, overwrite_cache=True)`` (Note [Memory] in reference/lstm.py): same gradients, cache reused."""

from __future__ import annotations

import numpy as np
import pytest

from lstm_gradcheck.reference.case import make_case
from lstm_gradcheck.reference.config import LSTMConfig
from lstm_gradcheck.reference.lstm import backward, forward, grads


@pytest.mark.parametrize(
    ("config", "lengths"),
    [
        (LSTMConfig(num_layers=2, seq_len=7, batch_size=3, forget_bias=1.0), [7, 4, 1]),
        (LSTMConfig(seq_len=5, loss_at="last", cell_output="identity", final_state=True), None),
        (LSTMConfig(seq_len=6, dtype="float32", loss="mse"), None),
    ],
    ids=["stacked-padded", "identity-final-state", "float32"],
)
def test_overwriting_the_cache_changes_no_gradient_bit(config, lengths):
    case = make_case(config, seed=3, lengths=lengths)
    _, kept = forward(case)
    dgates_before = [layer.dgates.copy() for layer in kept.layers]
    expected = backward(kept)
    for layer, before in zip(kept.layers, dgates_before, strict=True):
        np.testing.assert_array_equal(layer.dgates, before, err_msg="the default backward changed the cache")

    _, spent = forward(case)
    got = backward(spent, overwrite_cache=True)
    assert got.grads.keys() == expected.grads.keys()
    for name, g in expected.grads.items():
        np.testing.assert_array_equal(got.grads[name], g, err_msg=name)
    # The point of the option: dz lives in the cache's derivative array, not in a new one.
    for layer, lg in zip(spent.layers, got.layers, strict=True):
        assert np.shares_memory(lg.dz, layer.dgates)
    np.testing.assert_array_equal(grads(case)[1]["x"], expected.grads["x"])
