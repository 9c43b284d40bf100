"""The README's Python examples run as written, each alone in a fresh process, and its listing of
an adapter is that file, character for character."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BLOCKS = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
ADAPTERS = {p: p.read_text() for p in sorted((ROOT / "examples").glob("*/adapter.py"))}


def test_the_readme_has_its_examples():
    assert len(BLOCKS) >= 3
    assert any(block in ADAPTERS.values() for block in BLOCKS)


@pytest.mark.parametrize("block", BLOCKS, ids=lambda b: b.splitlines()[0][:40])
def test_each_python_example_runs_alone(block, tmp_path):
    listed = [path for path, text in ADAPTERS.items() if text == block]
    if listed:  # a file shown whole: it is that file, and it imports where it lives
        command, cwd = [sys.executable, "-c", block], listed[0].parent
    elif "def test_" in block:  # a test file: run it as pytest would, with nothing else around
        (tmp_path / "test_example.py").write_text(block)
        command, cwd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_example.py"], tmp_path
    else:
        command, cwd = [sys.executable, "-c", block], tmp_path
    proc = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr


#: The README's examples also run against code that supports little: one layer, c0 = 0, no lengths.
RESTRICTED = f'"{ROOT / "examples" / "cs231n_style" / "adapter.py"}:grads"'


@pytest.mark.parametrize("block", [b for b in BLOCKS if "MY_GRADS = " in b], ids=lambda b: b.splitlines()[0][:40])
def test_each_test_recipe_runs_against_restricted_code(block, tmp_path):
    restricted = re.sub(r'MY_GRADS = "[^"]*"', f"MY_GRADS = {RESTRICTED}", block)
    assert restricted != block
    (tmp_path / "test_example.py").write_text(restricted)
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_example.py"]
    proc = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, check=False, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "passed" in proc.stdout and "FailedHealthCheck" not in proc.stdout


def test_the_adapter_sizes_it_claims_are_the_files_sizes():
    claim = re.search(r"with their adapters \((\d+) to (\d+) lines each", (ROOT / "README.md").read_text())
    assert claim, "the README no longer states the adapters' sizes; keep this test in step with it"
    sizes = sorted(len(text.splitlines()) for text in ADAPTERS.values())
    assert (int(claim[1]), int(claim[2])) == (sizes[0], sizes[-1]), sizes
