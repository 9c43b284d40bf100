"""The ``lstm-gradcheck`` command line (see ``lstm-gradcheck --help``).

Exit status: 0 pass, 1 the implementation is wrong (or found wrong), 2 usage
error or unusable implementation, 130 interrupted, 3 an internal error of the
harness itself (please report it with ``LSTM_GRADCHECK_DEBUG=1``'s traceback).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import traceback
from collections.abc import Sequence

from lstm_gradcheck.implementation import (
    ImplementationLoadError,
    UsageError,
    load_implementation,
    reference_implementation,
)
from lstm_gradcheck.reference.config import CHOICES, MEMORY_LIMIT_BYTES, CaseError, LSTMConfig, estimate_bytes

__all__ = ["main", "build_parser", "config_from_args", "case_from_args"]

SEARCH_EXAMPLES = """\
examples:
  lstm-gradcheck search --impl mypkg.lstm:grads               200 random cases, shrink the first failure
  lstm-gradcheck search --impl my_lstm.py:grads --max-examples 2000 --seed 7 --json
"""

EXAMPLES = """\
examples:
  lstm-gradcheck report                                  check the built-in reference on the default case
  lstm-gradcheck report --seq-len 12 --num-layers 3 --forget-bias 1 --lengths 12,7,3
  lstm-gradcheck report --impl mypkg.lstm:grads --json   check your implementation, JSON for CI
  lstm-gradcheck report --impl path/to/my_lstm.py:grads --oracle torch --oracle fd
"""


class _Parser(argparse.ArgumentParser):
    """argparse, but usage errors never print a traceback and always exit 2."""

    def error(self, message: str):  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {value}")
    return value


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if not 0 <= value < 2**63:
        raise argparse.ArgumentTypeError(f"expected an integer in [0, 2^63), got {value}")
    return value


def _finite_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def _positive_float(text: str) -> float:
    value = _finite_float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
    return value


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("true", "yes", "1", "on"):
        return True
    if lowered in ("false", "no", "0", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _lengths(text: str) -> list[int]:
    parts = [p.strip() for p in text.split(",")]
    try:
        values = [int(p) for p in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers like 5,3,1, got {text!r}") from None
    return values


def _add_case_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("case options (defaults: the built-in case)")
    defaults = LSTMConfig()
    for name in ("input_size", "hidden_size", "num_layers", "output_size", "seq_len", "batch_size"):
        group.add_argument(
            "--" + name.replace("_", "-"), type=_positive_int, metavar="N", help=f"default {getattr(defaults, name)}"
        )
    for name in ("loss_at", "loss", "reduction", "cell_output", "dtype"):
        group.add_argument(
            "--" + name.replace("_", "-"), choices=CHOICES[name], help=f"default {getattr(defaults, name)}"
        )
    group.add_argument("--forget-bias", type=_finite_float, metavar="B", help=f"default {defaults.forget_bias}")
    group.add_argument(
        "--final-state",
        type=_bool,
        nargs="?",
        const=True,
        metavar="BOOL",
        help=f"add the final-state term (default {str(defaults.final_state).lower()})",
    )
    group.add_argument("--no-final-state", dest="final_state", action="store_false", help="no final-state term")
    group.add_argument("--lengths", type=_lengths, metavar="L1,L2,..", help="one length per sequence (default none)")
    group.add_argument("--seed", type=_seed, default=0, help="seeds every random array (default 0)")
    group.add_argument(
        "--weight-scale", type=_positive_float, default=1.0, metavar="S", help="weights ~ U(-S/sqrt(H), S/sqrt(H))"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="lstm-gradcheck",
        description="Prove an LSTM's hand-derived gradients right, or show exactly where they are wrong.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="{report,search,variants}", parser_class=_Parser)
    sub.required = True

    report = sub.add_parser(
        "report",
        help="check one case against every oracle that fits; a mismatch table",
        description="Check one case (built from the options and --seed) against every oracle that fits.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    report.add_argument("--impl", metavar="SPEC", help="package.module:function or path/to/file.py:function")
    report.add_argument(
        "--oracle",
        action="append",
        metavar="NAME",
        help="run this oracle (repeatable; default every one that fits): torch, torch-nn, fd, complex-step, "
        "taylor, directional",
    )
    report.add_argument("--json", action="store_true", help="print one JSON object on stdout and nothing else")
    report.add_argument("--plot", metavar="FILE.png", help="also draw a heatmap of the error per gate and time step")
    _add_case_options(report)

    search = sub.add_parser(
        "search",
        help="search random cases for one where the implementation is wrong; shrink it",
        description="A Hypothesis search (the property suite's strategies) for a case where the implementation "
        "disagrees with the oracles; the failure is shrunk to a minimal case, reported in full, and printed as a "
        "ready-to-run `lstm-gradcheck report` command line.",
        epilog=SEARCH_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    search.add_argument("--impl", metavar="SPEC", help="package.module:function or path/to/file.py:function")
    search.add_argument(
        "--max-examples", type=_positive_int, default=None, metavar="N", help="cases to try (default 200)"
    )
    search.add_argument("--seed", type=_seed, default=0, help="the search's seed: the same seed gives the same result")
    search.add_argument(
        "--oracle", action="append", metavar="NAME", help="oracle(s) the search compares against (default torch)"
    )
    search.add_argument("--json", action="store_true", help="print one JSON object on stdout and nothing else")

    variants = sub.add_parser(
        "variants",
        help="the regression table of derivation variants: expected and observed verdicts",
        description="Check every registered derivation variant (each seed's derivation, a catalogue of realistic "
        "wrong ones, right ones of other forms): observed verdict against the record, the minimal failing case, "
        "where it is wrong. Exit 0 when every verdict is as recorded.",
    )
    variants.add_argument("--json", action="store_true", help='print {"variants": [...]} on stdout and nothing else')
    variants.add_argument(
        "--matrix", action="store_true", help="also show which oracle and which property catch each wrong variant"
    )
    variants.add_argument(
        "--search-only",
        action="store_true",
        help="do not replay the recorded minimal cases first: the search must find and shrink every failure",
    )
    variants.add_argument(
        "--max-examples", type=_positive_int, default=100, metavar="N", help="search budget per variant (default 100)"
    )
    variants.add_argument("--seed", type=_seed, default=0, help="the searches' seed (default 0)")
    variants.add_argument("--only", action="append", metavar="NAME", help="check only this variant (repeatable)")
    return parser


def config_from_args(args: argparse.Namespace) -> LSTMConfig:
    """The case config from the parsed case options (defaults for the rest)."""
    given = {name: getattr(args, name) for name in LSTMConfig.field_names() if getattr(args, name, None) is not None}
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


def case_from_args(args: argparse.Namespace):
    from lstm_gradcheck.reference.case import make_case  # noqa: PLC0415

    config = config_from_args(args)
    try:
        return make_case(config, args.seed, args.lengths, weight_scale=args.weight_scale)
    except CaseError as exc:
        raise UsageError(_cli_message(str(exc))) from None


def _cli_message(text: str) -> str:
    """Name the CLI option rather than the config field in a validation message."""
    for name in LSTMConfig.field_names():
        text = text.replace(f"config.{name}:", f"--{name.replace('_', '-')}:")
    return text.replace("case.lengths:", "--lengths:")


def _run_report(args: argparse.Namespace) -> int:
    from lstm_gradcheck.render import render_report  # noqa: PLC0415
    from lstm_gradcheck.report import build_report  # noqa: PLC0415

    case = case_from_args(args)
    _check_oracles(args.oracle)
    impl = load_implementation(args.impl) if args.impl else reference_implementation()
    report = build_report(case, impl, args.oracle)
    if report.outcome.status == "unsupported":
        raise ImplementationLoadError(
            f"the implementation does not support this case (it raised {report.outcome.error}); "
            "choose a case it supports"
        )
    if report.outcome.status == "ok" and not any(o.verdict != "skipped" for o in report.oracles):
        reasons = "; ".join(f"{o.name}: {o.reason}" for o in report.oracles)
        raise UsageError(f"no oracle could judge this case ({reasons}); choose other oracles with --oracle")
    if args.plot:
        from lstm_gradcheck.plot import plot_report  # noqa: PLC0415

        plot_report(report, args.plot, impl)
    if args.json:
        _print_json(report.as_json())
    else:
        render_report(report, sys.stdout)
        if args.plot:
            sys.stdout.write(f"plot: {args.plot}\n")
    return report.exit_status


def _check_oracles(names: Sequence[str] | None) -> None:
    from lstm_gradcheck.oracles.registry import oracle_names  # noqa: PLC0415

    for name in names or ():
        if name not in oracle_names():
            raise UsageError(f"--oracle: unknown oracle {name!r}; choose from {', '.join(oracle_names())}")


def _run_search(args: argparse.Namespace) -> int:
    from lstm_gradcheck.render import render_report  # noqa: PLC0415
    from lstm_gradcheck.report import build_report  # noqa: PLC0415
    from lstm_gradcheck.search import (  # noqa: PLC0415
        DEFAULT_MAX_EXAMPLES,
        SearchProgress,
        report_command,
        search,
        terminal_progress,
    )

    _check_oracles(args.oracle)
    _hypothesis_home_outside_cwd()
    impl = load_implementation(args.impl) if args.impl else reference_implementation()
    progress = SearchProgress()
    show = terminal_progress(sys.stderr)
    max_examples = args.max_examples or DEFAULT_MAX_EXAMPLES
    try:
        result = search(
            impl,
            max_examples=max_examples,
            seed=args.seed,
            oracles=tuple(args.oracle or ("torch",)),
            progress=progress,
            on_progress=show,
        )
    except KeyboardInterrupt:
        return _interrupted(args, progress, report_command)
    if sys.stderr.isatty():
        sys.stderr.write("\r" + progress.line() + "\n")
    summary = {
        "found": result.found,
        "examples": result.examples,
        "unsupported": result.unsupported,
        "seconds": result.seconds,
        "seed": result.seed,
        "max_examples": max_examples,
        "supported": list(result.space_notes),
    }
    narrowed = f"; searched only what it supports ({'; '.join(result.space_notes)})" if result.space_notes else ""
    if not result.found:
        if args.json:
            _print_json({"verdict": "pass", **summary, "case": None, "gradients": [], "oracles": [], "timings": {}})
        else:
            sys.stdout.write(
                f"no failing case in {result.examples} examples ({result.unsupported} unsupported) "
                f"in {result.seconds:.1f} s (seed {result.seed}){narrowed}\n"
            )
        return 0
    report = build_report(result.case, impl)
    command = report_command(result.case, args.impl)
    if args.json:
        data = report.as_json()
        data.update(summary)
        data["verdict"] = "fail"
        data["why"] = result.why
        data["command"] = command
        _print_json(data)
    else:
        sys.stdout.write(
            f"found a failing case after {result.examples} examples ({result.unsupported} unsupported) "
            f"in {result.seconds:.1f} s (seed {result.seed}){narrowed}; shrunk to the minimal case below.\n\n"
        )
        render_report(report, sys.stdout)
        sys.stdout.write(f"\nreproduce: {command}\n")
    return 1


def _hypothesis_home_outside_cwd() -> None:
    """Hypothesis keeps a cache in ./.hypothesis by default; a command must not litter the user's folder."""
    from hypothesis.configuration import set_hypothesis_home_dir  # noqa: PLC0415

    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    set_hypothesis_home_dir(os.path.join(cache, "lstm-gradcheck", "hypothesis"))


def _interrupted(args: argparse.Namespace, progress, report_command) -> int:
    """Ctrl-C during a search: the smallest failing case so far (or none), exit 130."""
    case = progress.smallest
    command = report_command(case, args.impl) if case is not None else None
    if args.json:
        from lstm_gradcheck.report import case_json  # noqa: PLC0415

        _print_json(
            {
                "verdict": "fail" if case is not None else "pass",
                "interrupted": True,
                "found": case is not None,
                "examples": progress.examples,
                "unsupported": progress.unsupported,
                "case": case_json(case) if case is not None else None,
                "why": progress.smallest_why,
                "command": command,
            }
        )
    else:
        sys.stdout.write(f"\ninterrupted after {progress.examples} examples ({progress.unsupported} unsupported)\n")
        if case is None:
            sys.stdout.write("no failing case found so far\n")
        else:
            sys.stdout.write(f"smallest failing case so far (not fully shrunk):\n  {case.describe()}\n")
            sys.stdout.write(f"  {progress.smallest_why.splitlines()[0]}\nreproduce: {command}\n")
    sys.stdout.flush()
    return 130


def _print_json(data: dict) -> None:
    json.dump(data, sys.stdout, indent=2, allow_nan=False)
    sys.stdout.write("\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``lstm-gradcheck`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "report":
            return _run_report(args)
        if args.command == "search":
            return _run_search(args)
        if args.command == "variants":
            from lstm_gradcheck.variants_cli import run_variants_command  # noqa: PLC0415

            return run_variants_command(args)
        raise UsageError(f"unknown command {args.command!r}")
    except (UsageError, CaseError) as exc:
        sys.stderr.write(f"lstm-gradcheck: error: {_cli_message(str(exc))}\n")
        return 2

    except KeyboardInterrupt:
        sys.stderr.write("lstm-gradcheck: interrupted\n")
        return 130
    except Exception as exc:
        if os.environ.get("LSTM_GRADCHECK_DEBUG"):
            traceback.print_exc()
        sys.stderr.write(
            f"lstm-gradcheck: internal error: {type(exc).__name__}: {exc}\n"
            "(this is a bug in lstm-gradcheck; rerun with LSTM_GRADCHECK_DEBUG=1 for the traceback and report it)\n"
        )
        return 3


if __name__ == "__main__":
    sys.exit(main())
