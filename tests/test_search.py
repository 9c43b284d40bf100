"""``lstm-gradcheck search``, the pytest plugin, step localization and the plot."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lstm_gradcheck.implementation import reference_implementation
from lstm_gradcheck.isolation import load_implementation
from lstm_gradcheck.reference.case import make_case
from lstm_gradcheck.reference.config import LSTMConfig
from lstm_gradcheck.report import build_report
from lstm_gradcheck.searching import search

PLANTED = Path(__file__).parent / "planted" / "output_gate_sigma_prime.py"
SPEC = f"{PLANTED}:grads"


def test_search_on_the_reference_finds_nothing(run_cli):
    code, out, _ = run_cli("search", "--max-examples", "25", "--seed", "3")
    assert code == 0
    assert out.startswith("no failing case in 25 examples (25 judged, 0 unsupported)")


def test_search_finds_shrinks_and_prints_a_command_that_reproduces(run_cli):
    code, out, _ = run_cli("search", "--impl", SPEC, "--json")
    assert code == 1
    data = json.loads(out)
    assert data["found"] is True and data["verdict"] == "fail"
    assert data["examples"] >= 1 and data["unsupported"] >= 0
    case = data["case"]
    # The planted bug needs nothing but one step of the output gate: the minimal case.
    assert (case["num_layers"], case["seq_len"], case["batch_size"], case["hidden_size"]) == (1, 1, 1, 1)
    assert (case["forget_bias"], case["reduction"], case["dtype"], case["lengths"]) == (0.0, "sum", "float64", None)
    wrong = {g["name"]: g for g in data["gradients"] if g["status"] == "mismatch"}
    assert {"weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"} <= set(wrong)
    assert {g["gate"] for n, g in wrong.items() if n.startswith(("weight", "bias"))} == {"o"}
    command = data["command"].split()
    assert command[:2] == ["lstm-gradcheck", "report"]
    code, out, _ = run_cli(*command[1:], "--json")
    assert code == 1
    assert json.loads(out)["case"] == case


def test_same_seed_same_result():
    impl = load_implementation(SPEC)
    first = search(impl, max_examples=60, seed=11)
    second = search(impl, max_examples=60, seed=11)
    assert first.found and second.found
    assert first.examples == second.examples
    assert first.case.describe() == second.case.describe()


def test_unsupported_cases_are_counted_and_never_flagged(tmp_path):
    impl_file = tmp_path / "only_f32.py"
    impl_file.write_text(
        "from lstm_gradcheck import reference\n"
        "def grads(case):\n"
        "    if case.config.num_layers > 1 or case.config.seq_len > 4:\n"
        "        raise NotImplementedError('one layer, at most 4 steps')\n"
        "    return reference.grads(case)\n"
    )
    result = search(load_implementation(f"{impl_file}:grads"), max_examples=40, seed=2)
    assert not result.found
    assert result.examples == 40
    # Probing learns the layer limit (so no example is wasted on it); the step limit it cannot, so those count.
    assert result.space_notes == ("num_layers: up to 1",)
    assert 0 < result.unsupported < 40


def test_report_on_a_planted_single_gate_bug_names_the_gate_and_the_entry_step():
    case = make_case(LSTMConfig(num_layers=1, seq_len=5, loss="mse", final_state=False), seed=4)
    report = build_report(case, load_implementation(SPEC), ["torch"])
    assert report.verdict == "fail"
    wrong = {t.name: t for t in report.tensors if t.status == "mismatch"}
    for name in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"):
        assert wrong[name].record.worst.gate == "o", wrong[name].record.describe()
    steps = {s.tensor: s for s in report.steps}
    # Every step's output-gate delta is wrong: BPTT goes wrong at the last step, step 4.
    assert steps["weight_hh_l0"].method == "suffix"
    assert steps["weight_hh_l0"].entry_step == 4
    gate_rows = dict(zip("ifgo", steps["weight_hh_l0"].gate_errors, strict=True))
    assert gate_rows["o"][4] > 1.0 and gate_rows["f"][4] <= 1.0  # only the output gate at the last step


def test_per_step_and_suffix_localization_agree_on_a_missing_recurrent_term():
    import dataclasses  # noqa: PLC0415

    import numpy as np  # noqa: PLC0415

    from lstm_gradcheck.implementation import InProcess  # noqa: PLC0415
    from lstm_gradcheck.reference import lstm  # noqa: PLC0415

    def run_wrong(case):
        real = lstm.layer_backward

        def layer_backward(cache, dh_out, dh_n=None, dc_n=None, **options):
            wrong = real(dataclasses.replace(cache, w_hh=np.zeros_like(cache.w_hh)), dh_out, dh_n, dc_n, **options)
            return dataclasses.replace(wrong, dh0=wrong.dz[0] @ cache.w_hh)

        lstm.layer_backward = layer_backward
        try:
            result, cache = lstm.forward(case)
            back = lstm.backward(cache)
            return result.loss, back.grads, lstm.per_step_contributions(cache, back)
        finally:
            lstm.layer_backward = real

    case = make_case(LSTMConfig(seq_len=6), seed=5, lengths=[6, 4, 2])
    with_steps = InProcess("w", lambda c: run_wrong(c)[:2], lambda c: run_wrong(c)[2])
    black_box = InProcess("b", lambda c: run_wrong(c)[:2])
    entries_a = {s.tensor: s.entry_step for s in build_report(case, with_steps, ["torch"]).steps}
    entries_b = {s.tensor: s.entry_step for s in build_report(case, black_box, ["torch"]).steps}
    assert entries_a["weight_hh_l0"] == entries_b["weight_hh_l0"] == 4  # T - 2: the last step has no recurrence


def test_plot_draws_a_png(tmp_path, run_cli):
    out = tmp_path / "errors.png"
    code, stdout, _ = run_cli(
        "report",
        "--impl",
        SPEC,
        "--num-layers",
        "1",
        "--loss",
        "mse",
        "--no-final-state",
        "--oracle",
        "torch",
        "--plot",
        str(out),
    )
    assert code == 1
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"plot: {out}" in stdout


def test_pytest_plugin_runs_the_search(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--lstm-impl",
            SPEC,
            "--lstm-max-examples",
            "30",
            "--rootdir",
            str(tmp_path),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "found a failing case" in proc.stdout
    assert "reproduce: lstm-gradcheck report --impl" in proc.stdout
    ok = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--lstm-impl",
            "lstm_gradcheck.reference:grads",
            "--lstm-max-examples",
            "15",
            "--rootdir",
            str(tmp_path),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "1 passed" in ok.stdout


def test_assert_gradients_match_raises_a_located_error():
    from lstm_gradcheck import GradientMismatchError, assert_gradients_match  # noqa: PLC0415

    case = make_case(LSTMConfig(num_layers=1, loss="mse", final_state=False), seed=1)
    assert assert_gradients_match(reference_implementation(), case).verdict == "pass"
    with pytest.raises(GradientMismatchError, match=r"weight_hh_l0\[output gate"):
        assert_gradients_match(SPEC, case)
