"""The regression suite of derivation variants: every recorded verdict holds.

Each wrong variant goes through the same search as ``lstm-gradcheck search`` with its
recorded minimal failing case pinned as Hypothesis's ``@example`` (so CI never relies
on search luck); the failure must meet the recorded minimal condition and sit in the
recorded tensors and gates. Each right variant must survive a property search.
``lstm-gradcheck variants --search-only`` runs the same without the pins.
"""

from __future__ import annotations

import json

import pytest

from lstm_gradcheck.cli import main
from lstm_gradcheck.reference.variants import VARIANTS, right_variants, wrong_variants
from lstm_gradcheck.variants import check_variant, kill_matrix


@pytest.mark.parametrize("variant", wrong_variants(), ids=lambda v: v.name)
def test_wrong_variant_is_caught_at_its_minimal_case_and_located(variant):
    outcome = check_variant(variant, max_examples=50)
    assert outcome.observed == "fail", f"{variant.name} was not caught"
    assert outcome.minimal_ok, f"{variant.name}: {outcome.case.describe()} is not a minimal trigger"
    assert outcome.location_ok, f"{variant.name}: wrong in {outcome.location}, recorded {variant.location}"
    assert outcome.as_recorded


@pytest.mark.parametrize("variant", right_variants(), ids=lambda v: v.name)
def test_right_variant_survives_the_property_search(variant):
    outcome = check_variant(variant, max_examples=80, seed=1)
    assert outcome.observed == "pass", f"{variant.name} flagged on {outcome.case.describe()}: {outcome.why}"
    assert outcome.examples == 80


@pytest.mark.parametrize(
    "name", ["seed004_eq3_no_recurrent_dh", "truncated_bptt_2", "padding_steps_scored", "bias_batch_mean"]
)
def test_the_search_alone_finds_and_shrinks_them(name):
    """Without the pinned case the search must find the failure and shrink it to the recorded minimum."""
    outcome = check_variant(VARIANTS[name], max_examples=200, pinned=False)
    assert outcome.found_by == "search"
    assert outcome.minimal_ok and outcome.location_ok, outcome.as_dict()


def test_variants_json_follows_the_contract(capsys):
    names = ["seed002_printed_jacobian", "seed003_forget_bias_in_both", "no_dc_carry"]
    argv = ["variants", "--json", "--max-examples", "20"] + [x for n in names for x in ("--only", n)]
    assert main(argv) == 0
    data = json.loads(capsys.readouterr().out)
    rows = {row["name"]: row for row in data["variants"]}
    assert set(rows) == set(names)
    for row in rows.values():
        assert {"name", "source", "expected", "observed"} <= set(row)
        assert row["observed"] == row["expected"]
    assert rows["seed002_printed_jacobian"]["source"].startswith("seed 002")
    wrong = rows["no_dc_carry"]
    assert {"minimal_case", "location"} <= set(wrong)
    assert wrong["minimal_case"]["seq_len"] == 2 and wrong["location"]["tensors"]


def test_kill_matrix_names_every_guard_of_a_variant():
    rows = kill_matrix(
        ["seed004_sigma_prime_to_layer_below", "bias_from_one_sample", "tanh_backward_on_identity_forward"]
    )
    for row in rows:
        assert len(row.guards) >= 2, (row.variant.name, row.guards)
    assert rows[0].caught["torch-nn"] is True
    assert rows[2].caught["torch-nn"] is None  # torch.nn.LSTM cannot express an identity cell
    assert rows[1].caught["batch additivity"] is True
