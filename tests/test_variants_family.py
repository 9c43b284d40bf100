"""The LSTM family's derivation variants (reference/variants/family*.py) and where their errors enter.

* ``FamilyDerivation()`` in every form equals the reference, gradients and per-step contributions.
* The published derivations (Graves, Greff et al., CIFG) pass the torch oracle on varied cases.
* The search alone finds, shrinks and locates family slips; step localization runs a reverse
  direction's steps backwards. (The registry's recorded verdicts, minimal cases and locations
  are checked for every variant in tests/test_variants.py and tests/test_variants_suite.py.)
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from lstm_gradcheck.cli import main
from lstm_gradcheck.implementation import InProcess
from lstm_gradcheck.localize import entry_step, reverse_suffix_case
from lstm_gradcheck.oracles.judging import judging_context
from lstm_gradcheck.oracles.registry import run_oracle
from lstm_gradcheck.oracles.torch_autograd import torch_grads
from lstm_gradcheck.reference.lstm import backward, forward, per_step_contributions
from lstm_gradcheck.reference.lstm import grads as reference_grads
from lstm_gradcheck.reference.variants import VARIANTS, build_case
from lstm_gradcheck.reference.variants.family import FamilyDerivation
from lstm_gradcheck.reference.variants.family_catalogue import FAMILY_VARIANTS
from lstm_gradcheck.reference.variants.forms import FUSED, SEPARATE, TF_IJFO, concat_form
from lstm_gradcheck.report import build_report
from lstm_gradcheck.variants import check_variant
from tests.test_variants import within

FAMILY_VARIED = (
    {"peepholes": True, "seq_len": 3},
    {"proj_size": 2, "seq_len": 3, "num_layers": 2, "final_state": True},
    {"bidirectional": True, "seq_len": 4, "batch_size": 3, "lengths": [4, 1, 2], "final_state": True},
    {"coupled": True, "peepholes": True, "seq_len": 3, "loss": "mse", "reduction": "mean", "loss_at": "last"},
    {"bidirectional": True, "num_layers": 2, "proj_size": 1, "peepholes": True, "seq_len": 3, "forget_bias": 1.0},
    {"bidirectional": True, "coupled": True, "loss": "upstream", "cell_output": "identity", "seq_len": 2},
)
FORMS = (None, SEPARATE, FUSED, TF_IJFO, concat_form("hx"))


@pytest.mark.parametrize("form", FORMS, ids=lambda f: "torch" if f is None else f.name)
@pytest.mark.parametrize("spec", FAMILY_VARIED, ids=range(len(FAMILY_VARIED)))
def test_the_family_derivation_equals_the_reference_in_every_form(spec, form):
    derivation = FamilyDerivation() if form is None else FamilyDerivation(form=form)
    case = build_case(spec, seed=5)
    loss, got = derivation(case)
    ref_loss, ref = reference_grads(case)
    assert loss == pytest.approx(ref_loss, rel=1e-12)
    assert set(got) == set(ref)
    for name, value in ref.items():
        np.testing.assert_allclose(got[name], value, rtol=1e-9, atol=1e-12, err_msg=name)
    _, cache = forward(case)
    expected = per_step_contributions(cache, backward(cache))
    steps = derivation.per_step(case)
    assert set(steps) == set(expected)
    for name, value in expected.items():
        np.testing.assert_allclose(steps[name], value, rtol=1e-9, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("variant", [v for v in FAMILY_VARIANTS if v.expected == "pass"], ids=lambda v: v.name)
def test_published_family_derivations_pass_the_torch_oracle(variant):
    for k, spec in enumerate(FAMILY_VARIED):
        case = build_case(within(variant.grads.convention, spec), seed=20 + k)
        loss, grads = variant.grads(case)
        check = run_oracle("torch", judging_context(case), loss, grads).check
        assert check.ok, f"{variant.name} on {case.describe()}:\n{check.describe()}"


def test_the_family_adds_published_derivations_and_at_least_eight_slips():
    wrong = [v for v in FAMILY_VARIANTS if v.expected == "fail"]
    assert len(wrong) >= 8 and {v.name for v in FAMILY_VARIANTS} <= set(VARIANTS)
    sources = " ".join(v.source for v in FAMILY_VARIANTS)
    assert "Graves" in sources and "Search Space Odyssey" in sources and "CIFG" in sources
    assert repr(VARIANTS["peephole_carry_dropped"].grads) == "FamilyDerivation(peephole_carry=False)"
    with pytest.raises(NotImplementedError, match="peepholes=False"):
        VARIANTS["graves_thesis_peepholes"].grads(build_case({}))
    with pytest.raises(NotImplementedError, match="plain LSTM"):
        VARIANTS["bptt_reference_form"].grads(build_case({"peepholes": True}))


@pytest.mark.parametrize(
    "name", ["peephole_carry_dropped", "states_indexed_direction_major", "cifg_input_rows_get_gradient"]
)
def test_the_search_alone_finds_and_shrinks_family_slips(name):
    outcome = check_variant(VARIANTS[name], max_examples=100, pinned=False)
    assert outcome.found_by == "search"
    assert outcome.minimal_ok and outcome.location_ok, outcome.as_dict()


# ----------------------------------------------------------------------------- where the error enters


def test_entry_steps_run_backwards_for_the_reverse_direction():
    errors, nan = (0.0, 0.0, 3.0, 5.0, 2.0, 0.0), float("nan")
    assert entry_step(errors, 1.0, lambda t: "") == (4, None)
    assert entry_step(errors, 1.0, lambda t: "", reverse=True) == (2, None)
    step, why = entry_step((0.0, nan, 3.0), 1.0, lambda t: " (refused)", reverse=True)
    assert step is None and "step 1 could not be measured (refused)" in why


def _planted(case_name: str, start: int):
    """The reference with an error entering one tensor's per-step contributions at step ``start`` and
    inherited by every step its BPTT visits afterwards: steps <= start for the forward direction
    (BPTT runs from the last step back), steps >= start for the reverse one (from step 0 up)."""

    def per_step(case):
        _, cache = forward(case)
        steps = per_step_contributions(cache, backward(cache))
        wrong = np.array(steps[case_name])
        span = slice(start, None) if case_name.endswith("_reverse") else slice(None, start + 1)
        wrong[span] *= 1.01
        return {**steps, case_name: wrong}

    def grads(case):
        loss, g = reference_grads(case)
        return loss, {**g, case_name: per_step(case)[case_name].sum(axis=0)}

    return InProcess(f"planted {case_name}", grads, per_step)


@pytest.mark.parametrize("name", ["weight_hh_l0", "weight_hh_l0_reverse"])
def test_per_step_localization_names_each_directions_entry_step(name):
    case = build_case({"bidirectional": True, "seq_len": 5, "num_layers": 2}, seed=2)
    report = build_report(case, _planted(name, 2), ["torch"])
    (step,) = [s for s in report.steps if s.tensor == name]
    assert step.method == "per-step contributions" and step.entry_step == 2, step.describe()
    assert step.reverse == name.endswith("_reverse")


def test_the_reverse_directions_windows_are_its_steps_contributions():
    """One layer, loss at every step, sum: the run on each sequence's first T' steps, the reverse
    direction started from its exact state, gives its first T' steps' contributions exactly."""
    case = build_case({"bidirectional": True, "seq_len": 4, "batch_size": 3, "lengths": [4, 2, 3],
                       "peepholes": True, "final_state": True}, seed=4)  # fmt: skip
    full = torch_grads(case, per_step=True).per_step
    for steps in range(1, 5):
        window = torch_grads(reverse_suffix_case(case, steps)).grads
        for name in (n for n in full if n.endswith("_reverse")):
            np.testing.assert_allclose(window[name], full[name][:steps].sum(axis=0), rtol=1e-10, atol=1e-13)


def test_a_reverse_direction_slip_is_located_by_its_own_windows(capsys):
    """Without grads.per_step the report runs windows: the reverse direction's tensor gets reverse-suffix
    runs (its steps backwards), the forward direction's suffix runs."""
    impl = "lstm_gradcheck.reference.variants:reverse_recurrent_weight_off_by_one"
    argv = ["report", "--impl", impl, "--oracle", "torch", "--json", "--bidirectional", "--num-layers", "1",
            "--seq-len", "3", "--reduction", "sum"]  # fmt: skip
    assert main(argv) == 1
    data = json.loads(capsys.readouterr().out)
    (step,) = [s for s in data["steps"] if s["tensor"] == "weight_hh_l0_reverse"]
    assert step["method"] == "per-step contributions" and step["entry_step"] == 0 and step["reverse"]
    variant = VARIANTS["reverse_recurrent_weight_off_by_one"]
    bare = InProcess("no per_step", variant.grads, None)
    case = build_case({"bidirectional": True, "seq_len": 3}, seed=0)
    report = build_report(case, bare, ["torch"])
    (step,) = [s for s in report.steps if s.tensor == "weight_hh_l0_reverse"]
    # At T' = 1 the window's own initial state is the state the slip reads; from T' = 2 it is not.
    assert step.method == "reverse suffix" and step.reverse and step.entry_step == 1, step.describe()
