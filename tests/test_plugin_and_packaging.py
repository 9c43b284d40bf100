"""The pytest plugin's selection rule and option checks, and what the package ships and writes.

An implementation named in the configuration runs only when the whole suite or the marker is
selected (Note [When the searches run]); ``-p no:lstm_gradcheck`` with the pyproject table
passes under --strict-config; bad option values are usage errors; ``help()`` lists the API;
``py.typed`` and a changelog ship; ``variants`` writes nothing into the current directory.
"""

from __future__ import annotations

import os
import pydoc
import re
import subprocess
import sys
from pathlib import Path

import pytest

import lstm_gradcheck

ROOT = Path(__file__).resolve().parents[1]
# A search of this implementation ends "nothing checked", a failing test: it shows whether the search ran.
REFUSES = "def grads(case):\n    raise NotImplementedError('nothing supported')\n"


def _project(tmp_path: Path, config: str) -> Path:
    (tmp_path / "refuses.py").write_text(REFUSES)
    (tmp_path / "test_unrelated.py").write_text("def test_unrelated():\n    pass\n")
    (tmp_path / "pyproject.toml").write_text(config)
    return tmp_path


def _pytest(folder: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--lstm-max-examples", "5", *args],
        cwd=folder, capture_output=True, text=True, check=False,
    )  # fmt: skip


INI = '[tool.pytest.ini_options]\nlstm_impl = ["refuses.py:grads"]\n'
TABLE = '[tool.lstm-gradcheck]\nimpl = "refuses.py:grads"\n\n[tool.pytest.ini_options]\n'


@pytest.mark.parametrize("config", [INI, TABLE], ids=["ini line", "pyproject table"])
def test_configured_searches_run_for_the_whole_suite_or_the_marker_only(tmp_path, config):
    folder = _project(tmp_path, config)
    one = _pytest(folder, "test_unrelated.py::test_unrelated")
    assert one.returncode == 0 and "1 passed" in one.stdout and "lstm-gradcheck" not in one.stdout, one.stdout
    whole = _pytest(folder)
    assert whole.returncode == 1 and "1 failed, 1 passed" in whole.stdout, whole.stdout
    assert "search[refuses.py:grads]" in whole.stdout and "nothing checked" in whole.stdout
    if config == INI:
        return  # the same rule: the marker and the command line are checked once, with the table
    marked = _pytest(folder, "test_unrelated.py", "-m", "lstm_gradcheck")
    assert marked.returncode == 1 and "1 failed, 1 deselected" in marked.stdout, marked.stdout
    asked = _pytest(folder, "test_unrelated.py", "--lstm-impl", "refuses.py:grads")
    assert asked.returncode == 1 and "1 failed, 1 passed" in asked.stdout, asked.stdout


def test_the_table_survives_the_plugin_being_disabled_under_strict_config(tmp_path):
    folder = _project(tmp_path, TABLE)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:lstm_gradcheck", "--strict-config"],
        cwd=folder, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 0 and "1 passed" in proc.stdout, proc.stdout + proc.stderr


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--lstm-max-examples", "-5", "expected an integer >= 1, got -5"),
        ("--lstm-max-examples", "0", "expected an integer >= 1, got 0"),
        ("--lstm-max-examples", "many", "expected an integer >= 1, got 'many'"),
        ("--lstm-seed", "-1", "expected an integer in [0, 2^63), got -1"),
    ],
)
def test_plugin_options_are_checked_with_a_usage_message(tmp_path, option, value, message):
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--lstm-impl", "x:grads", option, value],
        cwd=tmp_path, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 4, proc.stdout + proc.stderr  # pytest's usage-error status
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.splitlines()) < 10


def test_help_lists_the_public_api():
    text = pydoc.render_doc(lstm_gradcheck, renderer=pydoc.plaintext)
    for name in lstm_gradcheck.__all__:
        assert name in dir(lstm_gradcheck)
        assert re.search(rf"\b{re.escape(name)}\b", text), name
    assert "class LSTMConfig" in text and "make_case(" in text and "search(" in text


def test_the_package_ships_its_type_hints_and_a_changelog():
    assert (ROOT / "lstm_gradcheck" / "py.typed").is_file()
    assert re.search(r'package-data\]\s*\nlstm_gradcheck = \["py.typed"\]', (ROOT / "pyproject.toml").read_text())
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert "## [Unreleased]" in changelog and f"## [{lstm_gradcheck.__version__}]" in changelog


def test_variants_writes_nothing_into_the_current_folder(tmp_path):
    cwd = tmp_path / "work"
    cwd.mkdir()
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    proc = subprocess.run(
        [sys.executable, "-m", "lstm_gradcheck", "variants", "--only", "form_tf_ijfo", "--search-only",
         "--max-examples", "5"],
        cwd=cwd, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert list(cwd.iterdir()) == []
