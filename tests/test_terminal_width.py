"""At 80 columns nothing is cut mid-word: the report (rich and plain), its step rows, the search
summary, the reproduce line and the variants summary; and one labelled ``rule:`` line per rule.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lstm_gradcheck.cli import main
from lstm_gradcheck.implementation import reference_implementation
from lstm_gradcheck.isolation import load_implementation
from lstm_gradcheck.reference import LSTMConfig, make_case
from lstm_gradcheck.reference.variants import VARIANTS
from lstm_gradcheck.render import _footer, _header, render_report, wrap_lines
from lstm_gradcheck.report import build_report

ROOT = Path(__file__).resolve().parents[1]
IMPLS = ROOT / "examples" / "impls"
WIDTH = 80
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class Terminal(io.StringIO):
    """A stream that says it is a terminal (its width comes from $COLUMNS, as a real one's would)."""

    def isatty(self) -> bool:
        return True


def _words(text: str) -> str:
    return " ".join(text.split())


def _assert_fits_and_keeps(out: str, logical: list[str]) -> None:
    """Every line within WIDTH, and each logical line's words, in order, somewhere in ``out``."""
    lines = ANSI.sub("", out).splitlines()
    assert max(len(line) for line in lines) <= WIDTH, max(lines, key=len)
    flowing = f" {_words(ANSI.sub('', out))} "
    for line in logical:
        assert f" {_words(line)} " in flowing, line


@given(st.lists(st.text(alphabet="ab-=*.() ", min_size=0, max_size=200), max_size=5), st.integers(20, 120))
def test_wrapping_cuts_only_at_spaces(lines, width):
    wrapped = wrap_lines(lines, width)
    assert _words(" ".join(wrapped)) == _words(" ".join(lines))
    for part in wrapped:
        assert len(part) <= width or " " not in part.strip()  # only a word longer than the width stands out


@pytest.fixture(scope="module")
def failing_report():
    impl = load_implementation(f"{IMPLS / 'slip_cell_gate_tanh_prime.py'}:grads")
    return build_report(make_case(LSTMConfig(seq_len=9), seed=0), impl, ["torch", "taylor", "directional"])


@pytest.mark.parametrize("rich", [True, False])
def test_the_report_fits_80_columns_word_for_word(failing_report, rich):
    stream = io.StringIO()
    render_report(failing_report, stream, rich=rich, width=WIDTH)
    assert failing_report.steps and failing_report.diagnosis is not None
    _assert_fits_and_keeps(stream.getvalue(), _header(failing_report) + _footer(failing_report))


def test_the_rule_lines_say_which_oracles_they_apply_to(failing_report):
    rules = [line for line in _header(failing_report) if line.startswith("rule")]
    # The judging oracles' floor comes from the implementation's (wrong, larger) gradients.
    assert [r.split(":", 1)[0] for r in rules] == ["rule (torch)", "rule (taylor, directional)"]
    assert "the floor's scale is the implementation's" in rules[1]
    single = build_report(make_case(LSTMConfig(num_layers=1), seed=1), reference_implementation(), ["torch", "fd"])
    (rule,) = [line for line in _header(single) if line.startswith("rule")]
    assert rule.startswith("rule: |a - o| <=") and "the FD oracles (fd) add 4x" in rule


def _run_on_terminal(monkeypatch, *argv: str) -> tuple[int, str]:
    monkeypatch.setenv("COLUMNS", str(WIDTH))
    terminal = Terminal()
    monkeypatch.setattr("sys.stdout", terminal)
    code = main(list(argv))
    return code, terminal.getvalue()


def test_the_search_summary_and_reproduce_line_fit_80_columns(monkeypatch):
    adapter = f"{ROOT / 'examples' / 'cs231n_style' / 'adapter.py'}:grads"
    code, out = _run_on_terminal(monkeypatch, "search", "--impl", adapter, "--max-examples", "5")
    assert code == 0 and "searched only what it supports" in out
    _assert_fits_and_keeps(out, [out.replace("\n", " ")])
    code, out = _run_on_terminal(monkeypatch, "search", "--impl", f"{IMPLS / 'bug_truncated_bptt_k4.py'}:grads")
    assert code == 1
    plain = ANSI.sub("", out)
    assert "\nreproduce: lstm-gradcheck report --impl" in plain and " \\\n    --" in plain  # runnable when pasted
    _assert_fits_and_keeps(out, [line for line in plain.splitlines() if line.startswith(("found", "diagnosis"))][:1])


def test_the_variants_table_and_summary_fit_80_columns(monkeypatch, capsys):
    names = ["seed000_zero_dc_at_last_step", "form_tf_ijfo"]
    only = [arg for name in names for arg in ("--only", name)]
    assert main(["variants", *only]) == 0
    summary = capsys.readouterr().out.split("\n\n", 1)[1].splitlines()  # the lines after the table
    code, out = _run_on_terminal(monkeypatch, "variants", *only)
    assert code == 0
    _assert_fits_and_keeps(out, [*summary, *(VARIANTS[name].source for name in names)])
