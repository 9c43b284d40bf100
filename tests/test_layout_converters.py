"""The layout converters of reference/layout.py (Note [Layout converters]): round trips, and each
layout computes the contract's pre-activations."""

from __future__ import annotations

import numpy as np
import pytest
from lstm_gradcheck.reference.layout import (
    CONCAT_ORDERS,
    GATES,
    TF_GATE_ORDER,
    concat_inputs,
    from_concat,
    from_separate,
    from_tf_ijfo,
    fuse_biases,
    gate_blocks,
    gate_blocks_in,
    split_concat_inputs,
    split_fused_bias_grad,
    stack_gates,
    stack_gates_in,
    to_concat,
    to_separate,
    to_tf_ijfo,
)

IN, H, B = 3, 4, 2  # input size, hidden size, batch


@pytest.fixture
def layer() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    return (
        rng.standard_normal((4 * H, IN)),
        rng.standard_normal((4 * H, H)),
        rng.standard_normal(4 * H),
        rng.standard_normal(4 * H),
    )


@pytest.fixture
def inputs() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(8)
    return rng.standard_normal((B, IN)), rng.standard_normal((B, H))


def contract_z(layer, x, h) -> np.ndarray:
    w_ih, w_hh, b_ih, b_hh = layer
    return x @ w_ih.T + h @ w_hh.T + b_ih + b_hh


def test_gate_blocks_in_reads_and_stack_gates_in_writes_any_order(layer):
    w_ih = layer[0]
    assert all(
        np.array_equal(gate_blocks_in(w_ih, H, GATES)[g], block)
        for g, block in zip(GATES, gate_blocks(w_ih, H, axis=0), strict=True)
    )
    for order in (GATES, TF_GATE_ORDER, ("o", "g", "f", "i")):
        stacked = stack_gates_in(gate_blocks_in(w_ih, H, GATES), order)
        assert np.array_equal(stack_gates_in(gate_blocks_in(stacked, H, order), GATES), w_ih)
        # Block k of the stacked array is gate order[k].
        assert np.array_equal(gate_blocks(stacked, H, axis=0)[1], gate_blocks_in(w_ih, H, GATES)[order[1]])
    with pytest.raises(ValueError, match="gate order"):
        gate_blocks_in(w_ih, H, ("i", "f", "g"))


def test_separate_round_trips_and_computes_each_gate(layer, inputs):
    sep = to_separate(*layer)
    for back, original in zip(from_separate(sep), layer, strict=True):
        assert np.array_equal(back, original)
    x, h = inputs
    z = gate_blocks_in(contract_z(layer, x, h), H, GATES, axis=-1)
    for g in GATES:
        np.testing.assert_allclose(x @ sep.w_x[g].T + h @ sep.w_h[g].T + sep.b_x[g] + sep.b_h[g], z[g], rtol=1e-14)


@pytest.mark.parametrize("order", CONCAT_ORDERS)
def test_concat_round_trips_and_acts_on_the_concatenated_input(layer, inputs, order):
    w_ih, w_hh, b_ih, b_hh = layer
    w = to_concat(w_ih, w_hh, order)
    assert w.shape == (4 * H, IN + H)
    back_ih, back_hh = from_concat(w, IN, order)
    assert np.array_equal(back_ih, w_ih) and np.array_equal(back_hh, w_hh)
    x, h = inputs
    xc = concat_inputs(x, h, order)
    np.testing.assert_allclose(xc @ w.T + fuse_biases(b_ih, b_hh), contract_z(layer, x, h), rtol=1e-14)
    dx, dh = split_concat_inputs(xc, IN, order)
    assert np.array_equal(dx, x) and np.array_equal(dh, h)
    first = x if order == "xh" else h
    assert np.array_equal(xc[:, : first.shape[1]], first)
    with pytest.raises(ValueError, match="concatenation order"):
        to_concat(w_ih, w_hh, "hh")


def test_tf_ijfo_kernel_gives_i_j_f_o_columns_and_round_trips(layer, inputs):
    w_ih, w_hh, b_ih, b_hh = layer
    kernel, bias = to_tf_ijfo(*layer)
    assert kernel.shape == (IN + H, 4 * H) and bias.shape == (4 * H,)
    x, h = inputs
    tf_z = concat_inputs(x, h, "xh") @ kernel + bias
    i, j, f, o = gate_blocks(tf_z, H, axis=-1)  # TensorFlow's split(..., 4, axis=1)
    z = gate_blocks_in(contract_z(layer, x, h), H, GATES, axis=-1)
    for tf_block, ours in zip((i, j, f, o), ("i", "g", "f", "o"), strict=True):
        np.testing.assert_allclose(tf_block, z[ours], rtol=1e-14)
    back_ih, back_hh, b = from_tf_ijfo(kernel, bias, IN)
    assert np.array_equal(back_ih, w_ih) and np.array_equal(back_hh, w_hh)
    np.testing.assert_allclose(b, b_ih + b_hh, rtol=1e-15)


def test_fused_bias_gradient_is_the_adjoint_of_the_sum():
    rng = np.random.default_rng(9)
    b_ih, b_hh, d = (rng.standard_normal(4 * H) for _ in range(3))
    d_ih, d_hh = split_fused_bias_grad(d)
    # <fuse(b_ih, b_hh), d> = <b_ih, d_ih> + <b_hh, d_hh> for all b_ih, b_hh.
    assert np.isclose(fuse_biases(b_ih, b_hh) @ d, b_ih @ d_ih + b_hh @ d_hh, rtol=1e-14)
    d_ih[0] = 99.0
    assert d_hh[0] == d[0] != 99.0  # independent copies


def test_weight_maps_are_permutations_so_they_convert_gradients_too(layer):
    """Each weight map only moves entries: converting a gradient is the same call."""
    w_ih, w_hh, _, _ = layer
    flat = np.concatenate([w_ih.ravel(), w_hh.ravel()])
    for order in CONCAT_ORDERS:
        assert sorted(to_concat(w_ih, w_hh, order).ravel()) == sorted(flat)
    kernel, _ = to_tf_ijfo(*layer)
    assert sorted(kernel.ravel()) == sorted(flat)
    sep = to_separate(*layer)
    assert stack_gates(sep.w_x).shape == w_ih.shape


def test_rows_of_units_and_gate_units_of_rows_invert_each_other():
    from lstm_gradcheck.reference.layout import gate_slice, rows_to_gate_units, unit_rows  # noqa: PLC0415

    hidden = 3
    rows = unit_rows(np.array([0, 2, 1]), hidden)
    assert rows.shape == (4, 3)
    for k, gate in enumerate(GATES):
        assert np.all((rows[k] >= gate_slice(gate, hidden).start) & (rows[k] < gate_slice(gate, hidden).stop))
        gates, units = rows_to_gate_units(rows[k], hidden)
        np.testing.assert_array_equal(gates, k)
        np.testing.assert_array_equal(units, [0, 2, 1])
