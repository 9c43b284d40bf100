"""Rendering a :class:`Report`: a rich table on a terminal, plain text when piped."""

from __future__ import annotations

import math
from typing import TextIO

from lstm_gradcheck.report import Report, TensorSummary

__all__ = ["render_report", "format_float", "plain_table"]

COLUMNS = ("tensor", "status", "max abs err", "max rel err", "tolerance", "worst element", "analytic", "oracle")


def format_float(value: float | None, signed: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:+.6g}" if signed else f"{value:.3g}"


def _flagged(t: TensorSummary, ran: int) -> str:
    if len(t.flagged_by) == ran and ran > 1:
        return f" (all {ran} oracles)"
    return f" [{', '.join(t.flagged_by)}]"


def _row(t: TensorSummary, ran: int) -> tuple[str, ...]:
    r = t.record
    if r is None:
        return (t.name, t.status, "-", "-", "-", "-", "-", "-")
    status = t.status
    if r.ill_conditioned:
        status += " (ill-conditioned)"
    elif r.vanishing and t.status == "ok":
        status += " (vanishing: judged at the roundoff floor)"
    if t.status == "mismatch":
        status += _flagged(t, ran)
    worst = r.worst.describe() if (r.worst is not None and t.status == "mismatch") else "-"
    analytic = format_float(r.analytic_value, True) if t.status == "mismatch" else "-"
    oracle = f"{format_float(r.oracle_value, True)} ({r.oracle})" if t.status == "mismatch" else "-"
    return (
        t.name,
        status,
        format_float(r.max_abs_err),
        format_float(r.max_rel_err),
        format_float(r.allowed),
        worst,
        analytic,
        oracle,
    )


def plain_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    lines = [fmt.format(*header), fmt.format(*("-" * w for w in widths))]
    lines.extend(fmt.format(*r) for r in rows)
    return [line.rstrip() for line in lines]


def _header(report: Report) -> list[str]:
    case = report.case
    lengths = "none" if case.lengths is None else ",".join(str(int(v)) for v in case.lengths)
    fields = " ".join(f"{k}={v}" for k, v in case.config.as_dict().items())
    lines = [
        f"lstm-gradcheck report: implementation {report.implementation}",
        f"case: {fields} lengths={lengths} seed={case.seed} weight_scale={case.weight_scale}",
    ]
    ran = [
        f"{o.name} ({o.verdict}, {o.forward_passes} forward pass{'' if o.forward_passes == 1 else 'es'}, "
        f"{o.seconds:.3g} s)"
        for o in report.oracles
        if o.verdict != "skipped"
    ]
    skipped = [f"{o.name} ({o.reason})" for o in report.oracles if o.verdict == "skipped"]
    if ran:
        lines.append("oracles: " + "; ".join(ran))
    if skipped:
        lines.append("skipped: " + "; ".join(skipped))
    rules = {o.check.tolerance.describe() for o in report.oracles if o.check is not None}
    for rule in sorted(rules):
        lines.append(f"rule: {rule}; FD oracles add 4x their own per-element error estimate")
    return lines


def _footer(report: Report) -> list[str]:
    lines: list[str] = []
    out = report.outcome
    if out.status == "failed":
        lines.append(f"the implementation failed on this case: {out.error}")
    elif out.status == "unsupported":
        lines.append(f"the implementation does not support this case: {out.error}")
    for o in report.oracles:
        if o.check is not None and o.check.loss is not None:
            loss = o.check.loss
            lines.append(
                f"loss: implementation {loss.analytic!r}, {o.name} {loss.oracle_value!r} "
                f"({loss.status}, abs err {loss.abs_err:.3g}, allowed {loss.allowed:.3g})"
            )
            break
    for o in report.oracles:
        if o.details and o.name in ("taylor", "directional"):
            lines.append(f"{o.name}: {o.details.get('summary', '')}")
    lines.extend(_step_lines(report))
    lines.extend(f"note: {n}" for n in report.notes)
    if report.verdict == "pass":
        ran = [o.name for o in report.oracles if o.verdict != "skipped"]
        missing = [t.name for t in report.tensors if t.status == "not provided"]
        tail = f" ({len(missing)} not provided: {', '.join(missing)})" if missing else ""
        lines.append(f"PASS: every provided gradient and the loss agree with {', '.join(ran)}{tail}")
    elif out.status == "ok":
        bad = [t.name for t in report.sorted_tensors() if t.status == "mismatch"]
        what = f"{len(bad)} tensor(s) mismatch: {', '.join(bad)}" if bad else "the loss mismatches"
        lines.append(f"FAIL: {what}")
    else:
        lines.append("FAIL: the implementation did not return a usable result")
    return lines


def _step_lines(report: Report) -> list[str]:
    """One line per (method, entry step), naming its tensors, then each tensor's per-step errors."""
    groups: dict[tuple[str, int | None], list[str]] = {}
    for step in report.steps:
        groups.setdefault((step.method, step.entry_step), []).append(step.tensor)
    lines = []
    for (method, entry), tensors in groups.items():
        first = next(s for s in report.steps if s.method == method and s.entry_step == entry)
        text = first.describe().split(": ", 1)[1]
        lines.append(f"step: {', '.join(tensors)}: {text}")
    for step in report.steps:
        cells = " ".join(f"t{t}={'*' if e > step.allowed else ''}{e:.2g}" for t, e in enumerate(step.errors))
        what = f"max error (allowed {step.allowed:.2g})" if step.method != "suffix" else "max error / allowance"
        lines.append(f"      {step.tensor} per step, {what}, * = over: {cells}")
    return lines


def render_report(report: Report, stream: TextIO, rich: bool | None = None) -> None:
    """Write ``report`` to ``stream``: rich if ``rich`` (default: if it is a terminal)."""
    if rich is None:
        rich = stream.isatty()
    ran = sum(1 for o in report.oracles if o.verdict != "skipped")
    rows = [_row(t, ran) for t in report.sorted_tensors()]
    if not rich:
        lines = _header(report)
        if rows:
            lines += ["", *plain_table(COLUMNS, rows), ""]
        lines += _footer(report)
        stream.write("\n".join(lines) + "\n")
        return
    from rich.console import Console  # noqa: PLC0415
    from rich.table import Table  # noqa: PLC0415

    console = Console(file=stream)
    for line in _header(report):
        console.print(line, highlight=False)
    if rows:
        table = Table(*COLUMNS, show_lines=False)
        for t, row in zip(report.sorted_tensors(), rows, strict=True):
            style = {"mismatch": "bold red", "ok": "green", "not provided": "yellow"}[t.status]
            table.add_row(*row, style=style)
        console.print(table)
    for line in _footer(report):
        style = "bold green" if line.startswith("PASS") else ("bold red" if line.startswith("FAIL") else None)
        console.print(line, style=style, highlight=False)
