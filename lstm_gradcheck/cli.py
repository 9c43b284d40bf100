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
import signal
import sys
import threading
import traceback
from collections.abc import Sequence
from typing import TextIO

from lstm_gradcheck import streams
from lstm_gradcheck.cli_options import ArgumentError, build_parser, case_flag, wants_json
from lstm_gradcheck.coverage import parse_require
from lstm_gradcheck.implementation import UsageError, reference_implementation
from lstm_gradcheck.isolation import load_implementation
from lstm_gradcheck.json_output import write_json
from lstm_gradcheck.oracles.registry import oracle_names
from lstm_gradcheck.plot import check_plot_path, plot_report
from lstm_gradcheck.progress import Progress
from lstm_gradcheck.reference.case import Case, make_case
from lstm_gradcheck.reference.config import MEMORY_LIMIT_BYTES, UPSTREAM, CaseError, LSTMConfig, estimate_bytes
from lstm_gradcheck.reference.verdicts import ERROR, MISMATCH, NOTHING_CHECKED
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
    """Refuse ``--plot`` before any work when matplotlib is missing or the path cannot be written."""
    if path and importlib.util.find_spec("matplotlib") is None:
        raise UsageError("--plot needs matplotlib, which is not installed: pip install matplotlib")
    if path:
        check_plot_path(path)


def _implementation(args: argparse.Namespace):
    if args.impl is None:
        return reference_implementation()
    if args.device != "cpu":
        from lstm_gradcheck.oracles.torch_native import devices  # noqa: PLC0415 (starts torch)

        if args.device not in devices():
            raise UsageError(f"--device {args.device}: torch sees no such device on this machine")
    return load_implementation(args.impl, in_process=args.in_process, timeout=args.timeout, device=args.device)


def _run_report(args: argparse.Namespace) -> int:
    case = case_from_args(args)
    _check_oracles(args.oracle)
    _check_plot(args.plot)
    impl = _implementation(args)
    progress = Progress(sys.stderr, enabled=streams.is_terminal(sys.stderr) and not args.json)
    report = build_report(
        case, impl, args.oracle, require=parse_require(args.require), budget=args.budget, progress=progress
    )
    drawn = bool(args.plot) and any(t.status == MISMATCH for t in report.tensors)
    if drawn:
        plot_report(report, args.plot, impl)
    if args.json:
        write_json(report.as_json(), sys.stdout)
    else:
        render_report(report, sys.stdout)
        if drawn:
            sys.stdout.write(f"plot: {args.plot}\n")
    if args.plot and not drawn and report.verdict != NOTHING_CHECKED:
        streams.write(
            sys.stderr, "lstm-gradcheck: --plot: nothing to draw: no gradient mismatches, so no plot was written\n"
        )
    if report.verdict == NOTHING_CHECKED:  # the reason is in the report (text) or its "why" (JSON)
        reason = report.nothing_checked_reason if args.json else "see the report above"
        streams.write(sys.stderr, f"lstm-gradcheck: nothing checked: {reason}\n")
    return report.exit_status


def _run_search(args: argparse.Namespace) -> int:
    _check_oracles(args.oracle)
    return run_search_command(args, _implementation(args))


def _run_variants(args: argparse.Namespace) -> int:
    return run_variants_command(args)


def _error(as_json: bool, message: str, status: int, **extra: object) -> int:
    streams.write(sys.stderr, message if message.endswith("\n") else message + "\n")
    if as_json:
        write_json({"verdict": ERROR, "exit_status": status, "error": message.strip(), **extra}, sys.stdout)
    return status


class _Stdout:
    """The real stdout, but a write it cannot take is remembered, not raised: the verdict's exit
    status must not become an internal error because the output had nowhere to go."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self.failure: BaseException | None = None

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except (OSError, ValueError) as exc:
            self.failure = self.failure or exc
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except (OSError, ValueError) as exc:
            self.failure = self.failure or exc

    def __getattr__(self, name: str) -> object:
        return getattr(self._stream, name)


def _terminated(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM ends a run as Ctrl-C does: the verdict so far, then exit 130


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``lstm-gradcheck`` console script."""
    argv = list(sys.argv[1:] if argv is None else argv)
    streams.ensure_standard_fds()
    real_stdout, guarded = sys.stdout, _Stdout(sys.stdout)
    sys.stdout = guarded  # type: ignore[assignment]
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        status = _main(argv)
    finally:
        sys.stdout = real_stdout
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    if guarded.failure is not None:
        streams.write(sys.stderr, f"lstm-gradcheck: could not write the output to stdout: {guarded.failure}\n")
        streams.forget_unwritten_stdout()
    return status


def _main(argv: list[str]) -> int:
    as_json = wants_json(argv)
    try:
        args = build_parser().parse_args(argv)
    except ArgumentError as exc:
        streams.write(sys.stderr, exc.usage)
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
