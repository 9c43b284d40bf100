"""No wrong gradient passes, whatever the checked code does: exit, hang, print below sys.stdout,
patch the harness, mutate its case, leave tensors out, or fail in odd ways.

Every hostile implementation (examples/hostile/) returns a wrong gradient, or none, around
its misbehaviour; each must end as its own failure (exit 1), a usage error (exit 2) or a
named gap, in ``report``, ``search``, the pytest plugin and the Python API.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lstm_gradcheck import ImplementationFailedError, ImplementationLoadError, assert_gradients_match, search
from lstm_gradcheck.implementation import UsageError
from lstm_gradcheck.reference import LSTMConfig, grads, make_case

HOSTILE = Path(__file__).resolve().parents[1] / "examples" / "hostile"

#: spec -> what the failure message says. Each returns a wrong gradient or none at all.
FAILING = {
    "exits.py:grads_sys_exit": "SystemExit: 0 (raised at exits.py",
    "exits.py:grads_raise_systemexit": "SystemExit (raised at exits.py",
    "exits.py:grads_os_exit": "it exited with status 0",
    "exits.py:grads_kill_itself": "killed by signal SIGKILL",
    "patches.py:grads_patching": "mismatch",
    "patches.py:grads_mutating_config": "mismatch",
    "faults.py:grads_no_grad": "mismatch",
    "faults.py:grads_low_recursion_limit": "mismatch",
    "faults.py:grads_unprintable_exception": "Unprintable: <its message could not be printed",
    "faults.py:grads_keyboard_interrupt": "KeyboardInterrupt (raised at faults.py, line",
    "faults.py:grads_memory_error": "MemoryError: cannot allocate (raised at faults.py",
    "prints.py:grads_wrong": "mismatch",
    "hangs.py:grads_sleep": "did not return within 1 s",
    "hangs.py:grads_loop": "did not return within 1 s",
}


def _spec(name: str) -> str:
    return f"{HOSTILE / name}"


def _said(data: dict) -> str:
    return json.dumps(data)


@pytest.mark.parametrize("name", sorted(FAILING))
def test_report_fails_each_hostile_implementation(run_cli, name):
    code, out, err = run_cli("report", "--impl", _spec(name), "--oracle", "torch", "--timeout", "1", "--json")
    data = json.loads(out)  # one JSON object on stdout, whatever the implementation wrote
    assert code == 1 and data["verdict"] == "fail", (code, err)
    assert FAILING[name] in _said(data), _said(data)[:2000]
    assert "Traceback" not in err and "internal error" not in err
    assert data["isolation"] == "worker"


@pytest.mark.parametrize(
    "name", ["exits.py:grads_os_exit", "exits.py:grads_sys_exit", "patches.py:grads_patching", "hangs.py:grads_sleep"]
)
def test_search_fails_each_hostile_implementation(run_cli, name):
    argv = ("search", "--impl", _spec(name), "--max-examples", "10", "--timeout", "1", "--json")
    code, out, err = run_cli(*argv)
    data = json.loads(out)
    assert code == 1 and data["verdict"] == "fail" and data["found"], (code, err)
    assert "Traceback" not in err and "internal error" not in err


def test_a_hang_stops_shrinking_after_a_few_timeouts(run_cli):
    start = time.monotonic()
    code, out, _ = run_cli("search", "--impl", _spec("hangs.py:grads_hang_when_long"), "--timeout", "1")
    assert code == 1 and "calls hung" in out and "reproduce: lstm-gradcheck report" in out, out
    assert time.monotonic() - start < 60


@pytest.mark.parametrize("name", ["exits.py:grads_os_exit", "faults.py:grads_keyboard_interrupt"])
def test_the_api_raises_the_implementations_failure(name):
    case = make_case(LSTMConfig(seq_len=3), seed=1)
    with pytest.raises(ImplementationFailedError, match=r"exited with status 0|KeyboardInterrupt"):
        assert_gradients_match(_spec(name), case)
    assert search(_spec(name), max_examples=5).verdict == "fail"


def test_patching_the_harness_in_one_implementation_cannot_help_another(monkeypatch):
    case = make_case(LSTMConfig(seq_len=3), seed=1)
    assert assert_gradients_match(_spec("patches.py:grads_patching_but_right"), case).verdict == "pass"
    with pytest.raises(AssertionError, match=r"head\.bias|bias_hh_l0"):
        assert_gradients_match(_spec("patches.py:grads_patching"), case)
    monkeypatch.syspath_prepend(str(HOSTILE))
    from patches import grads_patching  # noqa: PLC0415 (a function object: the API imports it in a worker)

    with pytest.raises(AssertionError, match=r"head\.bias|bias_hh_l0"):
        assert_gradients_match(grads_patching, case)
    # And nothing was patched here.
    from lstm_gradcheck.oracles import tolerance  # noqa: PLC0415

    assert tolerance.Tolerance.allowed(tolerance.make_tolerance("float64", {"x": case.x}, {}, 1.0), "x", 1.0) < 1


def test_mutating_the_config_changes_only_the_implementations_copy():
    case = make_case(LSTMConfig(seq_len=3, forget_bias=1.5), seed=1)
    with pytest.raises(AssertionError, match="mismatch"):
        assert_gradients_match(_spec("patches.py:grads_mutating_config"), case)
    assert case.config.forget_bias == 1.5


def test_the_plugin_fails_each_wrong_implementation_beside_one_that_patches(tmp_path):
    specs = ["patches.py:grads_patching_but_right", "patches.py:grads_patching", "exits.py:grads_os_exit"]
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(tmp_path),
            "--lstm-max-examples", "5", "-rA"]  # fmt: skip
    for spec in specs:
        argv += ["--lstm-impl", _spec(spec)]
    proc = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, check=False)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "1 passed" in proc.stdout and "2 failed" in proc.stdout, proc.stdout
    assert f"PASSED lstm-gradcheck::search[{_spec(specs[0])}]" in proc.stdout, proc.stdout


@pytest.mark.parametrize("command", ["report", "search"])
@pytest.mark.parametrize("blank", ["", "  "])
def test_a_blank_impl_is_a_usage_error_not_the_reference(run_cli, command, blank):
    code, out, err = run_cli(command, "--impl", blank, "--json")
    assert code == 2 and "--impl is empty" in err
    assert json.loads(out)["verdict"] == "error"
    with pytest.raises(ImplementationLoadError, match="empty"):
        search(blank)


def test_an_omitted_tensor_is_named_and_fails_a_requirement(run_cli):
    spec = _spec("omits.py:grads_without_weight_hh")
    code, out, _ = run_cli("search", "--impl", spec, "--max-examples", "20", "--json")
    data = json.loads(out)
    assert code == 0 and "weight_hh_l0" in data["not_provided"]
    assert data["tensors"]["weight_hh_l0"]["judged"] == 0 and data["tensors"]["x"]["judged"] > 0
    code, out, _ = run_cli("search", "--impl", spec, "--max-examples", "20")
    assert "not provided on any example (so never checked): weight_hh_l0" in out
    for require in ("all", "weight_hh_l*", "weight_hh_l0,x"):
        code, out, err = run_cli("search", "--impl", spec, "--max-examples", "20", "--require", require, "--json")
        data = json.loads(out)
        assert code == 2 and data["verdict"] == "nothing checked", (require, data)
        assert "weight_hh_l0 (not provided on any of" in data["why"]
    code, out, _ = run_cli("report", "--impl", spec, "--oracle", "torch", "--require", "all", "--json")
    assert code == 2 and "weight_hh_l0" in json.loads(out)["why"]
    head_only = _spec("omits.py:grads_head_only")
    assert run_cli("search", "--impl", head_only, "--max-examples", "10", "--require", "head.*")[0] == 0
    assert run_cli("search", "--impl", head_only, "--max-examples", "10", "--require", "x")[0] == 2
    code, _, err = run_cli("search", "--impl", head_only, "--require", "weight_xx_l0")
    assert code == 2 and "unknown gradient name" in err


def test_output_below_sys_stdout_never_reaches_the_json(run_cli):
    code, out, err = run_cli("report", "--impl", _spec("prints.py:grads"), "--oracle", "torch", "--json")
    data = json.loads(out)
    assert code == 0 and data["verdict"] == "pass"
    for text in ("os.write on fd 1", "a subprocess's echo", "C printf 42", "print() to sys.stdout", "os.write on fd 2"):
        assert text in data["implementation_output"] and text in err
    code, out, _ = run_cli("search", "--impl", _spec("prints.py:grads"), "--max-examples", "5", "--json")
    assert code == 0 and json.loads(out)["verdict"] == "pass"


@pytest.mark.parametrize("stderr", ["closed", "/dev/full"])
def test_json_is_one_object_whatever_state_stderr_is_in(stderr):
    argv = [sys.executable, "-m", "lstm_gradcheck", "report", "--impl", _spec("prints.py:grads_wrong"), "--json"]
    with open(stderr if stderr != "closed" else "/dev/null", "w") as sink:
        proc = subprocess.run(
            argv, stdout=subprocess.PIPE, stderr=sink, text=True, check=False,
            preexec_fn=(lambda: __import__("os").close(2)) if stderr == "closed" else None,
        )  # fmt: skip
    assert proc.returncode == 1
    assert json.loads(proc.stdout)["verdict"] == "fail"


def test_a_full_stdout_keeps_the_verdicts_exit_status():
    argv = [sys.executable, "-m", "lstm_gradcheck", "report", "--impl", _spec("prints.py:grads_wrong"), "--json"]
    with open("/dev/full", "w") as full:
        proc = subprocess.run(argv, stdout=full, stderr=subprocess.PIPE, text=True, check=False)
    assert proc.returncode == 1 and "could not write the output to stdout" in proc.stderr


def test_sigterm_ends_a_search_as_ctrl_c_does(tmp_path):
    argv = [sys.executable, "-m", "lstm_gradcheck", "search", "--impl", _spec("hangs.py:grads_sleep"),
            "--timeout", "600", "--json"]  # fmt: skip
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(4)  # probing hangs on its first call, inside the search command
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    data = json.loads(out)
    assert data["verdict"] in ("interrupted", "error") and "Traceback" not in err


@pytest.mark.parametrize(
    ("name", "where"),
    [("narrow.py:grads_unit6", "hidden_size=7"), ("narrow.py:grads_batch1_states", "batch_size=1"),
     ("narrow.py:grads_forget_window", "forget_bias=2.")],
)  # fmt: skip
def test_the_default_search_reaches_every_region(name, where):
    result = search(_spec(name))
    assert result.verdict == "fail" and where in result.case.describe(), result.case
    if "batch1" in name:
        assert any("region" in note for note in result.space_notes), result.space_notes


def test_the_api_needs_a_function_it_can_import_or_in_process(capsys):
    def closure(case):
        return grads(case)

    with pytest.raises(UsageError, match=r"inside a function .* in_process=True"):
        search(closure, max_examples=2)
    result = search(closure, max_examples=3, in_process=True)
    assert result.verdict == "pass" and result.isolation == "in process"


@pytest.mark.parametrize("in_process", [False, True])
def test_checking_writes_no_bytecode_into_the_users_folder(run_cli, tmp_path, monkeypatch, in_process):
    (tmp_path / "helpers_xyz.py").write_text("from lstm_gradcheck import reference\ngrads = reference.grads\n")
    (tmp_path / "mylstm_xyz.py").write_text("from helpers_xyz import grads\n")
    monkeypatch.chdir(tmp_path)
    flags = ["--in-process"] if in_process else []
    for spec in ("mylstm_xyz:grads", f"{tmp_path / 'mylstm_xyz.py'}:grads"):
        code, _, err = run_cli("report", "--impl", spec, "--oracle", "torch", *flags)
        assert code == 0, err
    assert not list(tmp_path.rglob("__pycache__")) and not list(tmp_path.rglob("*.pyc"))


def _pytest_with(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(tmp_path), *args]
    return subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, check=False)


def test_the_plugin_times_out_a_hang_and_names_or_requires_omitted_tensors(tmp_path):
    hang = _pytest_with(tmp_path, "--lstm-impl", _spec("hangs.py:grads_sleep"), "--lstm-timeout", "1")
    assert hang.returncode == 1 and "did not return within 1 s" in hang.stdout, hang.stdout
    omits = ["--lstm-impl", _spec("omits.py:grads_without_weight_hh"), "--lstm-max-examples", "10"]
    named = _pytest_with(tmp_path, *omits)
    assert named.returncode == 0 and "never provided, so never checked: weight_hh_l0" in named.stdout, named.stdout
    required = _pytest_with(tmp_path, *omits, "--lstm-require", "all")
    assert required.returncode == 1 and "weight_hh_l0 (not provided on any of" in required.stdout, required.stdout
    blank = _pytest_with(tmp_path, "--lstm-impl", " ")
    assert blank.returncode == 1 and "--impl is empty" in blank.stdout, blank.stdout
