"""Renders the README's performance section from the benchmark's JSON.

``python -m lstm_gradcheck.benchmark all > bench.json`` measures;
``python -m lstm_gradcheck.benchmark readme bench.json`` rewrites the part of
README.md between ``<!-- performance:start -->`` and ``<!-- performance:end -->``.
"""

from __future__ import annotations

from pathlib import Path

from lstm_gradcheck.speed import SCALING_PASSES

__all__ = ["render", "update_readme", "START", "END"]

START, END = "<!-- performance:start -->", "<!-- performance:end -->"


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


def render(data: dict) -> str:
    """Markdown tables of every benchmark present in ``data``."""
    lines = [
        START,
        "",
        f"Measured with `{data.get('command', 'python -m lstm_gradcheck.benchmark all')}` "
        f"on {data.get('environment', {}).get('cpus', '?')} cores; ratios are medians measured side by side "
        "in one run (absolute seconds vary with the machine's load, ratios much less).",
        "",
    ]
    ref = data.get("reference")
    if ref:
        lines += [
            "**The reference against torch.nn.LSTM** (forward + backward, B=32, T=100, I=128, H=256, O=8, "
            "cross_entropy at every step; goals for one layer: float64 at most 0.8x torch's time, float32 at most "
            "1.5x). The two take turns in rounds over the rows; each turn is an untimed pass, then the shortest "
            "of three timed passes; the ratio is the median of the pairs', and `reference` and `torch.nn.LSTM` "
            "are the medians of each turn's shortest pass:",
            "",
            "| dtype | layers | reference | torch.nn.LSTM | ratio | pairs' ratios |",
            "|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {r['dtype']} | {r['layers']} | {_ms(r['reference_s'])} | {_ms(r['torch_s'])} | {r['ratio']:.2f} | "
            f"{_range(r.get('pair_ratios'))} |"
            for r in ref
        ]
        lines.append("")
    fd = data.get("fd")
    if fd:
        g = fd["torch_gradcheck"]
        lines += [
            f"**Finite-difference oracles against `torch.autograd.gradcheck(fast_mode=False)`** (B=4, I=16, "
            f"H=32, T=20, O=4; gradcheck over every parameter and x: {_ms(g['seconds'])}, "
            f"{g['forward_passes']} forward passes):",
            "",
            "| method | seconds | forward passes | speed-up | goal | max error / tensor scale |",
            "|---|---|---|---|---|---|",
        ]
        for name, m in fd["methods"].items():
            goal = f"{m['target_speedup']:g}x" if "target_speedup" in m else "-"
            lines.append(
                f"| {name} | {_ms(m['seconds'])} | {m['forward_passes']} | {m['speedup']:.1f}x | {goal} | "
                f"{m['max_error_overall']:.1e} |"
            )
        lines.append("")
    sc = data.get("scaling")
    if sc:
        lines += [
            f"**Scaling** (B=16, I=32, one layer; reference forward + backward, the shortest of {SCALING_PASSES} "
            "passes, and the batched finite-difference forward per perturbed copy):",
            "",
            "| T (H=64) | reference | per step | FD per copy |",
            "|---|---|---|---|",
        ]
        lines += [
            f"| {r['seq_len']} | {_ms(r['reference_s'])} | {r['per_step_us']:.0f} us | "
            f"{_ms(r['fd_per_copy_s']) if 'fd_per_copy_s' in r else '-'} |"
            for r in sc["seq_len"]
        ]
        lines += ["", "| H (T=50) | reference | per step | FD per copy |", "|---|---|---|---|"]
        lines += [
            f"| {r['hidden_size']} | {_ms(r['reference_s'])} | {r['per_step_us']:.0f} us | "
            f"{_ms(r['fd_per_copy_s']) if 'fd_per_copy_s' in r else '-'} |"
            for r in sc["hidden_size"]
        ]
        lines.append("")
    tp = data.get("throughput")
    if tp:
        parts = ", ".join(f"{k} {v:.1f} ms" for k, v in tp["ms_per_check"].items())
        two = tp.get("two_workers")
        side = (
            f" Two worker processes side by side (as `pytest -n 2` runs the suite): {two['checks_per_second']:.0f} "
            f"checks per second ({two['examples']} examples)."
            if two
            else ""
        )
        runs = tp.get("runs")
        fastest = (
            f"the fastest of {len(runs)} runs of {tp['examples']} examples, all runs: "
            + ", ".join(f"{r:.0f}" for r in runs)
            if runs
            else f"{tp['examples']} examples"
        )
        lines += [
            f"**Harness throughput**: {tp['checks_per_second']:.0f} reference-vs-torch checks per second in one "
            f"process on the `ci` strategies' cases ({fastest}; per check: {parts}).{side}",
            "",
        ]
    ci = data.get("ci_times")
    if ci:
        lines += [
            "**CI time per test file** (summed over each file's tests, `HYPOTHESIS_PROFILE=ci`, `-n 2`):",
            "",
            "| file | seconds |",
            "|---|---|",
        ]
        lines += [f"| `{name}` | {seconds:.1f} |" for name, seconds in ci.items()]
        lines.append("")
    lines.append(END)
    return "\n".join(lines)


def update_readme(data: dict, readme: Path) -> None:
    """Replace the README's performance section (between the markers) with :func:`render`."""
    text = readme.read_text()
    if START not in text or END not in text:
        raise ValueError(f"{readme} has no {START} ... {END} section")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    readme.write_text(head + render(data) + tail)


def _range(values: list[float] | None) -> str:
    return "-" if not values else f"{min(values):.2f} to {max(values):.2f}"
