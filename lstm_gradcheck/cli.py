"""The ``lstm-gradcheck`` command line (see ``lstm-gradcheck --help`` for the exit statuses).

Every outcome has one verdict and one exit status; with ``--json`` every
outcome, a usage error or an internal error included, prints exactly one JSON
object on standard output (:mod:`lstm_gradcheck.json_output`), and messages go
to standard error.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import traceback
from collections.abc import Sequence

from lstm_gradcheck.cli_options import ArgumentError, build_parser, case_flag, wants_json
from lstm_gradcheck.implementation import UsageError, load_implementation, reference_implementation
from lstm_gradcheck.json_output import write_json
from lstm_gradcheck.oracles.registry import oracle_names
from lstm_gradcheck.plot import plot_report
from lstm_gradcheck.progress import Progress
from lstm_gradcheck.reference.case import Case, make_case
from lstm_gradcheck.reference.config import MEMORY_LIMIT_BYTES, UPSTREAM, CaseError, LSTMConfig, estimate_bytes
from lstm_gradcheck.reference.verdicts import ERROR, NOTHING_CHECKED
from lstm_gradcheck.render import render_report
from lstm_gradcheck.report import build_report
from lstm_gradcheck.search_command import run_search_command
from lstm_gradcheck.variants_cli import run_variants_command

__all__ = ["main", "config_from_args", "case_from_args"]


def config_from_args(args: argparse.Namespace) -> LSTMConfig:
    """The case config from the parsed case options (defaults for the rest).

    The loss ``upstream`` has no terms to average, so without ``--reduction`` it
    takes ``sum`` rather than the built-in case's ``mean``."""
    given = {name: getattr(args, name) for name in LSTMConfig.field_names() if getattr(args, name, None) is not None}
    if given.get("loss") == UPSTREAM and "reduction" not in given:
        given["reduction"] = "sum"
    try:
        config = LSTMConfig(**given)
    except CaseError as exc:
        raise UsageError(_cli_message(str(exc))) from None
    need = 3 * estimate_bytes(config)
    if need > MEMORY_LIMIT_BYTES:
        raise UsageError(
            f"this case would need about {need / 2**30:.1f} GiB (limit {MEMORY_LIMIT_BYTES / 2**30:.0f} GiB): "
            "reduce --seq-len, --batch-size or --hidden-size"
        )
    return config


def case_from_args(args: argparse.Namespace) -> Case:
    config = config_from_args(args)
    try:
        return make_case(config, args.seed, args.lengths, weight_scale=args.weight_scale)
    except CaseError as exc:
        raise UsageError(_cli_message(str(exc))) from None


def _cli_message(text: str) -> str:
    """Name the CLI option rather than the config field in a validation message."""
    for name in LSTMConfig.field_names():
        text = text.replace(f"config.{name}:", f"{case_flag(name)}:")
    return text.replace("case.lengths:", "--lengths:")


def _check_oracles(names: Sequence[str] | None) -> None:
    for name in names or ():
        if name not in oracle_names():
            raise UsageError(f"--oracle: unknown oracle {name!r}; choose from {', '.join(oracle_names())}")


def _check_plot(path: str | None) -> None:
    """Refuse ``--plot`` before any work when matplotlib is missing."""
    if path and importlib.util.find_spec("matplotlib") is None:
        raise UsageError("--plot needs matplotlib, which is not installed: pip install matplotlib")


def _implementation(args: argparse.Namespace):
    return load_implementation(args.impl) if args.impl else reference_implementation()


def _run_report(args: argparse.Namespace) -> int:
    case = case_from_args(args)
    _check_oracles(args.oracle)
    _check_plot(args.plot)
    impl = _implementation(args)
    progress = Progress(sys.stderr, enabled=sys.stderr.isatty() and not args.json)
    report = build_report(case, impl, args.oracle, budget=args.budget, progress=progress)
    if args.plot and report.steps:
        plot_report(report, args.plot, impl)
    if args.json:
        write_json(report.as_json(), sys.stdout)
    else:
        render_report(report, sys.stdout)
        if args.plot and report.steps:
            sys.stdout.write(f"plot: {args.plot}\n")
    if args.plot and not report.steps and report.verdict != NOTHING_CHECKED:
        sys.stderr.write("lstm-gradcheck: --plot: nothing to draw: no step localization (every gradient agrees)\n")
    if report.verdict == NOTHING_CHECKED:  # the reason is in the report (text) or its "why" (JSON)
        reason = report.nothing_checked_reason if args.json else "see the report above"
        sys.stderr.write(f"lstm-gradcheck: nothing checked: {reason}\n")
    return report.exit_status


def _run_search(args: argparse.Namespace) -> int:
    _check_oracles(args.oracle)
    return run_search_command(args, _implementation(args))


def _run_variants(args: argparse.Namespace) -> int:
    return run_variants_command(args)


def _error(as_json: bool, message: str, status: int, **extra: object) -> int:
    sys.stderr.write(message if message.endswith("\n") else message + "\n")
    if as_json:
        write_json({"verdict": ERROR, "exit_status": status, "error": message.strip(), **extra}, sys.stdout)
    return status


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``lstm-gradcheck`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    as_json = wants_json(argv)
    try:
        args = build_parser().parse_args(argv)
    except ArgumentError as exc:
        sys.stderr.write(exc.usage)
        return _error(as_json, str(exc), 2)
    commands = {"report": _run_report, "search": _run_search, "variants": _run_variants}
    try:
        return commands[args.command](args)
    except (UsageError, CaseError) as exc:
        return _error(as_json, f"lstm-gradcheck: error: {_cli_message(str(exc))}", 2)
    except KeyboardInterrupt:
        return _error(as_json, "lstm-gradcheck: interrupted", 130)
    except Exception as exc:
        if os.environ.get("LSTM_GRADCHECK_DEBUG"):
            traceback.print_exc()
        message = (
            f"lstm-gradcheck: internal error: {type(exc).__name__}: {exc}\n"
            "(this is a bug in lstm-gradcheck; rerun with LSTM_GRADCHECK_DEBUG=1 for the traceback and report it)"
        )
        return _error(as_json, message, 3, internal=True)


if __name__ == "__main__":
    sys.exit(main())
