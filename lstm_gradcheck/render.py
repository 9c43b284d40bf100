"""Rendering a :class:`Report`: plain text when piped, rich on a terminal.

On a terminal the table is drawn with rich when it fits the width; below that
width each tensor becomes a block of its own lines, so no number and no part
of a location (``bias_ih_l0[forget gate, unit 0]``) is ever cut. Every text
handed to rich is escaped: brackets are data here, never markup.
"""

from __future__ import annotations

import math
import re
import shutil
import textwrap
from collections.abc import Iterable
from typing import TextIO

from lstm_gradcheck.oracles.finite_difference import FD, RICHARDSON
from lstm_gradcheck.oracles.registry import ORACLES
from lstm_gradcheck.oracles.types import FULL
from lstm_gradcheck.reference.verdicts import FAILED, MISMATCH, NOT_PROVIDED, NOTHING_CHECKED, PASS, SKIPPED, SUPPORTED
from lstm_gradcheck.reference.verdicts import OK as TENSOR_OK
from lstm_gradcheck.report import Report
from lstm_gradcheck.summaries import PREFIX, StepLocalization, TensorSummary

__all__ = ["render_report", "format_float", "plain_table", "wrap_lines", "terminal_width", "COLUMNS"]

COLUMNS = ("tensor", "status", "max abs err", "max rel err", "tolerance", "worst element", "analytic", "oracle")
_STYLES = {MISMATCH: "bold red", TENSOR_OK: "green", NOT_PROVIDED: "yellow"}


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
    elif r.vanishing and t.status == TENSOR_OK:
        status += " (vanishing: judged at the roundoff floor)"
    if t.status == MISMATCH:
        status += _flagged(t, ran)
    wrong = t.status == MISMATCH
    worst = r.worst.describe() if (r.worst is not None and wrong) else "-"
    analytic = format_float(r.analytic_value, True) if wrong else "-"
    oracle = f"{format_float(r.oracle_value, True)} ({r.oracle})" if wrong else "-"
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
    lines = [f"lstm-gradcheck report: implementation {report.implementation}"]
    if report.diagnosis is not None:
        lines.append(f"diagnosis: {report.diagnosis.text}")
    lines.append(f"case: {case.describe()}")
    ran = [
        f"{o.name} ({o.verdict}, {o.forward_passes} forward pass{'' if o.forward_passes == 1 else 'es'}, "
        f"{o.seconds:.3g} s)"
        for o in report.oracles
        if o.verdict != SKIPPED
    ]
    skipped = [f"{o.name} ({o.reason})" for o in report.oracles if o.verdict == SKIPPED]
    if ran:
        startup = report.timings.get("torch_startup")
        tail = f"; torch start-up {startup:.2g} s, not counted in the oracles' times" if startup else ""
        lines.append("oracles: " + "; ".join(ran) + tail)
    if skipped:
        lines.append("skipped: " + "; ".join(skipped))
    lines.extend(_rule_lines(report))
    return lines


def _rule_lines(report: Report) -> list[str]:
    """One ``rule:`` line per distinct rule, labelled with the oracles it applies to when they differ.

    The full-gradient oracles take the floor's scale from their own gradients; the judging ones
    (taylor, directional) have none and take it from the implementation's, so a wrong gradient's
    size moves their floor."""
    groups: dict[str, list[str]] = {}
    for o in report.oracles:
        if o.check is not None:
            groups.setdefault(o.check.tolerance.describe(), []).append(o.name)
    out = []
    for rule, names in groups.items():
        label = "rule" if len(groups) == 1 else f"rule ({', '.join(names)})"
        fd = [n for n in names if n in (FD.name, RICHARDSON.name)]
        tail = f"; the FD oracles ({', '.join(fd)}) add 4x their own per-element error estimate" if fd else ""
        if len(groups) > 1 and all(ORACLES[n].kind != FULL for n in names):
            tail += "; these oracles compute no gradient, so the floor's scale is the implementation's"
        out.append(f"{label}: {rule}{tail}")
    return out


def _footer(report: Report) -> list[str]:
    lines: list[str] = []
    out = report.outcome
    if out.status == FAILED:
        lines.append(f"the implementation failed on this case: {out.error}")
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
    verdict = report.verdict
    if verdict == PASS:
        ran = [o.name for o in report.oracles if o.verdict != SKIPPED]
        missing = [t.name for t in report.tensors if t.status == NOT_PROVIDED]
        tail = f" ({len(missing)} not provided: {', '.join(missing)})" if missing else ""
        lines.append(f"PASS: every provided gradient and the loss agree with {', '.join(ran)}{tail}")
    elif verdict == NOTHING_CHECKED:
        lines.append(f"NOTHING CHECKED: {report.nothing_checked_reason}")
    elif out.status == SUPPORTED:
        bad = [t.name for t in report.sorted_tensors() if t.status == MISMATCH]
        what = f"{len(bad)} tensor(s) mismatch: {', '.join(bad)}" if bad else "the loss mismatches"
        lines.append(f"FAIL: {what}")
    else:
        lines.append("FAIL: the implementation did not return a usable result")
    return lines


def _cell(step: StepLocalization, t: int, e: float) -> str:
    label = f"T'{t + 1}" if step.method == PREFIX else f"t{t}"
    if math.isnan(e):
        return f"{label}=?"
    return f"{label}={'*' if e > step.allowed else ''}{e:.2g}"


def _step_lines(report: Report) -> list[str]:
    """One line per answer, naming its tensors, then each tensor's per-step errors under one legend."""
    groups: dict[str, list[str]] = {}
    for step in report.steps:
        text = step.describe().split(": ", 1)[1]
        groups.setdefault(text, []).append(step.tensor)
    lines = [f"step: {', '.join(tensors)}: {text}" for text, tensors in groups.items()]
    for method in dict.fromkeys(step.method for step in report.steps):
        steps = [s for s in report.steps if s.method == method]
        per = "prefix length T'" if method == PREFIX else "step t"
        what = "max error / allowance" if steps[0].allowed == 1.0 else "max error against the allowance"
        lines.append(f"      {method}: {what} per {per} (* over, ? not measured)")
        width = max(len(s.tensor) for s in steps)
        lines += [
            f"        {s.tensor:<{width}}  " + " ".join(_cell(s, t, e) for t, e in enumerate(s.errors)) for s in steps
        ]
    return lines


def _table_width(rows: list[tuple[str, ...]]) -> int:
    """Columns a rich table of ``rows`` needs: every cell whole, plus its borders and padding."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(COLUMNS)]
    return sum(widths) + 3 * len(widths) + 1


def _block(row: tuple[str, ...]) -> str:
    """One tensor's lines, for terminals narrower than the table."""
    name, status, abs_err, rel_err, allowed, worst, analytic, oracle = row
    lines = [f"{name}  {status}", f"  max abs err {abs_err}  max rel err {rel_err}  tolerance {allowed}"]
    if worst != "-":
        lines.append(f"  worst {worst}")
        lines.append(f"  analytic {analytic}  oracle {oracle}")
    return "\n".join(lines)


_HANG = re.compile(r"^(\s*\S+\s{2,}|\s*)")


def _wrap_line(line: str, width: int) -> list[str]:
    """``line`` cut at spaces into lines of at most ``width`` columns (a word longer than the width
    stands alone, never cut); continuation lines hang under the text after a leading label
    (``step rows``: the first cell) or two columns in."""
    if len(line) <= width:
        return [line]
    indent = line[: len(line) - len(line.lstrip())]
    hang = " " * len(_HANG.match(line).group(1))
    if len(hang) <= len(indent) or len(hang) > width // 2:
        hang = indent + "  "
    wrapper = textwrap.TextWrapper(
        width=width, initial_indent=indent, subsequent_indent=hang, break_long_words=False, break_on_hyphens=False
    )
    return wrapper.wrap(line.strip()) or [line]


def wrap_lines(lines: Iterable[str], width: int | None) -> list[str]:
    """Each line wrapped at ``width`` columns without cutting a word (unchanged for None)."""
    if width is None:
        return list(lines)
    return [part for line in lines for part in _wrap_line(line, width)]


def terminal_width(stream: TextIO) -> int | None:
    """The columns of the terminal ``stream`` writes to, or None when it is not a terminal."""
    try:
        return shutil.get_terminal_size().columns if stream.isatty() else None
    except (AttributeError, ValueError, OSError):
        return None


def render_report(report: Report, stream: TextIO, rich: bool | None = None, width: int | None = None) -> None:
    """Write ``report`` to ``stream``: rich if ``rich`` (default: if it is a terminal), at
    ``width`` columns (default: the terminal's; plain text is then not wrapped). Below the
    table's width each tensor becomes a block of lines, and every line is wrapped at spaces."""
    if rich is None:
        rich = stream.isatty()
    ran = sum(1 for o in report.oracles if o.verdict != SKIPPED)
    summaries = report.sorted_tensors()
    rows = [_row(t, ran) for t in summaries]
    if not rich:
        lines = wrap_lines(_header(report), width)
        if rows and (width is None or len(plain_table(COLUMNS, rows)[0]) <= width):
            lines += ["", *plain_table(COLUMNS, rows), ""]
        elif rows:
            lines += ["", *wrap_lines("\n".join(_block(r) for r in rows).splitlines(), width), ""]
        lines += wrap_lines(_footer(report), width)
        stream.write("\n".join(lines) + "\n")
        return
    from rich.console import Console  # noqa: PLC0415 (rich loads only on a terminal)
    from rich.markup import escape  # noqa: PLC0415
    from rich.table import Table  # noqa: PLC0415

    console = Console(file=stream, width=width, force_terminal=True, highlight=False)
    for line in wrap_lines(_header(report), console.width):
        console.print(escape(line), overflow="fold")
    if rows and _table_width(rows) <= console.width:
        table = Table(*COLUMNS, show_lines=False)
        for column in table.columns:
            column.no_wrap = True
        for t, row in zip(summaries, rows, strict=True):
            table.add_row(*(escape(cell) for cell in row), style=_STYLES[t.status])
        console.print(table)
    elif rows:
        console.print()
        for row, t in zip(rows, summaries, strict=True):
            block = "\n".join(wrap_lines(_block(row).splitlines(), console.width))
            console.print(escape(block), style=_STYLES[t.status], overflow="fold")
        console.print()
    for line in _footer(report):
        style = "bold green" if line.startswith("PASS") else ("bold red" if line.startswith("FAIL") else None)
        if line.startswith("NOTHING"):
            style = "bold yellow"
        console.print(escape("\n".join(_wrap_line(line, console.width))), style=style, overflow="fold")
