"""The speed benchmark's parts run and report what the README quotes (no timing is asserted)."""

from __future__ import annotations

import pytest

from bench import speed
from bench.results import render
from lstm_gradcheck.reference.config import LSTMConfig

SMALL = LSTMConfig(input_size=3, hidden_size=4, num_layers=1, output_size=2, seq_len=3, batch_size=2,
                   forget_bias=0.0, final_state=False)  # fmt: skip


def test_reference_and_torch_take_turns_and_the_ratio_is_the_median_of_the_pairs(monkeypatch):
    monkeypatch.setattr(speed, "PERF_CONFIG", SMALL)
    (row,) = speed.reference_vs_torch(repeats=3, layers=(1,), dtypes=("float64",))
    assert len(row["pair_ratios"]) == 3
    assert row["ratio"] == pytest.approx(sorted(row["pair_ratios"])[1], abs=1e-3)
    assert row["reference_s"] > 0 and row["torch_s"] > 0


def test_throughput_counts_checks_in_one_process_and_in_two():
    one = speed.throughput(examples=3, seed=1)
    assert one["examples"] == 3 and one["checks_per_second"] > 0
    parts = one["ms_per_check"]
    assert set(parts) == {"reference", "torch", "conditioning", "compare", "generation"}
    assert min(parts.values()) >= 0
    assert sum(parts.values()) == pytest.approx(1e3 * one["seconds"] / 3)
    two = speed.parallel_throughput(examples=2, workers=2)
    assert two["workers"] == 2 and two["examples"] == 4
    assert two["checks_per_second"] == pytest.approx(4 / two["seconds"])


def test_fastest_throughput_reports_the_fastest_run_and_every_run(monkeypatch):
    rates = iter([70.0, 95.0, 81.0])
    monkeypatch.setattr(speed, "throughput", lambda examples: {"examples": examples, "checks_per_second": next(rates)})
    result = speed.fastest_throughput(runs=3, examples=5)
    assert result == {"examples": 5, "checks_per_second": 95.0, "runs": [70.0, 95.0, 81.0]}


def test_the_readme_section_quotes_both_throughputs():
    data = {
        "throughput": {
            "examples": 200,
            "checks_per_second": 80.0,
            "runs": [72.4, 80.0, 77.0],
            "ms_per_check": {"reference": 1.0},
            "two_workers": {"workers": 2, "examples": 400, "seconds": 3.0, "checks_per_second": 133.3},
        }
    }
    text = render(data)
    assert "80 reference-vs-torch checks per second in one process" in text
    assert "the fastest of 3 runs of 200 examples, all runs: 72, 80, 77" in text
    assert "Two worker processes side by side" in text and "133 checks per second (400 examples)" in text
