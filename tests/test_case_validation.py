"""A bad case is refused with one message naming the field and what was expected."""

from __future__ import annotations

import numpy as np
import pytest

from lstm_gradcheck.reference.case import Case, make_case
from lstm_gradcheck.reference.config import CaseError, LSTMConfig


def base(**changes) -> Case:
    return make_case(LSTMConfig(**changes), seed=3)


def rebuilt(case: Case, **changes) -> Case:
    fields = {
        "config": case.config,
        "params": dict(case.params),
        "x": case.x,
        "h0": case.h0,
        "c0": case.c0,
        "targets": case.targets,
        "lengths": case.lengths,
        "dh_n": case.dh_n,
        "dc_n": case.dc_n,
    }
    fields.update(changes)
    return Case(**fields)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"hidden_size": 0}, r"config\.hidden_size: expected an integer >= 1, got 0"),
        ({"seq_len": -3}, r"config\.seq_len: expected an integer >= 1, got -3"),
        ({"batch_size": 2.5}, r"config\.batch_size: expected an integer >= 1, got 2\.5"),
        ({"num_layers": True}, r"config\.num_layers: expected an integer >= 1, got True"),
        ({"loss": "nll"}, r"config\.loss: expected one of 'cross_entropy', 'mse', 'bce', 'upstream', got 'nll'"),
        ({"loss_at": "first"}, r"config\.loss_at: expected one of 'every', 'last', got 'first'"),
        ({"reduction": "avg"}, r"config\.reduction: expected one of 'sum', 'mean'"),
        ({"cell_output": "relu"}, r"config\.cell_output: expected one of 'tanh', 'identity'"),
        ({"dtype": "float16"}, r"config\.dtype: expected one of 'float64', 'float32', 'bfloat16', got 'float16'"),
        ({"forget_bias": float("nan")}, r"config\.forget_bias: expected a finite number, got nan"),
        ({"forget_bias": float("inf")}, r"config\.forget_bias: expected a finite number, got inf"),
        ({"forget_bias": "1"}, r"config\.forget_bias: expected a finite number, got '1'"),
        ({"final_state": "yes"}, r"config\.final_state: expected True or False, got 'yes'"),
    ],
)
def test_bad_config_names_the_field(changes, message):
    with pytest.raises(CaseError, match=message):
        LSTMConfig(**changes)


def test_unknown_config_field_is_refused():
    with pytest.raises(CaseError, match=r"unknown field\(s\) \['hidden'\]"):
        LSTMConfig().replace(hidden=3)


def test_wrong_shapes_are_refused():
    case = base()
    with pytest.raises(CaseError, match=r"case\.x: expected shape \(6, 3, 4\), got \(6, 3, 5\)"):
        rebuilt(case, x=np.zeros((6, 3, 5)))
    with pytest.raises(CaseError, match=r"case\.h0: expected shape \(2, 3, 5\), got \(3, 5\)"):
        rebuilt(case, h0=np.zeros((3, 5)))
    params = dict(case.params)
    params["weight_hh_l1"] = np.zeros((20, 4))
    with pytest.raises(CaseError, match=r"case\.params\['weight_hh_l1'\]: expected shape \(20, 5\), got \(20, 4\)"):
        rebuilt(case, params=params)


def test_missing_or_extra_parameters_are_refused():
    case = base()
    params = dict(case.params)
    del params["bias_hh_l0"]
    params["bias_l0"] = np.zeros(20)
    with pytest.raises(CaseError, match=r"missing \['bias_hh_l0'\], unexpected \['bias_l0'\]"):
        rebuilt(case, params=params)


def test_mismatched_dtype_is_refused():
    case = base()
    with pytest.raises(CaseError, match=r"case\.x: expected dtype float64, got float32 \(convert with \.astype"):
        rebuilt(case, x=case.x.astype(np.float32))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_values_are_refused(bad):
    case = base()
    c0 = case.c0.copy()
    c0[1, 2, 3] = bad
    with pytest.raises(CaseError, match=r"case\.c0: expected finite values, got .* at index \(1, 2, 3\)"):
        rebuilt(case, c0=c0)


def test_targets_out_of_range_are_refused():
    case = base()
    targets = case.targets.copy()
    targets[0, 0] = 3
    with pytest.raises(CaseError, match=r"case\.targets: class indices must lie in \[0, 2\] \(output_size 3\)"):
        rebuilt(case, targets=targets)
    bce = base(loss="bce")
    with pytest.raises(CaseError, match=r"case\.targets: bce targets must lie in \[0, 1\]"):
        rebuilt(bce, targets=bce.targets + 1.5)
    with pytest.raises(CaseError, match=r"cross_entropy expects int64 class indices of shape \(6, 3\), got float64"):
        rebuilt(case, targets=case.targets.astype(np.float64))


@pytest.mark.parametrize(
    ("lengths", "message"),
    [
        ([6, 7, 1], r"case\.lengths: every length must lie in \[1, seq_len=6\], got \[6, 7, 1\]"),
        ([0, 2, 1], r"case\.lengths: every length must lie in \[1, seq_len=6\], got \[0, 2, 1\]"),
        ([3, 2], r"case\.lengths: expected one length per sequence, shape \(3,\), got shape \(2,\)"),
        (["a", 2, 1], r"case\.lengths: expected integers"),
    ],
)
def test_bad_lengths_are_refused(lengths, message):
    with pytest.raises(CaseError, match=message):
        make_case(LSTMConfig(), seed=0, lengths=lengths)


def test_final_state_arrays_must_match_the_setting():
    case = base()
    with pytest.raises(CaseError, match=r"case\.dh_n: config\.final_state is True, so expected an array"):
        rebuilt(case, dh_n=None)
    plain = base(final_state=False)
    with pytest.raises(CaseError, match=r"case\.dc_n: config\.final_state is False, so expected None"):
        rebuilt(plain, dc_n=np.zeros((2, 3, 5)))


def test_case_arrays_are_private_and_read_only():
    x = np.random.default_rng(0).standard_normal((6, 3, 4))
    case = rebuilt(base(), x=x)
    x[0, 0, 0] = 123.0
    assert case.x[0, 0, 0] != 123.0
    with pytest.raises(ValueError, match="read-only"):
        case.x[0, 0, 0] = 1.0
    copy = case.writable_copy()
    copy.x[0, 0, 0] = 7.0
    assert case.x[0, 0, 0] != 7.0


def test_make_case_is_deterministic_and_parts_are_independent():
    a, b = make_case(LSTMConfig(), seed=11), make_case(LSTMConfig(), seed=11)
    assert all(np.array_equal(a.arrays()[n], b.arrays()[n]) for n in a.arrays())
    other_loss = make_case(LSTMConfig(loss="mse"), seed=11)
    assert np.array_equal(a.params["weight_hh_l0"], other_loss.params["weight_hh_l0"])
    assert np.array_equal(a.x, other_loss.x)
    for name, value in a.arrays().items():
        assert np.all(value != 0), f"{name} has zeros: every checked array must be random and nonzero"


def test_astype_casts_every_float_and_returns_an_unchanged_case_itself():
    case = make_case(LSTMConfig(loss="mse"), seed=3)
    assert case.astype("float64") is case  # immutable: nothing to copy
    single = case.astype("float32")
    assert single.config.dtype == "float32" and single.x.dtype == np.float32
    assert single.params["weight_hh_l0"].dtype == np.float32 and single.targets.dtype == np.float32
    back = single.astype("float64")
    assert back is not single and back.x.dtype == np.float64
    np.testing.assert_array_equal(back.x, case.x.astype(np.float32).astype(np.float64))
