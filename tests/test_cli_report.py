"""``lstm-gradcheck report``: the default run, the JSON shape of the contract, usage errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

CONTRACT_CASE_KEYS = {
    "input_size",
    "hidden_size",
    "num_layers",
    "output_size",
    "seq_len",
    "batch_size",
    "loss_at",
    "loss",
    "reduction",
    "forget_bias",
    "cell_output",
    "dtype",
    "final_state",
    "lengths",
}


def test_default_report_prints_the_agreement_table_and_exits_0(run_cli):
    code, out, err = run_cli("report", "--oracle", "torch", "--oracle", "torch-nn")
    assert code == 0, out + err
    assert "tensor" in out and "max rel err" in out and "tolerance" in out
    for name in ("weight_ih_l0", "weight_hh_l1", "bias_hh_l1", "head.weight", "x", "h0", "c0"):
        assert f"\n{name} " in out
    assert "PASS: every provided gradient and the loss agree with torch, torch-nn" in out
    assert "rule: |a - o| <= 7.3e-11 * scale" in out


def test_console_script_runs_and_json_follows_the_contract():
    proc = subprocess.run(
        [sys.executable, "-m", "lstm_gradcheck", "report", "--json", "--oracle", "torch", "--lengths", "6,2,4"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["verdict"] == "pass"
    assert CONTRACT_CASE_KEYS <= set(data["case"])
    assert data["case"]["lengths"] == [6, 2, 4]
    assert {g["name"] for g in data["gradients"]} >= {"weight_ih_l0", "x", "h0", "c0", "head.bias"}
    for g in data["gradients"]:
        assert {"name", "status", "max_abs_err", "max_rel_err"} <= set(g)
        assert g["status"] == "ok"
    assert set(data["timings"]) >= {"implementation", "torch"}
    assert [(o["name"], o["verdict"], o["forward_passes"]) for o in data["oracles"]] == [("torch", "pass", 1)]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["report", "--hidden-size", "0"], "--hidden-size: expected an integer >= 1, got 0"),
        (["report", "--seq-len", "three"], "--seq-len: expected an integer >= 1, got 'three'"),
        (["report", "--forget-bias", "nan"], "--forget-bias: expected a finite number, got 'nan'"),
        (["report", "--loss", "nll"], "--loss: invalid choice: 'nll'"),
        (["report", "--dtype", "float16"], "--dtype: invalid choice: 'float16'"),
        (["report", "--lengths", "7,1,1"], "--lengths: every length must lie in [1, seq_len=6], got [7, 1, 1]"),
        (["report", "--lengths", "2,2"], "--lengths: expected one length per sequence, shape (3,), got shape (2,)"),
        (["report", "--lengths", "2,x,1"], "--lengths: expected comma-separated integers"),
        (["report", "--oracle", "magic"], "--oracle: unknown oracle 'magic'"),
        (["report", "--seq-len", "100000", "--batch-size", "4096", "--hidden-size", "512"], "would need about"),
    ],
)
def test_usage_errors_exit_2_with_one_message(run_cli, argv, message):
    code, out, err = run_cli(*argv)
    assert code == 2
    assert message in err
    assert "Traceback" not in err
    assert out == ""
