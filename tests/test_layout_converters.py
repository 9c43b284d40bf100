"""The layout converters of reference/converters.py (Note [Layout converters]): round trips, each
layout computes the contract's pre-activations, and the adapters' Layout and head."""

from __future__ import annotations

import numpy as np
import pytest

from lstm_gradcheck.reference.case import make_case
from lstm_gradcheck.reference.config import LSTMConfig
from lstm_gradcheck.reference.converters import (
    CONCAT_ORDERS,
    TF_GATE_ORDER,
    Layout,
    concat_inputs,
    from_concat,
    from_separate,
    from_tf_ijfo,
    fuse_biases,
    gate_blocks_in,
    split_concat_inputs,
    split_fused_bias_grad,
    stack_gates_in,
    to_concat,
    to_separate,
    to_tf_ijfo,
)
from lstm_gradcheck.reference.head import head
from lstm_gradcheck.reference.layout import GATES, LSTM_PARAM_KINDS, gate_blocks, gate_slice, stack_gates
from lstm_gradcheck.reference.lstm import backward, forward

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


# ----------------------------------------------------------------------------- Layout, for adapters

LAYOUTS = (
    Layout(),  # torch itself
    Layout(gates="ifog", rows=True, bias="one"),  # cs231n: x @ Wx + h @ Wh + b, columns i, f, o, g
    Layout(gates="ifog", rows=True, concat="xh", bias="first"),  # Karpathy: [1, x, h] @ WLSTM
    Layout(gates="fico", concat="hx", bias="one", bias_shape="column", per_gate=True),  # the course: W_f @ [a; x]
    Layout(gates="fuco", rows=True, concat="hx", bias="one", bias_shape="row", per_gate=True),  # numpy-ml style
    Layout(gates="ijfo", rows=True, concat="xh", bias="one"),  # TensorFlow BasicLSTMCell
    Layout(gates="ifco", rows=True, bias="two", bias_shape="gates"),  # Keras-like order, biases (4, H)
    Layout(gates="oigf", concat="xh", bias="last", bias_shape="row"),  # any order, bias as the last column
    Layout(gates="aifo", letters={"a": "g"}, interleaved=True),  # Chainer: z reshaped (B, H, 4), a = candidate
    Layout(gates="zifo", letters={"z": "g"}, rows=True, concat="xh", bias="first", interleaved=True),
    Layout(gates="ifco", rows=True, bias="two", bias_shape="row", interleaved=True),
    Layout(gates="zfio", letters={"z": "g"}, concat="hx", bias="one", bias_shape="column", per_gate=True),
)


def _layout_id(lay: Layout) -> str:
    return f"{lay.gates}-{lay.concat}-{lay.bias}-{lay.bias_shape}" + ("-interleaved" if lay.interleaved else "")


def _user_preactivations(layout: Layout, p: dict, x: np.ndarray, h: np.ndarray) -> dict[str, np.ndarray]:
    """z per user gate letter (B, H), computed the way code in ``layout`` computes it."""
    hidden = h.shape[1]
    if layout.concat:
        v = np.concatenate([x, h] if layout.concat == "xh" else [h, x], axis=1)
        ones = np.ones((x.shape[0], 1))
        if layout.bias in ("first", "last"):
            v = np.concatenate([ones, v] if layout.bias == "first" else [v, ones], axis=1)
        inputs = {"W": v}
    else:
        inputs = {"Wx": x, "Wh": h}
    z = {letter: np.zeros((x.shape[0], hidden)) for letter in layout.gates}

    def gate_columns(full: np.ndarray, k: int) -> np.ndarray:
        # Interleaved: Chainer's reshape of the 4H axis to (H, 4), gate k of each unit.
        if layout.interleaved:
            return full.reshape(*full.shape[:-1], hidden, 4)[..., k]
        return full[..., k * hidden : (k + 1) * hidden]

    for key, v in inputs.items():
        if layout.per_gate:
            for letter, w in p[key].items():
                z[letter] += v @ w if layout.rows else v @ w.T
        else:
            full = v @ p[key] if layout.rows else v @ p[key].T
            for k, letter in enumerate(layout.gates):
                z[letter] += gate_columns(full, k)
    for key in ("b", "bx", "bh"):
        if key in p:
            if layout.per_gate:
                for letter in layout.gates:
                    z[letter] += np.reshape(p[key][letter], -1)
            else:
                flat = np.reshape(p[key], -1)
                for k, letter in enumerate(layout.gates):
                    z[letter] += gate_columns(flat, k)
    return z


@pytest.mark.parametrize("layout", LAYOUTS, ids=_layout_id)
@pytest.mark.parametrize("layer", [0, 1])
def test_a_layout_computes_the_contracts_preactivations(layout, layer):
    """The user's arrays, used the user's way, give the contract's z gate by gate (forget_bias folded)."""
    case = make_case(LSTMConfig(num_layers=2, forget_bias=0.75), seed=4)
    folded = Layout(**{**layout.__dict__, "fold_forget_bias": True})
    rng = np.random.default_rng(0)
    fan_in = case.config.input_size if layer == 0 else case.config.hidden_size
    x, h = rng.standard_normal((3, fan_in)), rng.standard_normal((3, case.config.hidden_size))
    p = case.params
    z = (
        x @ p[f"weight_ih_l{layer}"].T
        + h @ p[f"weight_hh_l{layer}"].T
        + p[f"bias_ih_l{layer}"]
        + p[f"bias_hh_l{layer}"]
    )
    z[:, gate_slice("f", case.config.hidden_size)] += case.config.forget_bias
    mine = _user_preactivations(folded, folded.params(case, layer), x, h)
    for letter, value in mine.items():
        expected = z[:, gate_slice(folded.aliases[letter], case.config.hidden_size)]
        np.testing.assert_allclose(value, expected, rtol=1e-12, atol=1e-14, err_msg=letter)


@pytest.mark.parametrize("layout", LAYOUTS, ids=_layout_id)
def test_a_layouts_gradients_come_back_under_the_contracts_names(layout):
    """grads() inverts params() on the weights exactly; a fused bias's gradient goes to both biases."""
    case = make_case(LSTMConfig(num_layers=2), seed=5)
    for layer in (0, 1):
        back = layout.grads(layout.params(case, layer), case, layer)
        assert set(back) == {f"{kind}_l{layer}" for kind in LSTM_PARAM_KINDS}
        for name in (f"weight_ih_l{layer}", f"weight_hh_l{layer}"):
            assert np.array_equal(back[name], case.params[name])
        fused = case.params[f"bias_ih_l{layer}"] + case.params[f"bias_hh_l{layer}"]
        if layout.bias == "two":
            assert np.array_equal(back[f"bias_ih_l{layer}"], case.params[f"bias_ih_l{layer}"])
        else:
            assert np.array_equal(back[f"bias_ih_l{layer}"], fused)
            assert np.array_equal(back[f"bias_hh_l{layer}"], fused)


def test_a_layout_refuses_what_it_cannot_be():
    with pytest.raises(ValueError, match="expected the four gates in your order"):
        Layout(gates="ifgx")
    with pytest.raises(ValueError, match="set concat"):
        Layout(bias="first")
    with pytest.raises(ValueError, match=r"'z' is not a gate letter: map it with letters=\{'z': 'g'\}"):
        Layout(gates="zifo")
    with pytest.raises(ValueError, match=r"'c' and 'z' of 'czfo' both mean gate 'g'"):
        Layout(gates="czfo", letters={"z": "g"})
    with pytest.raises(ValueError, match=r"Layout.letters: 'zz' -> 'g'"):
        Layout(gates="zifo", letters={"zz": "g"})
    with pytest.raises(ValueError, match=r"Layout.letters: 'z' -> 'candidate'"):
        Layout(gates="zifo", letters={"z": "candidate"})
    with pytest.raises(ValueError, match="set one of per_gate, interleaved"):
        Layout(per_gate=True, interleaved=True)
    with pytest.raises(ValueError, match="not per gate or interleaved"):
        Layout(bias_shape="gates", interleaved=True)
    with pytest.raises(ValueError, match=r"unknown \['Wci'\]"):
        Layout().grads({**Layout().params(make_case(LSTMConfig())), "Wci": np.zeros(5)}, make_case(LSTMConfig()))
    with pytest.raises(ValueError, match="per-gate arrays missing"):
        Layout(per_gate=True).grads({"Wx": {"i": np.zeros((5, 4))}, "Wh": {}, "bx": {}}, make_case(LSTMConfig()), 0)


@pytest.mark.parametrize("loss", ["cross_entropy", "mse", "bce", "upstream"])
def test_head_gives_the_references_loss_and_the_gradient_its_lstm_receives(loss):
    config = LSTMConfig(loss=loss, reduction="sum" if loss == "upstream" else "mean", loss_at="last")
    case = make_case(config, seed=6, lengths=[6, 3, 1])
    result, cache = forward(case)
    value, dh_top, head_grads = head(case, cache.top, result.h_n, result.c_n)
    assert value == pytest.approx(result.loss, rel=1e-14)
    full = backward(cache).grads
    assert set(head_grads) == ({"head.weight", "head.bias"} if case.config.has_head else set())
    for name, g in head_grads.items():
        np.testing.assert_allclose(g, full[name], rtol=1e-13, atol=1e-15)
    scored = np.zeros((case.config.seq_len, case.config.batch_size), dtype=bool)
    scored[np.array([5, 2, 0]), np.arange(3)] = True  # loss_at last: each sequence's last valid step
    assert np.all(dh_top[~scored] == 0) and np.all(np.any(dh_top[scored] != 0, axis=-1))
    with pytest.raises(ValueError, match="pass h_n and c_n"):
        head(case, cache.top)
    with pytest.raises(ValueError, match=r"time-major \(T, B, H\)"):
        head(case, cache.top.transpose(1, 0, 2), result.h_n, result.c_n)
