"""The adapters' layout helpers for the LSTM family and for other storages: interleaved gates, any
gate letters, peepholes, projection and the reverse direction in Layout; one flat parameter vector
(Note [Flat parameter order]); length-sorted and packed batches (Note [Packed batches])."""

from __future__ import annotations

import itertools
from types import SimpleNamespace

import numpy as np
import pytest

from lstm_gradcheck import GradientMismatchError, assert_gradients_match
from lstm_gradcheck.reference import grads as reference_grads
from lstm_gradcheck.reference.case import make_case
from lstm_gradcheck.reference.config import LSTMConfig
from lstm_gradcheck.reference.converters import Layout
from lstm_gradcheck.reference.flat_params import flat_grads, flat_params, flat_segments
from lstm_gradcheck.reference.layout import (
    deinterleave,
    direction_param_names,
    gate_slice,
    interleave,
    interleave_rows,
    is_lstm_param,
    parse_name,
)
from lstm_gradcheck.reference.packing import pack, sort_by_length, unpack, unsort

FAMILY = LSTMConfig(
    input_size=3, hidden_size=5, num_layers=2, seq_len=3, batch_size=2, peepholes=True, proj_size=2, bidirectional=True
)  # layer 1 reads D * P = 4 inputs, not H = 5
CONFIGS = {
    "plain": LSTMConfig(input_size=3, hidden_size=4, num_layers=2, seq_len=3, batch_size=2),
    "peepholes": FAMILY.replace(proj_size=0, bidirectional=False),
    "projection-bidirectional": FAMILY.replace(peepholes=False),
    "everything": FAMILY,
}
#: Every option of Layout, combined (the combinations Layout accepts).
OPTIONS = [
    Layout(gates=gates, letters=letters, rows=rows, concat=concat, bias=bias, interleaved=interleaved, per_gate=per)
    for (gates, letters), rows, (concat, bias), interleaved, per in itertools.product(
        [("ifgo", {}), ("zfio", {"z": "g"}), ("aifo", {"a": "g"})],
        [False, True],
        [(None, "two"), (None, "one"), ("xh", "first"), ("hx", "last")],
        [False, True],
        [False, True],
    )
    if not (interleaved and per)
]


def test_interleaving_puts_each_units_four_gates_together():
    hidden = 3
    assert interleave_rows(hidden).tolist() == [0, 3, 6, 9, 1, 4, 7, 10, 2, 5, 8, 11]
    a = np.random.default_rng(0).standard_normal((4 * hidden, 2))
    unit_major = interleave(a, hidden)
    # Chainer's view: the 4H axis reshaped to (H, 4) is [unit, gate position].
    np.testing.assert_array_equal(unit_major.reshape(hidden, 4, 2), a.reshape(4, hidden, 2).transpose(1, 0, 2))
    np.testing.assert_array_equal(deinterleave(unit_major, hidden), a)
    np.testing.assert_array_equal(deinterleave(interleave(a.T, hidden, axis=1), hidden, axis=1), a.T)
    with pytest.raises(ValueError, match="4\\*hidden_size = 12"):
        interleave(a[:5], hidden)


@pytest.mark.parametrize("config", CONFIGS.values(), ids=CONFIGS.keys())
def test_every_option_round_trips_every_layer_and_direction_exactly(config):
    """grads(params) is the case's own parameters (the fused bias: their sum) for every option."""
    case = make_case(config, seed=3)
    p = case.params
    for layout, layer, direction in itertools.product(OPTIONS, range(2), range(config.num_directions)):
        back = layout.grads(layout.params(case, layer, direction), case, layer, direction)
        assert list(back) == list(direction_param_names(config, layer, direction)), layout
        for name, value in back.items():
            kind = parse_name(name).kind
            expected = p[name]
            if kind.startswith("bias") and layout.bias != "two":
                expected = p[name.replace(kind, "bias_ih")] + p[name.replace(kind, "bias_hh")]
            assert value.shape == expected.shape and value.dtype == expected.dtype, (layout, name)
            assert np.array_equal(value, expected), (layout, name)


def test_peepholes_and_projection_are_the_users_own_arrays_in_either_direction():
    case = make_case(FAMILY, seed=4)
    for direction, suffix in ((0, ""), (1, "_reverse")):
        cols = Layout(gates="zifo", letters={"z": "g"}).params(case, 1, direction)
        rows = Layout(rows=True).params(case, 1, direction)
        for key, kind in (("wci", "weight_ci"), ("wcf", "weight_cf"), ("wco", "weight_co")):
            np.testing.assert_array_equal(cols[key], case.params[f"{kind}_l1{suffix}"])
        np.testing.assert_array_equal(cols["Wr"], case.params[f"weight_hr_l1{suffix}"])  # (P, H): h = Wr m
        np.testing.assert_array_equal(rows["Wr"], case.params[f"weight_hr_l1{suffix}"].T)  # (H, P): h = m Wr
        # Layer 1 reads both directions of layer 0 (D * P = 4 wide), its recurrence h (P = 2 wide).
        assert rows["Wx"].shape == (4, 20) and rows["Wh"].shape == (2, 20)
        concat = Layout(concat="hx").params(case, 1, direction)["W"]
        assert concat.shape == (20, 2 + 4)
        back = Layout(concat="hx").grads({**Layout(concat="hx").params(case, 1, direction)}, case, 1, direction)
        np.testing.assert_array_equal(back[f"weight_ih_l1{suffix}"], case.params[f"weight_ih_l1{suffix}"])
    with pytest.raises(ValueError, match="not bidirectional"):
        Layout().params(make_case(LSTMConfig()), 0, 1)
    with pytest.raises(ValueError, match=r"layer 2 is not one of the case's layers 0\.\.1"):
        Layout().params(case, 2)


def _as_user(layout: Layout, case, gradients: dict) -> dict:
    """Gradients the way code storing ``layout`` returns them: every map is a permutation, so the
    reference's gradients laid out by ``params`` are that code's (biases kept apart, nothing folded)."""
    return layout.params(SimpleNamespace(config=case.config, params=gradients), 0, 1)


#: (the code's true layout, an adapter's wrong description of it, the gates the error lands in).
WRONG = (
    (Layout(gates="ifgo", rows=True), Layout(gates="figo", rows=True), {"i", "f"}),
    (Layout(gates="aifo", letters={"a": "g"}, interleaved=True), Layout(gates="aifo", letters={"a": "g"}), set("ifgo")),
    (Layout(gates="zifo", letters={"z": "g"}), Layout(gates="zifo", letters={"z": "i", "i": "g"}), {"i", "g"}),
)


@pytest.mark.parametrize(("true", "wrong", "gates"), WRONG, ids=["swapped", "not-interleaved", "wrong-letters"])
def test_a_wrong_description_of_the_layout_is_caught_against_the_reference(true, wrong, gates):
    config = FAMILY.replace(num_layers=1, proj_size=0, final_state=False)
    case = make_case(config, seed=5)
    _, expected = reference_grads(case)

    def adapter(case, layout):
        _, g = reference_grads(case)
        return 0.0, layout.grads(_as_user(true, case, g), case, 0, 1)

    right = adapter(case, true)[1]
    for name, value in right.items():
        np.testing.assert_array_equal(value, expected[name])
    mistaken = adapter(case, wrong)[1]
    bad = {n for n, v in mistaken.items() if not np.allclose(v, expected[n])}
    assert bad and all(n.endswith("_reverse") and is_lstm_param(n) for n in bad), bad
    # The harness names the tensors and gates the wrong mapping moved, in the reverse direction.
    with pytest.raises(GradientMismatchError) as failure:
        assert_gradients_match(lambda c: (reference_grads(c)[0], {**reference_grads(c)[1], **adapter(c, wrong)[1]}),
                               case, in_process=True)  # fmt: skip
    located = {(t.name, t.worst.gate, t.worst.direction) for t in failure.value.mismatches}
    assert {name for name, _, _ in located} == bad
    assert all(gate in gates and direction == 1 for _, gate, direction in located), located


def _torch_order(case) -> np.ndarray:
    """torch's flat weights order written out independently: per layer, per direction, its tensors."""
    names = [
        name
        for layer in range(case.config.num_layers)
        for direction in range(case.config.num_directions)
        for name in direction_param_names(case.config, layer, direction)
    ]
    return np.concatenate([case.params[name].ravel() for name in names])


@pytest.mark.parametrize("config", CONFIGS.values(), ids=CONFIGS.keys())
def test_the_flat_vector_is_cudnns_order_and_round_trips(config):
    case = make_case(config, seed=6)
    vector = flat_params(case)
    np.testing.assert_array_equal(vector, _torch_order(case))
    back = flat_grads(vector, case)
    assert set(back) == set(case.params) - {"head.weight", "head.bias"}
    for name, value in back.items():
        np.testing.assert_array_equal(value, case.params[name])
    for layout in (Layout(gates="aifo", letters={"a": "g"}, interleaved=True), Layout(per_gate=True, rows=True)):
        order = ("Wr", "wco", "wcf", "wci", "bh", "bx", "Wh", "Wx")
        v = flat_params(case, layout, order=order)
        assert v.shape == vector.shape and v.dtype == case.config.np_dtype
        for name, value in flat_grads(v, case, layout, order=order).items():
            np.testing.assert_array_equal(value, case.params[name])


def test_flat_segments_say_where_each_array_sits_and_bad_orders_are_refused():
    case = make_case(FAMILY, seed=7)
    segments = flat_segments(case, order=("Wh", "Wx", "bx", "bh", "wci", "wcf", "wco", "Wr"))
    first = segments[0]
    assert (first.layer, first.direction, first.key, first.shape, first.start) == (0, 0, "Wh", (20, 2), 0)
    assert segments[8].direction == 1 and segments[8].key == "Wh"  # layer 0's reverse direction follows
    assert all(a.stop == b.start for a, b in itertools.pairwise(segments))
    wh = flat_params(case, order=[s.key for s in segments[:8]])[first.start : first.stop]
    np.testing.assert_array_equal(wh, case.params["weight_hh_l0"].ravel())
    with pytest.raises(ValueError, match=r"list each of this layout's arrays .* unknown \['U'\]"):
        flat_params(case, order=("Wx", "U"))
    with pytest.raises(ValueError, match="list each of this layout's arrays"):
        flat_params(case, order=("Wx", "Wh", "bx", "bh"))  # the peepholes and the projection left out
    with pytest.raises(ValueError, match=r"expected a vector of shape \(\d+,\)"):
        flat_grads(np.zeros(3), case)


def test_sort_by_length_and_unsort():
    case = make_case(LSTMConfig(seq_len=5, batch_size=4), seed=8, lengths=[2, 5, 3, 5])
    order, lengths = sort_by_length(case)
    assert order.tolist() == [1, 3, 2, 0] and lengths.tolist() == [5, 5, 3, 2]
    for a, axis in ((case.x, 1), (case.h0, 1), (case.x.transpose(1, 0, 2), 0)):
        np.testing.assert_array_equal(unsort(np.take(a, order, axis=axis), order, axis=axis), a)
    plain = make_case(LSTMConfig(seq_len=3, batch_size=3), seed=8)
    order, lengths = sort_by_length(plain)
    assert order.tolist() == [0, 1, 2] and lengths.tolist() == [3, 3, 3]


def test_pack_is_torchs_packed_sequence_and_unpack_its_adjoint():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(9)
    x, lengths = rng.standard_normal((5, 4, 3)), np.array([5, 5, 3, 1])
    data, batch_sizes = pack(x, lengths)
    packed = torch.nn.utils.rnn.pack_padded_sequence(torch.from_numpy(x), torch.from_numpy(lengths))
    np.testing.assert_array_equal(data, packed.data.numpy())
    np.testing.assert_array_equal(batch_sizes, packed.batch_sizes.numpy())
    d = rng.standard_normal(data.shape)
    back = unpack(d, batch_sizes, seq_len=5)
    assert np.isclose(np.sum(data * d), np.sum(x * back), rtol=1e-14)  # <pack x, d> = <x, unpack d>
    padding = np.arange(5)[:, None] >= lengths[None, :]
    assert np.all(back[padding] == 0)
    np.testing.assert_array_equal(pack(back, lengths)[0], d)
    with pytest.raises(ValueError, match="not sorted longest first; sort the batch with sort_by_length"):
        pack(x, np.array([3, 5, 5, 1]))
    with pytest.raises(ValueError, match="does not match batch_sizes"):
        unpack(d[:-1], batch_sizes)


def test_fold_forget_bias_lands_on_the_forget_rows_in_every_arrangement():
    case = make_case(LSTMConfig(forget_bias=2.5, num_layers=1), seed=10)
    plain = Layout(bias="one")
    for layout in (Layout(bias="one", gates="zifo", letters={"z": "g"}, interleaved=True, fold_forget_bias=True),):
        folded = (
            layout.grads(layout.params(case), case)["bias_ih_l0"] - plain.grads(plain.params(case), case)["bias_ih_l0"]
        )
        expected = np.zeros(4 * case.config.hidden_size)
        expected[gate_slice("f", case.config.hidden_size)] = 2.5
        np.testing.assert_allclose(folded, expected, atol=1e-14)
