"""The LSTM family's settings through the harness: config, case, names and locations, the command
line and its reproduce line, support probing, the oracles' reach, and the new identities' teeth."""

from __future__ import annotations

import json
import shlex

import numpy as np
import pytest

from lstm_gradcheck.cli import config_from_args, main
from lstm_gradcheck.cli_options import build_parser
from lstm_gradcheck.isolation import as_implementation, load_implementation
from lstm_gradcheck.oracles.cost import estimated_seconds
from lstm_gradcheck.oracles.expressible import torch_nn_unfit
from lstm_gradcheck.oracles.judging import judging_context
from lstm_gradcheck.oracles.registry import run_oracle
from lstm_gradcheck.probing import supported_space
from lstm_gradcheck.properties.metamorphic import bidirectional_forward_half, peepholes_zero
from lstm_gradcheck.reference import CaseError, LSTMConfig, grads, make_case
from lstm_gradcheck.reference.config import estimate_bytes
from lstm_gradcheck.reference.layout import gradient_shapes, param_shapes, parse_name, weight_ci, weight_hr
from lstm_gradcheck.reference.locations import locate
from lstm_gradcheck.searching import report_command

FAMILY = LSTMConfig(peepholes=True, proj_size=2, bidirectional=True, coupled=True)


def test_every_setting_is_off_by_default_and_validated():
    plain = LSTMConfig()
    assert (plain.peepholes, plain.proj_size, plain.bidirectional, plain.coupled) == (False, 0, False, False)
    assert plain.is_plain and not FAMILY.is_plain
    assert (FAMILY.num_directions, FAMILY.h_size, FAMILY.top_width) == (2, 2, 4)
    with pytest.raises(CaseError, match=r"config.proj_size: a projection must be narrower .* got 5"):
        LSTMConfig(proj_size=5)
    with pytest.raises(CaseError, match=r"config\.proj_size: expected an integer >= 0"):
        LSTMConfig(proj_size=-1)
    with pytest.raises(CaseError, match=r"config\.peepholes: expected True or False"):
        LSTMConfig(peepholes="yes")


def test_the_case_has_torchs_names_and_shapes_and_every_new_array_is_random():
    case = make_case(FAMILY.replace(final_state=True), seed=3)
    shapes = param_shapes(case.config)
    assert shapes["weight_hh_l1_reverse"] == (20, 2) and shapes["weight_ih_l1"] == (20, 4)
    assert shapes[weight_hr(0, 1)] == (2, 5) and shapes[weight_ci(1)] == (5,) and shapes["head.weight"] == (3, 4)
    assert gradient_shapes(case.config)["h0"] == (4, 3, 2) and gradient_shapes(case.config)["c0"] == (4, 3, 5)
    assert case.dh_n.shape == (4, 3, 2) and case.dc_n.shape == (4, 3, 5)
    for name, array in case.arrays().items():
        assert np.all(array != 0), name
    # The plain LSTM's names are contract v1's, and adding the family changed none of its draws' shapes.
    assert set(param_shapes(LSTMConfig())) == {f"{k}_l{n}" for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
                                               for n in (0, 1)} | {"head.weight", "head.bias"}  # fmt: skip
    assert estimate_bytes(LSTMConfig(bidirectional=True)) > estimate_bytes(LSTMConfig())


def test_names_parse_and_locate_by_direction_gate_unit_and_projection_row():
    assert parse_name("weight_cf_l1_reverse") == parse_name("weight_cf_l1_reverse")
    parsed = parse_name("weight_hr_l0_reverse")
    assert (parsed.kind, parsed.layer, parsed.direction) == ("weight_hr", 0, 1)
    cfg = FAMILY
    assert locate("weight_ci_l1_reverse", (2,), cfg).describe() == "weight_ci_l1_reverse[input gate, unit 2, c[t-1]]"
    assert locate("weight_co_l0", (1,), cfg).describe() == "weight_co_l0[output gate, unit 1, c[t]]"
    assert locate("weight_hr_l0", (1, 4), cfg).describe() == "weight_hr_l0[projection row 1, unit 4]"
    assert locate("weight_ih_l1", (6, 3), cfg).describe() == "weight_ih_l1[forget gate, unit 1, h_reverse[1]]"
    assert locate("head.weight", (0, 1), cfg).describe() == "head.weight[output 0, h[1]]"
    h0 = locate("h0", (3, 2, 1), cfg)
    assert (h0.layer, h0.direction) == (1, 1) and h0.describe() == "h0[batch 2, layer 1 reverse, unit 1]"
    assert locate("weight_hh_l0", (7, 2), 5).describe() == "weight_hh_l0[forget gate, unit 2, h[2]]"
    with pytest.raises(ValueError, match="_reverse"):
        parse_name("weight_ck_l0")


def test_the_command_line_takes_each_setting_and_reproduces_the_case(capsys):
    argv = ["report", "--peepholes", "--proj-size", "2", "--bidirectional", "true", "--coupled", "--no-final-state",
            "--seq-len", "3", "--oracle", "torch", "--json"]  # fmt: skip
    assert main(argv) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["verdict"] == "pass"
    assert {k: data["case"][k] for k in ("peepholes", "proj_size", "bidirectional", "coupled")} == {
        "peepholes": True, "proj_size": 2, "bidirectional": True, "coupled": True,
    }  # fmt: skip
    case = make_case(FAMILY.replace(seq_len=4, final_state=False), seed=9, lengths=[4, 2, 1])
    line = report_command(case, None)
    args = build_parser().parse_args(shlex.split(line)[1:])
    assert config_from_args(args) == case.config and args.seed == 9 and args.lengths == [4, 2, 1]
    assert main(["report", "--proj-size", "5", "--json"]) == 2
    assert "--proj-size: a projection must be narrower" in json.loads(capsys.readouterr().out)["error"]


def _ignores_the_family(case):
    """Code written for v1: it never looks at the family's settings, and returns a valid result."""
    plain = case.replace(
        config=case.config.replace(peepholes=False, coupled=False),
        params={
            n: a for n, a in case.params.items() if parse_name(n).kind not in ("weight_ci", "weight_cf", "weight_co")
        },
    )
    if case.config.bidirectional or case.config.proj_size:
        raise NotImplementedError("one direction, no projection")
    return grads(plain)


def _only(support):
    assert len(support.spaces) == 1, support.notes
    return support.spaces[0]


def test_probing_never_hands_v1_code_a_family_case():
    support = supported_space(as_implementation(_ignores_the_family, in_process=True))
    space = _only(support)
    family = (space.peepholes, space.bidirectional, space.coupled, space.with_projection)
    assert family == ((False,), (False,), (False,), False)
    adapter = supported_space(load_implementation("examples/cs231n_style/adapter.py:grads"))
    assert "peepholes, proj_size, bidirectional, coupled: not supported" in adapter.notes
    everything = supported_space(as_implementation(grads, in_process=True))
    assert everything.notes == () and _only(everything).with_projection


def test_probing_finds_code_written_only_for_one_setting():
    def peepholes_only(case):
        if not case.config.peepholes:
            raise NotImplementedError("a peephole LSTM")
        return grads(case)

    def projection_only(case):
        if not case.config.proj_size:
            raise NotImplementedError("an LSTMP")
        return grads(case)

    assert _only(supported_space(as_implementation(peepholes_only, in_process=True))).peepholes == (True,)
    support = supported_space(as_implementation(projection_only, in_process=True))
    assert _only(support).require_projection and "proj_size: only > 0" in support.notes


def test_torch_nn_lstm_has_projection_and_directions_but_not_peepholes_or_coupled_gates():
    assert torch_nn_unfit(LSTMConfig(proj_size=2, bidirectional=True)) is None
    assert "peephole" in torch_nn_unfit(LSTMConfig(peepholes=True))
    assert "coupled" in torch_nn_unfit(LSTMConfig(coupled=True))


@pytest.mark.parametrize("oracle", ["fd", "complex-step", "directional"])
def test_the_numpy_oracles_catch_a_planted_element_of_a_family_tensor(oracle):
    case = make_case(LSTMConfig(seq_len=3, num_layers=1, peepholes=True, bidirectional=True, proj_size=2), seed=1)
    loss, exact = grads(case)
    wrong = {n: a.copy() for n, a in exact.items()}
    wrong["weight_cf_l0_reverse"][3] *= 1.001
    report = run_oracle(oracle, judging_context(case), loss, wrong)
    flagged = [t for t in report.check.tensors if t.status == "mismatch"]
    assert report.verdict == "fail" and [t.name for t in flagged] == ["weight_cf_l0_reverse"]
    assert flagged[0].worst.index == (3,) and flagged[0].worst.gate == "f" and flagged[0].worst.direction == 1
    assert estimated_seconds(case.config, "fd") > estimated_seconds(
        case.config.replace(peepholes=False, bidirectional=False, proj_size=0), "fd"
    )


def _slightly_wrong_when(setting: str, tensor: str):
    def impl(case):
        loss, g = grads(case)
        if getattr(case.config, setting):
            g = {**g, tensor: g[tensor] * 1.001}
        return loss, g

    return impl


def test_the_new_identities_catch_a_planted_error():
    peep = make_case(LSTMConfig(peepholes=True, seq_len=3), seed=2)
    assert peepholes_zero(grads, peep).ok
    assert not peepholes_zero(_slightly_wrong_when("peepholes", "weight_hh_l0"), peep).ok
    bi = make_case(LSTMConfig(bidirectional=True, seq_len=3), seed=2)
    assert bidirectional_forward_half(grads, bi).ok
    assert not bidirectional_forward_half(_slightly_wrong_when("bidirectional", "weight_ih_l1"), bi).ok

    def reverse_leaks(case):  # the reverse direction's gradient where none can reach it
        loss, g = grads(case)
        if not case.config.bidirectional:
            return loss, g
        return loss, {**g, "bias_hh_l1_reverse": g["bias_hh_l1_reverse"] + g["bias_hh_l1"]}

    assert not bidirectional_forward_half(reverse_leaks, bi).ok
