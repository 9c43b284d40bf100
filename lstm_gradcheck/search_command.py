"""``lstm-gradcheck search``: run the search, show its progress, print its verdict.

A found case is reported in full (the report of :mod:`lstm_gradcheck.report`)
with a ready-to-run ``reproduce:`` command line. A search that judged nothing
ends "nothing checked" (exit 2) with the implementation's own refusals; one
that judged fewer than a tenth of its examples says so loudly.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys

from hypothesis.configuration import set_hypothesis_home_dir

from lstm_gradcheck import streams
from lstm_gradcheck.coverage import parse_require
from lstm_gradcheck.implementation import Implementation
from lstm_gradcheck.isolation import isolation_note
from lstm_gradcheck.json_output import write_json
from lstm_gradcheck.properties.strategies import CaseSpace
from lstm_gradcheck.reference.verdicts import FAIL, INTERRUPTED
from lstm_gradcheck.render import render_report, terminal_width, wrap_lines
from lstm_gradcheck.report import build_report, case_json
from lstm_gradcheck.searching import (
    FEW_JUDGED,
    NOTHING_CHECKED,
    PROFILES,
    SearchProgress,
    SearchResult,
    report_command,
    search,
    terminal_progress,
)

__all__ = ["run_search_command", "few_judged_warning"]


def few_judged_warning(result: SearchResult) -> str | None:
    """The loud line of a pass that rests on few judged examples (None if it rests on enough)."""
    if not result.few_judged:
        return None
    share = result.judged / result.examples if result.examples else 0.0
    return (
        f"WARNING: only {result.judged} of {result.examples} examples ({share:.0%}, under {FEW_JUDGED:.0%}) were "
        f"judged; {result.unsupported} were refused. This pass rests on {result.judged} case(s)"
        + (f"; the implementation said: {' | '.join(result.refusals)}" if result.refusals else "")
    )


def _summary(result: SearchResult, max_examples: int) -> dict[str, object]:
    out: dict[str, object] = {
        "verdict": result.verdict,
        "found": result.found,
        "examples": result.examples,
        "judged": result.judged,
        "unsupported": result.unsupported,
        "seconds": result.seconds,
        "seed": result.seed,
        "max_examples": max_examples,
        "space": result.bounds,
        "supported": list(result.space_notes),
        "refusals": list(result.refusals),
        "isolation": result.isolation,
        "tensors": result.coverage.as_json(),
        "not_provided": result.coverage.never_provided(),
        "require": result.require.describe(),
    }
    warning = few_judged_warning(result)
    if warning is not None:
        out["warning"] = warning
    if result.verdict == NOTHING_CHECKED:
        out["why"] = result.nothing_checked_message()
    return out


def _hypothesis_home_outside_cwd() -> None:
    """Hypothesis keeps a cache in ./.hypothesis by default; a command must not litter the user's folder."""
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    set_hypothesis_home_dir(os.path.join(cache, "lstm-gradcheck", "hypothesis"))


def search_space(args: argparse.Namespace) -> tuple[CaseSpace, int]:
    """The space and example count of ``--profile``, with the command line's bounds."""
    profile = PROFILES[args.profile]
    space = profile.space.with_bounds(
        max_hidden=args.max_hidden,
        max_input=args.max_input,
        max_seq_len=args.max_seq_len,
        max_batch=args.max_batch,
        max_layers=args.max_layers,
        max_output=args.max_output,
        forget_bias_range=args.forget_bias_range,
    )
    return space, args.max_examples or profile.max_examples


def _passing_lines(result: SearchResult, summary: dict[str, object]) -> list[str]:
    """What a search that found nothing says under its first line: where it looked, what it judged."""
    lines = [f"space: {result.bounds}"]
    if result.space_notes:
        lines.append(f"searched only what it supports: {'; '.join(result.space_notes)}")
    if result.coverage.answered:
        lines.append(result.coverage.line())
    missing = result.coverage.never_provided()
    if missing:
        lines.append(f"not provided on any example (so never checked): {', '.join(missing)}")
    note = isolation_note(result.isolation)
    if note:
        lines.append(f"WARNING: {note}")
    if summary.get("warning"):
        lines.append(str(summary["warning"]))
    return lines


def _say(text: str) -> None:
    """Write ``text`` to stdout, each line wrapped at the terminal's width (never mid-word) on a terminal."""
    width = terminal_width(sys.stdout)
    lines = text.split("\n")
    sys.stdout.write("\n".join(wrap_lines(lines, width)))


def command_lines(label: str, command: str, width: int | None) -> str:
    """``label command`` as one line, or on a terminal narrower than it, as shell lines continued
    with backslashes (still runnable when pasted), cut only between arguments."""
    line = f"{label} {command}"
    if width is None or len(line) <= width:
        return line
    lines, current = [], label
    for token in (shlex.quote(t) for t in shlex.split(command)):
        if len(current) + 1 + len(token) + 2 > width and current.strip():
            lines.append(current + " \\")
            current = "   "
        current += " " + token
    return "\n".join([*lines, current])


def run_search_command(args: argparse.Namespace, impl: Implementation) -> int:
    _hypothesis_home_outside_cwd()
    progress = SearchProgress()
    space, max_examples = search_space(args)
    require = parse_require(args.require)
    try:
        result = search(
            impl,
            max_examples=max_examples,
            seed=args.seed,
            oracles=tuple(args.oracle or ("torch",)),
            space=space,
            progress=progress,
            on_progress=terminal_progress(sys.stderr),
            require=require,
        )
    except KeyboardInterrupt:
        return _interrupted(args, progress)
    if streams.is_terminal(sys.stderr):
        streams.write(sys.stderr, "\r" + progress.line() + "\n")
    summary = _summary(result, max_examples)
    narrowed = f"; searched only what it supports ({'; '.join(result.space_notes)})" if result.space_notes else ""
    counts = f"{result.examples} examples ({result.judged} judged, {result.unsupported} unsupported)"
    if not result.found:
        if args.json:
            write_json({**summary, "case": None, "gradients": [], "oracles": [], "timings": {}}, sys.stdout)
        elif result.verdict == NOTHING_CHECKED:
            _say(f"nothing checked in {counts} in {result.seconds:.1f} s (seed {result.seed})\n")
            _say("".join(f"{line}\n" for line in _passing_lines(result, summary)))
        else:
            _say(f"no failing case in {counts} in {result.seconds:.1f} s (seed {result.seed})\n")
            _say("".join(f"{line}\n" for line in _passing_lines(result, summary)))
        if result.verdict == NOTHING_CHECKED:
            streams.write(sys.stderr, f"lstm-gradcheck: nothing checked: {result.nothing_checked_message()}\n")
            return 2
        return 0
    report = build_report(result.case, impl)
    command = report_command(result.case, args.impl)
    if args.json:
        data = report.as_json()
        data.update(summary)
        data["why"] = result.why
        data["command"] = command
        write_json(data, sys.stdout)
    else:
        _say(
            f"found a failing case after {counts} in {result.seconds:.1f} s (seed {result.seed}){narrowed}; "
            + (
                "shrunk to the minimal case below.\n\n"
                if result.shrunk
                else f"shrinking stopped after {result.timeouts} calls hung: the smallest failing case so far "
                "is below.\n\n"
            )
        )
        render_report(report, sys.stdout)
        sys.stdout.write(f"\n{command_lines('reproduce:', command, terminal_width(sys.stdout))}\n")
    return 1


def _interrupted(args: argparse.Namespace, progress: SearchProgress) -> int:
    """Ctrl-C during a search: the smallest failing case so far (or none), exit 130."""
    case = progress.smallest
    command = report_command(case, args.impl) if case is not None else None
    if args.json:
        write_json(
            {
                "verdict": FAIL if case is not None else INTERRUPTED,
                "interrupted": True,
                "found": case is not None,
                "examples": progress.examples,
                "judged": progress.judged,
                "unsupported": progress.unsupported,
                "case": case_json(case) if case is not None else None,
                "why": progress.smallest_why,
                "command": command,
            },
            sys.stdout,
        )
    else:
        sys.stdout.write(
            f"\ninterrupted after {progress.examples} examples ({progress.judged} judged, "
            f"{progress.unsupported} unsupported)\n"
        )
        if case is None:
            sys.stdout.write("no failing case found so far\n")
        else:
            sys.stdout.write(f"smallest failing case so far (not fully shrunk):\n  {case.describe()}\n")
            sys.stdout.write(f"  {progress.smallest_why.splitlines()[0]}\nreproduce: {command}\n")
    sys.stdout.flush()
    return 130
