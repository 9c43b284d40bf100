"""What a new user meets first: the terminal table, JSON in every outcome, the help, the Python API,
and a project of theirs with its own ``reference`` package or ``properties.py``.
"""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from lstm_gradcheck import __version__, search
from lstm_gradcheck.isolation import load_implementation
from lstm_gradcheck.oracles.registry import oracle_names
from lstm_gradcheck.reference import LSTMConfig, make_case
from lstm_gradcheck.render import render_report
from lstm_gradcheck.report import build_report

ROOT = Path(__file__).resolve().parents[1]
IMPLS = ROOT / "examples" / "impls"


def _rendered(report, width: int) -> str:
    """The report as a forced terminal of ``width`` columns shows it, colours stripped."""
    stream = io.StringIO()
    render_report(report, stream, rich=True, width=width)
    return re.sub(r"\x1b\[[0-9;]*m", "", stream.getvalue())


@pytest.fixture(scope="module")
def forget_gate_report():
    """A one-unit case where the forget gate's rows are wrong: the worst element is unit 0's."""
    config = LSTMConfig(input_size=2, hidden_size=1, num_layers=1, seq_len=1, batch_size=1, final_state=False)
    impl = load_implementation(f"{IMPLS / 'bug_forget_bias_backward.py'}:grads")
    return build_report(make_case(config, seed=3), impl, ["torch"])


@pytest.mark.parametrize("width", [80, 120])
def test_a_terminal_keeps_every_location_and_number(forget_gate_report, width):
    text = _rendered(forget_gate_report, width)
    assert "bias_ih_l0[forget gate, unit 0]" in text
    assert "weight_ih_l0[forget gate, unit 0, x[" in text
    assert "mismatch [torch]" in text  # brackets are data, not rich markup
    assert "…" not in text  # nothing cut
    for record in forget_gate_report.tensors:
        assert f"{record.record.allowed:.3g}" in text  # every tolerance whole, exponent included
    assert max(len(line) for line in text.splitlines()) <= width


def test_a_wide_terminal_gets_the_table(forget_gate_report):
    text = _rendered(forget_gate_report, 200)
    assert "┃ tensor" in text and "bias_ih_l0[forget gate, unit 0]" in text


def test_search_json_on_a_zero_head_gradient_is_valid_and_exits_1(run_cli):
    # Cross-entropy over one class with the final-state term: the head's exact gradient is 0.
    code, out, err = run_cli("search", "--impl", f"{IMPLS / 'bug_final_state_ignores_dc_n.py'}:grads", "--json")
    assert code == 1, err
    data = json.loads(out)
    assert (data["case"]["output_size"], data["case"]["loss"], data["case"]["final_state"]) == (
        1,
        "cross_entropy",
        True,
    )
    head = {g["name"]: g for g in data["gradients"] if g["name"].startswith("head")}
    assert head and all(g["scale"] == 0.0 for g in head.values())


def test_an_internal_error_still_prints_one_json_object(run_cli, monkeypatch):
    from lstm_gradcheck import cli  # noqa: PLC0415

    def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(cli, "build_report", broken)
    code, out, err = run_cli("report", "--json", "--oracle", "torch")
    assert code == 3 and "internal error: RuntimeError: a bug" in err
    data = json.loads(out)
    assert data["verdict"] == "error" and data["exit_status"] == 3


@pytest.mark.parametrize("argv", [["report", "--hidden-size", "0"], ["nonsense"], ["report", "--loss", "nll"]])
def test_a_usage_error_with_json_prints_one_json_object(run_cli, argv):
    code, out, err = run_cli(*argv, "--json")
    assert code == 2 and "error:" in err and "Traceback" not in err
    assert json.loads(out)["verdict"] == "error"


def test_version_and_help_come_from_the_project(run_cli):
    code, out, _ = run_cli("--version")
    assert code == 0 and out.strip() == f"lstm-gradcheck {__version__}"
    code, out, _ = run_cli("report", "--help")
    assert code == 0
    assert all(f"  {name} " in out for name in oracle_names())
    assert "exit status:" in out and "nothing checked" in out and "130" in out
    for flag in ("--h0 {random,zero}", "--c0 {random,zero}", "upstream"):
        assert flag in out


def test_plot_without_matplotlib_refuses_before_any_work(run_cli, monkeypatch):
    from lstm_gradcheck import cli  # noqa: PLC0415

    real = cli.importlib.util.find_spec
    monkeypatch.setattr(cli.importlib.util, "find_spec", lambda name: None if name == "matplotlib" else real(name))
    monkeypatch.setattr(cli, "build_report", lambda *a, **k: pytest.fail("the check ran"))
    code, _, err = run_cli("report", "--plot", "x.png")
    assert code == 2 and "pip install matplotlib" in err


def test_search_takes_a_plain_function_and_a_spec():
    from lstm_gradcheck.reference import grads  # noqa: PLC0415

    assert search(grads, max_examples=5).verdict == "pass"
    assert search("lstm_gradcheck.reference:grads", max_examples=5).verdict == "pass"


def test_a_user_project_with_its_own_reference_package_runs_pytest(tmp_path):
    (tmp_path / "reference").mkdir()
    (tmp_path / "reference" / "__init__.py").write_text("VALUE = 42\n")
    (tmp_path / "properties.py").write_text("COLOUR = 'blue'\n")
    (tmp_path / "test_mine.py").write_text(
        "import properties\nimport reference\n\n"
        "def test_mine():\n    assert reference.VALUE == 42 and properties.COLOUR == 'blue'\n"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=tmp_path, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 0 and "1 passed" in proc.stdout, proc.stdout + proc.stderr


def test_search_passes_a_correct_implementation_beside_a_properties_module(tmp_path):
    (tmp_path / "properties.py").write_text("raise ImportError('not the harness properties')\n")
    (tmp_path / "reference.py").write_text("raise ImportError('not the harness reference')\n")
    (tmp_path / "mine.py").write_text(
        "import lstm_gradcheck.reference as harness\n\ndef grads(case):\n    return harness.grads(case)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "lstm_gradcheck", "search", "--impl", "mine.py:grads", "--max-examples", "20"],
        cwd=tmp_path, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("no failing case in 20 examples (20 judged")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.py", "properties.py", "reference.py"]
