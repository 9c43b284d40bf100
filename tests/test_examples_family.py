"""The worked adapters of the LSTM family: a peephole library (its own gate letters, rows form,
peepholes in arrays of its own) and a bidirectional one (one flat vector in cuDNN's order, gates
interleaved per unit as Chainer's). Each adapter passes a search; a slip planted in each library is
found, shrunk to a small case and located in the right tensor, gate and direction."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

import lstm_gradcheck
from lstm_gradcheck import search
from lstm_gradcheck.isolation import load_implementation
from lstm_gradcheck.report import build_report
from lstm_gradcheck.summaries import REVERSE_SUFFIX, SUFFIX
from tests.test_examples import SIMPLEST, planted_copy

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
FAMILY_FOLDERS = {"peephole_library": "peeplstm.py", "bidirectional_library": "bilstm.py"}
#: What an adapter may take from lstm_gradcheck: the layout helpers and the head.
ADAPTER_API = {"Layout", "head", "flat_params", "flat_grads", "sort_by_length", "unsort", "pack", "unpack"}


@dataclass(frozen=True)
class Slip:
    """``old`` replaced by ``new`` in ``file`` of ``folder``; the minimal case's fields beyond the
    simplest case's; the tensors wrong, their gates and direction; how the step is located."""

    folder: str
    file: str
    old: str
    new: str
    minimal: dict
    tensors: frozenset[str]
    gates: frozenset[str]
    direction: int
    method: str
    where: int


SLIPS = (
    Slip(  # the input gate's peephole gradient taken against c_t, not the c_{t-1} it multiplies
        "peephole_library", "peeplstm.py",
        'g["p_i"] += (da_i * c_prev).sum(axis=0)', 'g["p_i"] += (da_i * c).sum(axis=0)',
        {"peepholes": True, "seq_len": 1}, frozenset({"weight_ci_l0"}), frozenset("i"), 0, SUFFIX, 0,
    ),
    Slip(  # the backward direction's previous state read one step off (t - 1 instead of t + 1)
        "bidirectional_library", "bilstm.py",
        "h_prev = H[t + 1] if reverse else H[t]", "h_prev = H[t - 1] if reverse else H[t]",
        {"bidirectional": True, "seq_len": 2}, frozenset({"weight_hh_l0_reverse"}), frozenset("ifgo"), 1,
        REVERSE_SUFFIX, 1,
    ),
)  # fmt: skip


@pytest.mark.parametrize("folder", FAMILY_FOLDERS)
def test_each_adapter_is_short_and_uses_only_the_layout_helpers_and_the_head(folder):
    text = (EXAMPLES / folder / "adapter.py").read_text()
    assert len(text.splitlines()) < 40
    taken = {
        alias.name
        for node in ast.walk(ast.parse(text))
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("lstm_gradcheck")
        for alias in node.names
    }
    assert taken and taken <= ADAPTER_API <= set(lstm_gradcheck.__all__), taken
    assert "import lstm_gradcheck" not in text.replace("from lstm_gradcheck import", "")
    # The library computes its own forward and backward: it knows nothing of the harness.
    assert "lstm_gradcheck" not in (EXAMPLES / folder / FAMILY_FOLDERS[folder]).read_text()


@pytest.mark.parametrize(("folder", "family"), [("peephole_library", "weight_ci_l0"), ("bidirectional_library",
                                                "weight_hh_l0_reverse")])  # fmt: skip
def test_the_correct_library_passes_a_search_that_judged_its_setting(folder, family):
    result = search(f"{EXAMPLES / folder / 'adapter.py'}:grads")
    assert result.verdict == "pass", result.why
    assert result.judged == result.examples
    assert result.coverage.judged[family] > 0, result.coverage.line()


@pytest.mark.parametrize("slip", SLIPS, ids=lambda s: s.folder)
def test_a_planted_slip_is_found_shrunk_and_located(tmp_path, slip):
    impl = load_implementation(f"{planted_copy(tmp_path, slip)}:grads")
    result = search(impl)
    assert result.found, f"{slip.folder}: not found in {result.examples} examples"
    config = result.case.config
    expected = {**SIMPLEST, **slip.minimal}
    assert {k: getattr(config, k) for k in expected} == expected, result.case.describe()
    report = build_report(result.case, impl, ["torch"])
    wrong = {t.name: t.record.worst for t in report.tensors if t.status == "mismatch"}
    assert set(wrong) == slip.tensors, sorted(wrong)
    assert {w.gate for w in wrong.values()} <= slip.gates
    assert {w.direction for w in wrong.values()} == {slip.direction}
    located = [s for s in report.steps if s.method == slip.method and s.located]
    assert located and all(s.entry_step == slip.where for s in located), [s.describe() for s in report.steps]
