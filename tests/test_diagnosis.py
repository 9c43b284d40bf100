"""The one-sentence diagnosis of a failing report, each kind on a planted slip of that kind.

The slips live in ``examples/impls/slip_*.py`` (catalogue.SLIPS): a forward that computes
another model with a backward consistent with it (a sigmoid cell gate, no forget_bias), a
tanh' slip in the cell gate's backward, a float32 buffer inside float64 code.
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from lstm_gradcheck.cli import build_parser, case_from_args
from lstm_gradcheck.diagnosis import BACKWARD, FORWARD, PRECISION, gate_phrase
from lstm_gradcheck.implementation import InProcess, reference_implementation
from lstm_gradcheck.isolation import load_implementation
from lstm_gradcheck.reference import LSTMConfig, make_case
from lstm_gradcheck.render import render_report
from lstm_gradcheck.report import build_report

IMPLS = Path(__file__).resolve().parents[1] / "examples" / "impls"
sys.path.insert(0, str(IMPLS))
import catalogue  # noqa: E402 (the examples folder is not a package)

ORACLES = ["torch"]


def _case(options: list[str]):
    return case_from_args(build_parser().parse_args(["report", *options]))


def _text(report) -> list[str]:
    stream = io.StringIO()
    render_report(report, stream, rich=False)
    return stream.getvalue().splitlines()


@pytest.mark.parametrize("slip", catalogue.SLIPS, ids=lambda s: f"{s.mistake}-{s.example[-1]}")
def test_each_slip_gets_its_diagnosis(slip):
    report = build_report(_case(slip.example), load_implementation(slip.spec), ORACLES)
    assert report.verdict == "fail"
    diagnosis = report.diagnosis
    assert diagnosis is not None and diagnosis.kind == slip.kind, diagnosis
    for phrase in slip.says:
        assert phrase in diagnosis.text, (phrase, diagnosis.text)
    assert diagnosis.gates == slip.gates, diagnosis
    if slip.kind == FORWARD:
        assert diagnosis.self_consistent is slip.self_consistent, diagnosis
    # At the top of the text, and in the JSON.
    assert _text(report)[1] == f"diagnosis: {diagnosis.text}"
    assert json.loads(json.dumps(report.as_json()))["diagnosis"]["kind"] == slip.kind


def test_a_forward_and_a_backward_both_wrong_are_not_called_consistent():
    slip = load_implementation(f"{IMPLS / 'slip_cell_gate_sigmoid.py'}:grads", in_process=True)

    def both_wrong(case):
        loss, grads = slip.grads(case)
        return loss, {**grads, "weight_hh_l0": grads["weight_hh_l0"] * 1.1}

    report = build_report(_case(["--num-layers", "1", "--seq-len", "3"]), InProcess("w", both_wrong), ORACLES)
    assert report.diagnosis.kind == FORWARD and report.diagnosis.self_consistent is False
    assert "the backward is wrong too" in report.diagnosis.text


def test_a_loss_scaled_by_a_wrong_count_is_named():
    spec = f"{IMPLS / 'bug_mean_divides_by_batch.py'}:grads"
    report = build_report(_case(["--seq-len", "4", "--reduction", "mean"]), load_implementation(spec), ORACLES)
    assert report.diagnosis.kind == FORWARD and report.diagnosis.self_consistent is True
    assert "the head's loss is 4 times the contract's" in report.diagnosis.text


def test_one_wrong_element_is_not_called_a_precision_slip():
    spec = f"{IMPLS / 'bug_tiny_error_one_element.py'}:grads"
    report = build_report(_case(["--num-layers", "1", "--seq-len", "3"]), load_implementation(spec), ORACLES)
    assert report.diagnosis.kind == BACKWARD and report.diagnosis.gates == ("i",)


def test_float32_roundoff_in_a_float32_case_is_not_a_precision_slip():
    # The same buffer in a float32 case is within the case's own precision: it passes.
    spec = f"{IMPLS / 'slip_float32_gate_buffer.py'}:grads"
    report = build_report(_case(["--num-layers", "1", "--dtype", "float32"]), load_implementation(spec), ORACLES)
    assert report.verdict == "pass" and report.diagnosis is None


def test_a_precision_slip_in_the_forward_is_named_before_the_forward():
    def float32_loss(case):
        loss, grads = reference_implementation().grads(case)
        return float(np.float32(loss)), {n: g.astype(np.float32).astype(np.float64) for n, g in grads.items()}

    case = make_case(LSTMConfig(num_layers=1, seq_len=3), seed=2)
    report = build_report(case, InProcess("f32", float32_loss), ORACLES)
    assert report.diagnosis.kind == PRECISION and "the loss too" in report.diagnosis.text


def test_a_passing_report_has_no_diagnosis():
    report = build_report(make_case(LSTMConfig(num_layers=1, seq_len=2), seed=1), reference_implementation(), ORACLES)
    assert report.diagnosis is None and report.as_json()["diagnosis"] is None
    assert not any(line.startswith("diagnosis:") for line in _text(report))


def test_a_failed_implementation_is_diagnosed_as_such(run_cli):
    code, out, _ = run_cli("report", "--impl", f"{IMPLS / 'bad_nan.py'}:grads", "--oracle", "torch", "--json")
    assert code == 1 and json.loads(out)["diagnosis"]["kind"] == "implementation failed"


@pytest.mark.parametrize(
    ("gates", "phrase"),
    [
        (["g"], "only the cell gate (g)"),
        (["f"], "only the forget gate (f)"),
        (["g", "i"], "the input (i) and cell (g) gates"),
        (["o", "i", "f"], "the input (i), forget (f) and output (o) gates"),
        (["i", "f", "g", "o"], "every gate (i, f, g, o)"),
    ],
)
def test_gate_phrases(gates, phrase):
    assert gate_phrase(gates) == phrase
