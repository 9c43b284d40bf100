"""Bad input never ends in a traceback; the same seed gives the same bytes; Ctrl-C is handled."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st


@pytest.fixture
def impl_dir(tmp_path: Path) -> Path:
    (tmp_path / "syntax_error.py").write_text("def grads(case)\n    return 1\n")
    (tmp_path / "raises_on_import.py").write_text("raise RuntimeError('needs a GPU')\n")
    (tmp_path / "no_function.py").write_text("def other(case):\n    pass\n")
    (tmp_path / "not_callable.py").write_text("grads = 3\n")
    (tmp_path / "helper.py").write_text(
        "from lstm_gradcheck import reference\n\ndef compute(case):\n    return reference.grads(case)\n"
    )
    (tmp_path / "uses_sibling.py").write_text(
        "from helper import compute\n\ndef grads(case):\n    return compute(case)\n"
    )
    return tmp_path


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("nocolon", "--impl expects MODULE:FUNCTION or path/to/file.py:FUNCTION"),
        ("mod:", "--impl expects MODULE:FUNCTION"),
        ("a.b-c:grads", "'a.b-c' is not a module name or a .py file"),
        ("mod:3x", "'3x' is not a Python function name"),
        ("no_such_module_xyz:grads", "no module named 'no_such_module_xyz'"),
        ("{d}/missing.py:grads", "no such file"),
        ("{d}/syntax_error.py:grads", "importing {d}/syntax_error.py failed: SyntaxError"),
        ("{d}/raises_on_import.py:grads", "failed: RuntimeError: needs a GPU (raises_on_import.py, line 1)"),
        ("{d}/no_function.py:grads", "has no function 'grads'; it defines other"),
        ("{d}/not_callable.py:grads", "'grads' is a int, not a function"),
    ],
)
@pytest.mark.parametrize("as_json", [False, True])
def test_unusable_implementations_exit_2_with_one_message(run_cli, impl_dir, spec, message, as_json):
    argv = ["report", "--impl", spec.format(d=impl_dir), "--oracle", "torch"] + (["--json"] if as_json else [])
    code, out, err = run_cli(*argv)
    assert code == 2
    assert message.format(d=impl_dir) in err
    assert "Traceback" not in err
    if as_json:  # one JSON object on stdout in every outcome
        data = json.loads(out)
        assert data["verdict"] == "error" and data["exit_status"] == 2
        assert message.format(d=impl_dir) in data["error"]
    else:
        assert out == ""


def test_a_file_may_import_its_siblings(run_cli, impl_dir):
    code, out, err = run_cli("report", "--impl", f"{impl_dir}/uses_sibling.py:grads", "--oracle", "torch")
    assert code == 0, err
    assert "PASS" in out


def _without_timings(data):
    """The report minus what is measured in time: "timings", "speed", "budget" and every "...seconds" field."""
    if isinstance(data, dict):
        return {
            k: _without_timings(v)
            for k, v in data.items()
            if k not in ("timings", "speed", "budget") and not k.endswith("seconds")
        }

    if isinstance(data, list):
        return [_without_timings(v) for v in data]
    return data


def test_the_same_seed_gives_the_same_report_byte_for_byte(run_cli):
    argv = [
        "report",
        "--seed",
        "42",
        "--num-layers",
        "3",
        "--lengths",
        "6,3,1",
        "--oracle",
        "torch",
        "--oracle",
        "torch-nn",
    ]
    outputs = [run_cli(*argv, "--json")[1] for _ in range(2)]
    first, second = (json.dumps(_without_timings(json.loads(o)), sort_keys=True) for o in outputs)
    assert first == second
    texts = [re.sub(r"\d+(\.\d+)?(e-?\d+)? s\)", "<t> s)", run_cli(*argv)[1]) for _ in range(2)]
    assert texts[0] == texts[1]
    other = run_cli(*argv[:2], "43", *argv[3:], "--json")[1]
    assert json.dumps(_without_timings(json.loads(other)), sort_keys=True) != first


SLOW_IMPL = """
import pathlib
import time
from lstm_gradcheck import reference

def grads(case):
    loss, g = reference.grads(case)
    if case.config.seq_len >= 3:
        time.sleep(0.3)  # slow only on larger cases, so probing is quick and the search is long
        pathlib.Path(MARKER).touch()
        if WRONG:
            g = dict(g)
            g["head.bias"] = g["head.bias"] * 1.001
    return loss, g
"""


@pytest.mark.parametrize("wrong", [True, False])
def test_ctrl_c_during_search_prints_the_smallest_failure_so_far_and_exits_130(tmp_path, wrong):
    marker = tmp_path / "running"
    impl = tmp_path / "slow.py"
    impl.write_text(SLOW_IMPL.replace("WRONG", str(wrong)).replace("MARKER", repr(str(marker))))
    proc = subprocess.Popen(
        [sys.executable, "-m", "lstm_gradcheck", "search", "--impl", f"{impl}:grads", "--max-examples", "100000"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not marker.exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        time.sleep(1.0)  # well inside the search (shrinking, for the wrong one)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()  # never leave a 100000-example search behind a failed or killed test
    assert proc.returncode == 130, out + err
    assert "Traceback" not in err
    assert re.search(r"interrupted after \d+ examples", out), out + err
    if wrong:
        assert "smallest failing case so far" in out
        assert "reproduce: lstm-gradcheck report --impl" in out
    else:
        assert "no failing case found so far" in out


OPTIONS = {
    "--input-size": "int",
    "--hidden-size": "int",
    "--num-layers": "int",
    "--output-size": "int",
    "--seq-len": "int",
    "--batch-size": "int",
    "--loss-at": ["last", "every"],
    "--loss": ["cross_entropy", "mse", "bce"],
    "--reduction": ["sum", "mean"],
    "--forget-bias": "float",
    "--cell-output": ["tanh", "identity"],
    "--dtype": ["float64", "float32"],
    "--final-state": ["true", "false"],
    "--lengths": "lengths",
    "--seed": "int",
    "--weight-scale": "float",
    "--oracle": ["torch", "torch-nn"],
}
JUNK = st.sampled_from(["", "-1", "0", "nan", "inf", "1e400", "x", "3.5", "float16", "1,,2", "-", "--", "🙂", "10**9"])


def _value(kind):
    if isinstance(kind, list):
        return st.one_of(st.sampled_from(kind), JUNK)
    if kind == "int":
        return st.one_of(st.integers(1, 3).map(str), st.integers(-5, 0).map(str), st.just("99999999999"), JUNK)
    if kind == "float":
        return st.one_of(st.floats(-3, 3, allow_nan=False).map(repr), JUNK)
    return st.one_of(st.lists(st.integers(0, 4), min_size=1, max_size=4).map(lambda v: ",".join(map(str, v))), JUNK)


ARGS = st.lists(
    st.sampled_from(sorted(OPTIONS)).flatmap(lambda opt: st.tuples(st.just(opt), _value(OPTIONS[opt]))),
    max_size=5,
).map(lambda pairs: [x for pair in pairs for x in pair])


# run_cli (capsys) is function-scoped but safe here: every example reads and so resets the captured output;
# `search` runs its own @given inside this one, which is fine for two examples.
@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.nested_given],
)
@given(ARGS, st.booleans(), st.sampled_from(["report", "search", "repor", ""]))
def test_fuzzed_arguments_never_crash(run_cli, args, as_json, command):
    argv = ([command] if command else []) + args + (["--json"] if as_json else [])
    if command == "search":
        argv += ["--max-examples", "2"]
    code, out, err = run_cli(*argv)
    assert code in (0, 1, 2), (argv, code, err)
    assert "Traceback" not in err and "internal error" not in err, (argv, err)
    if code == 2:
        assert "error:" in err, (argv, err)
    if as_json and code in (0, 1):
        json.loads(out)
    if as_json and code == 2:
        assert out == "" or json.loads(out)
