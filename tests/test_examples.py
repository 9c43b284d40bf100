"""The worked adapters of examples/: each passes a search, and a planted bug in each is found,
shrunk to its minimal case and located; two of them with same-named modules run side by side.

The libraries are written as their users write them (course assignments, a fused-matrix gist, a
per-gate layer library), each with a short adapter (examples/*/adapter.py) that only lays the
case out. A planted bug is a realistic one-line slip, applied to a copy of the library.
"""

from __future__ import annotations

import math
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from lstm_gradcheck import search
from lstm_gradcheck.isolation import load_implementation
from lstm_gradcheck.report import build_report
from lstm_gradcheck.summaries import PREFIX, SUFFIX

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
FOLDERS = ("cs231n_style", "dlcourse_style", "karpathy_style", "pergate_library")
LSTM_PARAMS = {"weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"}


@dataclass(frozen=True)
class Planted:
    """One slip: ``old`` replaced by ``new`` in ``file``; the minimal case's config fields that
    differ from the simplest case, the tensors and gates it is wrong in, and how it is located."""

    folder: str
    file: str
    old: str
    new: str
    minimal: dict
    tensors: frozenset[str]
    gates: frozenset[str]
    method: str
    where: int


PLANTED = (
    Planted(  # the recurrent term dropped: the most common slip of the assignment
        "cs231n_style", "rnn_layers.py",
        "lstm_step_backward(dh[:, t, :] + dprev_h, dprev_c, cache[t])",
        "lstm_step_backward(dh[:, t, :], dprev_c, cache[t])",
        {"seq_len": 2, "c0": "zero"}, frozenset({*LSTM_PARAMS, "x", "h0"}), frozenset("ifgo"), PREFIX, 2,
    ),
    Planted(  # the forget gate's delta with c_t instead of c_{t-1}: wrong even at c0 = 0
        "dlcourse_style", "lstm_network.py",
        '"f": dc * c_prev * ft * (1 - ft),', '"f": dc * c_next * ft * (1 - ft),',
        {"seq_len": 1, "c0": "zero"}, frozenset({*LSTM_PARAMS, "x", "h0"}), frozenset("f"), SUFFIX, 0,
    ),
    Planted(  # tanh'(c) written 1 - tanh(c)
        "karpathy_style", "lstm.py",
        "dC[t] += (1 - Ct[t] ** 2) * (o * dHout[t])", "dC[t] += (1 - Ct[t]) * (o * dHout[t])",
        {"seq_len": 1}, frozenset({*LSTM_PARAMS, "x", "h0", "c0"}), frozenset("ifg"), SUFFIX, 0,
    ),
    Planted(  # each gate's bias gradient averaged over the batch instead of summed
        "pergate_library", "minilstm.py",
        'self.gradients["b" + k] += dpre[k].sum(axis=0, keepdims=True)',
        'self.gradients["b" + k] += dpre[k].mean(axis=0, keepdims=True)',
        {"batch_size": 2, "h0": "zero", "c0": "zero"}, frozenset({"bias_ih_l0", "bias_hh_l0"}), frozenset("ifgo"),
        SUFFIX, 0,
    ),
)  # fmt: skip

SIMPLEST = {"num_layers": 1, "seq_len": 1, "batch_size": 1, "hidden_size": 1, "input_size": 1, "forget_bias": 0.0}


def planted_copy(tmp_path: Path, bug: Planted) -> Path:
    """A copy of the example folder with the slip applied; returns the adapter's path."""
    folder = tmp_path / bug.folder
    shutil.copytree(EXAMPLES / bug.folder, folder)
    library = folder / bug.file
    text = library.read_text()
    assert text.count(bug.old) == 1, f"{bug.file}: the planted line is not there exactly once"
    library.write_text(text.replace(bug.old, bug.new))
    return folder / "adapter.py"


def test_each_adapter_is_under_40_lines_and_imports_only_the_public_api():
    for folder in FOLDERS:
        text = (EXAMPLES / folder / "adapter.py").read_text()
        assert len(text.splitlines()) < 40, folder
        project = [line for line in text.splitlines() if "lstm_gradcheck" in line and "import" in line]
        assert project == ["from lstm_gradcheck import Layout, head"], (folder, project)


@pytest.mark.parametrize("folder", FOLDERS)
def test_the_correct_library_passes_a_search(folder):
    result = search(f"{EXAMPLES / folder / 'adapter.py'}:grads")
    assert result.verdict == "pass", result.why
    assert result.judged == result.examples  # probing narrowed the space to what it supports


@pytest.mark.parametrize("bug", PLANTED, ids=lambda b: b.folder)
def test_a_planted_bug_is_found_shrunk_and_located(tmp_path, bug):
    impl = load_implementation(f"{planted_copy(tmp_path, bug)}:grads")
    result = search(impl)
    assert result.found, f"{bug.folder}: not found in {result.examples} examples"
    config = result.case.config
    expected = {**SIMPLEST, **bug.minimal}
    assert {k: getattr(config, k) for k in expected} == expected, result.case.describe()
    assert result.case.lengths is None and not config.final_state
    report = build_report(result.case, impl, ["torch"])
    wrong = {t.name: t for t in report.tensors if t.status == "mismatch"}
    assert set(wrong) == bug.tensors, sorted(wrong)
    gates = {t.record.worst.gate for t in wrong.values() if t.name in LSTM_PARAMS}
    assert gates <= bug.gates and gates, gates
    located = [s for s in report.steps if s.method == bug.method and s.located]
    assert located, [s.describe() for s in report.steps]
    for step in located:
        assert (step.first_wrong_prefix if bug.method == PREFIX else step.entry_step) == bug.where, step.describe()
    # Where the suffix runs could not be measured, no entry step is named.
    for step in report.steps:
        if step.method == SUFFIX and any(math.isnan(e) for e in step.errors):
            assert step.entry_step is None and step.unknown, step.describe()


def test_two_implementations_with_same_named_modules_each_run_their_own(tmp_path):
    bug = PLANTED[0]
    right = load_implementation(f"{EXAMPLES / bug.folder / 'adapter.py'}:grads")
    wrong = load_implementation(f"{planted_copy(tmp_path, bug)}:grads")
    again = load_implementation(f"{EXAMPLES / bug.folder / 'adapter.py'}:grads")
    from lstm_gradcheck.reference import LSTMConfig, make_case  # noqa: PLC0415

    case = make_case(LSTMConfig(num_layers=1, seq_len=3, final_state=False, c0="zero"), seed=2)
    verdicts = [build_report(case, impl, ["torch"], localize=False).verdict for impl in (right, wrong, again, right)]
    assert verdicts == ["pass", "fail", "pass", "pass"]
    assert "rnn_layers" not in sys.modules  # each namespace keeps its own, none leaks out


def test_the_pytest_plugin_runs_two_same_named_adapters_each_its_own(tmp_path):
    bug = PLANTED[0]
    wrong = planted_copy(tmp_path, bug)
    proc = subprocess.run(
        [
            sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(tmp_path),
            "--lstm-impl", f"{EXAMPLES / bug.folder / 'adapter.py'}:grads", "--lstm-impl", f"{wrong}:grads",
            "--lstm-max-examples", "40",
        ],
        cwd=tmp_path, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "1 failed, 1 passed" in proc.stdout, proc.stdout
    assert f"FAILED lstm-gradcheck::search[{wrong}:grads]" in proc.stdout, proc.stdout
