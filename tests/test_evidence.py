"""No verdict without evidence: what was judged decides the verdict, never the absence of a failure.

An implementation that refuses every case, or returns no gradient, ends "nothing checked"
(exit 2) in search, report and the pytest plugin; a pass resting on few judged examples says so;
support probing narrows to zero states, batch 1 and one step; a v1 implementation is never
handed the loss ``upstream`` it cannot know; step localization names no step it could not measure.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lstm_gradcheck import NothingCheckedError, assert_gradients_match, search
from lstm_gradcheck.implementation import InProcess
from lstm_gradcheck.localize import entry_from_end, first_from_start
from lstm_gradcheck.probing import supported_space
from lstm_gradcheck.reference import LSTMConfig, grads, make_case
from lstm_gradcheck.report import build_report

REFUSES = "def grads(case):\n    raise NotImplementedError('this code needs a GPU and cuDNN')\n"
EMPTY = "from lstm_gradcheck import reference\n\ndef grads(case):\n    return reference.grads(case)[0], {}\n"


@pytest.fixture
def impls(tmp_path: Path) -> Path:
    (tmp_path / "refuses.py").write_text(REFUSES)
    (tmp_path / "empty.py").write_text(EMPTY)
    return tmp_path


@pytest.mark.parametrize("command", ["report", "search"])
@pytest.mark.parametrize("as_json", [False, True])
def test_an_implementation_refusing_everything_is_nothing_checked(run_cli, impls, command, as_json):
    argv = [command, "--impl", f"{impls}/refuses.py:grads"] + (["--max-examples", "20"] if command == "search" else [])
    code, out, err = run_cli(*argv, *(["--json"] if as_json else []))
    assert code == 2, out + err
    assert "nothing checked" in err and "this code needs a GPU and cuDNN" in out + err, out + err
    assert "Traceback" not in err
    if as_json:
        data = json.loads(out)
        assert data["verdict"] == "nothing checked"
        assert "this code needs a GPU and cuDNN" in data["why"]
    else:
        assert "NOTHING CHECKED" in out or "nothing checked" in out, out


def test_the_search_result_says_nothing_was_judged(impls):
    result = search(f"{impls}/refuses.py:grads", max_examples=15)
    assert (result.verdict, result.judged, result.unsupported) == ("nothing checked", 0, 15)
    assert not result.found and "this code needs a GPU and cuDNN" in result.nothing_checked_message()


def test_no_gradient_is_nothing_checked(run_cli, impls):
    code, out, _ = run_cli("report", "--impl", f"{impls}/empty.py:grads", "--oracle", "torch", "--json")
    assert code == 2
    data = json.loads(out)
    assert data["verdict"] == "nothing checked" and "returned no gradient" in data["why"]
    with pytest.raises(NothingCheckedError, match="returned no gradient"):
        assert_gradients_match(f"{impls}/empty.py:grads", make_case(LSTMConfig(), seed=1))
    assert search(f"{impls}/empty.py:grads", max_examples=10).verdict == "nothing checked"


def test_the_pytest_plugin_fails_when_nothing_is_checked(impls):
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(impls),
         "--lstm-impl", f"{impls}/refuses.py:grads", "--lstm-max-examples", "10"],
        cwd=impls, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "--lstm-impl" in proc.stdout and "nothing checked" in proc.stdout, proc.stdout


def _implementation(rule):
    """The reference behind a support rule: ``rule(config) -> reason or None``."""

    def grads_if_supported(case):
        reason = rule(case.config)
        if reason:
            raise NotImplementedError(reason)
        return grads(case)

    return InProcess("rule", grads_if_supported)


def test_probing_finds_zero_states_batch_one_and_one_step():
    only = _implementation(
        lambda c: None if (c.h0, c.c0, c.batch_size, c.seq_len) == ("zero", "zero", 1, 1) else "h0 = c0 = 0, B = T = 1"
    )
    support = supported_space(only)
    assert support.found
    assert {"h0: only zero", "c0: only zero", "batch_size: only 1", "seq_len: only 1"} <= set(support.notes)
    result = search(only, max_examples=30)
    assert result.verdict == "pass" and result.judged == result.examples == 30


def test_a_pass_on_few_judged_examples_says_so(run_cli, tmp_path):
    (tmp_path / "picky.py").write_text(
        "from lstm_gradcheck import reference\n\n"
        "def grads(case):\n"
        "    if abs(float(case.x.flat[-1])) >= 0.05:  # about 4% of draws, small or large\n"
        "        raise NotImplementedError('only a few inputs')\n"
        "    return reference.grads(case)\n"
    )
    code, out, _ = run_cli("search", "--impl", f"{tmp_path}/picky.py:grads", "--max-examples", "100", "--json")
    data = json.loads(out)
    assert code == 0 and data["verdict"] == "pass"
    assert 0 < data["judged"] < 10 and "WARNING: only" in data["warning"], data


def test_a_v1_implementation_is_not_searched_on_the_loss_it_cannot_know():
    def v1(case):  # written for contract v1: every case has a head
        _ = case.params["head.weight"]
        return grads(case)

    support = supported_space(InProcess("v1", v1))
    assert "upstream" not in support.spaces[0].loss and "loss: only cross_entropy, mse, bce" in support.notes
    layer_only = _implementation(lambda c: None if c.loss == "upstream" else "only the layer's backward")
    assert _implementation(lambda c: None).name == "rule"
    assert supported_space(layer_only).spaces[0].loss == ("upstream",)


def test_an_entry_step_never_rests_on_an_unmeasured_step():
    nan = float("nan")
    assert entry_from_end([5.0, 0.1, 0.2], 1.0, lambda t: "") == (0, None)
    step, why = entry_from_end([5.0, nan, 0.2], 1.0, lambda t: " (refused)")
    assert step is None and why == "step 1 could not be measured (refused)"
    assert entry_from_end([5.0, 0.1, nan], 1.0, lambda t: "")[0] is None
    assert first_from_start([0.1, 3.0, nan], 1.0, lambda k: "") == (2, None)
    assert first_from_start([nan, 3.0], 1.0, lambda k: "")[0] is None


def test_a_refused_suffix_run_is_reported_unknown_not_guessed():
    # Wrong at every step, and refusing any case with nonzero initial states: the suffix runs
    # beyond the full one cannot be measured, so no entry step may be named from them.
    def wrong(case):
        if case.config.c0 != "zero" or case.config.h0 != "zero":
            raise NotImplementedError("zero initial states only")
        loss, g = grads(case)
        return loss, {**g, "bias_hh_l0": 1.01 * g["bias_hh_l0"]}

    case = make_case(LSTMConfig(num_layers=1, seq_len=5, final_state=False, h0="zero", c0="zero"), seed=3)
    report = build_report(case, InProcess("wrong", wrong), ["torch"])
    suffix = [s for s in report.steps if s.method == "suffix"]
    assert suffix and all(s.entry_step is None and "could not be measured" in s.unknown for s in suffix)
    assert report.as_json()["steps"][0]["entry_step"] is None
    prefix = [s for s in report.steps if s.method == "prefix"]
    assert prefix and all(s.first_wrong_prefix == 1 for s in prefix)
