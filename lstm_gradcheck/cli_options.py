"""The command line's parser: its options come from the config fields and the oracle registry.

Every case option is a field of :class:`~lstm_gradcheck.reference.config.LSTMConfig`
with dashes (the contract's rule), typed from the field: sizes are integers
>= 1, other integers (``--proj-size``) >= 0, categorical fields take
:data:`~lstm_gradcheck.reference.config.CHOICES`, and each boolean ``--x`` takes
an optional true/false, with ``--no-x`` beside it. Nothing here lists the fields again.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import textwrap

from lstm_gradcheck import __version__
from lstm_gradcheck.arg_types import finite_float, nonnegative_int, positive_float, positive_int, seed
from lstm_gradcheck.budget import DEFAULT_BUDGET
from lstm_gradcheck.isolation import DEFAULT_TIMEOUT
from lstm_gradcheck.oracles.registry import oracle_help
from lstm_gradcheck.reference.config import CHOICES, FIELD_HELP, INT_FIELDS, LSTMConfig
from lstm_gradcheck.searching import DEFAULT_PROFILE, PROFILES

__all__ = ["ArgumentError", "build_parser", "case_flag", "EXIT_STATUS_HELP"]

EXIT_STATUS_HELP = """\
exit status:
  0    pass: every provided gradient and the loss agree with every oracle that ran
  1    fail: the implementation is wrong (or a search found a case where it is)
  2    usage error, unusable implementation, or "nothing checked" (nothing could be judged)
  3    internal error of lstm-gradcheck (rerun with LSTM_GRADCHECK_DEBUG=1 and report it)
  130  interrupted (Ctrl-C); a search prints the smallest failing case found so far
"""

REPORT_EXAMPLES = """\
examples:
  lstm-gradcheck report                                  check the built-in reference on the default case
  lstm-gradcheck report --seq-len 12 --num-layers 3 --forget-bias 1 --lengths 12,7,3
  lstm-gradcheck report --impl mypkg.lstm:grads --json   check your implementation, JSON for CI
  lstm-gradcheck report --impl path/to/adapter.py:grads --c0 zero --loss upstream --num-layers 1
"""

SEARCH_EXAMPLES = """\
examples:
  lstm-gradcheck search --impl mypkg.lstm:grads               200 random cases, shrink the first failure
  lstm-gradcheck search --impl my_lstm.py:grads --max-examples 2000 --seed 7 --json
"""


class ArgumentError(Exception):
    """A usage error found while parsing; ``main`` prints it (and the usage) and exits 2."""

    def __init__(self, message: str, usage: str) -> None:
        super().__init__(message)
        self.usage = usage


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error raises :class:`ArgumentError` (never a traceback, never a
    bare exit), so ``--json`` can still print its object."""

    def error(self, message: str):  # type: ignore[override]
        raise ArgumentError(f"{self.prog}: error: {message}", self.format_usage())


def case_flag(field: str) -> str:
    """The CLI option of a config field (the contract's rule: the name with dashes)."""
    return "--" + field.replace("_", "-")


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("true", "yes", "1", "on"):
        return True
    if lowered in ("false", "no", "0", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _lengths(text: str) -> list[int]:
    try:
        return [int(p.strip()) for p in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers like 5,3,1, got {text!r}") from None


def _add_case_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("case options (named after the config fields; defaults: the built-in case)")
    defaults = LSTMConfig()
    for field in dataclasses.fields(LSTMConfig):
        name, flag = field.name, case_flag(field.name)
        default = getattr(defaults, name)
        text = f"{FIELD_HELP[name]} (default {str(default).lower() if isinstance(default, bool) else default})"
        if name in INT_FIELDS:
            group.add_argument(flag, type=positive_int, metavar="N", help=text)
        elif isinstance(default, bool):
            group.add_argument(flag, type=_bool, nargs="?", const=True, metavar="BOOL", help=text)
            group.add_argument(case_flag("no_" + name), dest=name, action="store_false", help=f"{flag} false")
        elif isinstance(default, int):
            group.add_argument(flag, type=nonnegative_int, metavar="N", help=text)
        elif name in CHOICES:
            group.add_argument(flag, choices=CHOICES[name], help=text)
        else:
            group.add_argument(flag, type=finite_float, metavar="X", help=text)
    group.add_argument("--lengths", type=_lengths, metavar="L1,L2,..", help="one length per sequence (default none)")
    group.add_argument("--seed", type=seed, default=0, help="seeds every random array (default 0)")
    group.add_argument(
        "--weight-scale", type=positive_float, default=1.0, metavar="S", help="weights ~ U(-S/sqrt(H), S/sqrt(H))"
    )


def _add_impl(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--impl",
        metavar="SPEC",
        help="the implementation to check: package.module:function or path/to/file.py:function, run in a "
        "worker process of its own (default: the built-in NumPy reference)",
    )
    parser.add_argument(
        "--timeout",
        type=positive_float,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help=f"how long one call (or the import) of the implementation may take before it counts as hung and "
        f"fails (default {DEFAULT_TIMEOUT:g})",
    )
    parser.add_argument(
        "--device",
        choices=("cpu", "cuda"),
        default="cpu",
        help="where a torch-native implementation (a torch module or function) runs (default cpu)",
    )
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="run the implementation in the harness's own process, not isolated (for a debugger); the verdict says so",
    )


def _add_require(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--require",
        metavar="all|NAMES",
        help="tensors a pass needs judged: 'all', or names and patterns such as weight_hh_l*,x (default: every "
        "tensor the implementation provided; those it never provided are named)",
    )


def _nonnegative_float(text: str) -> float:
    value = finite_float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
    return value


def _search_epilog() -> str:
    lines = ["search space (--profile), before support probing narrows it to what the implementation accepts:"]
    for name, profile in PROFILES.items():
        text = f"{name}: {profile.max_examples} examples; {profile.space.bounds()}"
        lines += textwrap.wrap(text, 78, initial_indent="  ", subsequent_indent="      ")
    every = (
        "every loss, reduction, placement, dtype and cell, with and without lengths and the final-state term, "
        "random or zero h0/c0"
    )
    return "\n".join(lines + textwrap.wrap(every, 78, initial_indent="  ", subsequent_indent="  ")) + "\n"


def build_parser() -> argparse.ArgumentParser:
    """The ``lstm-gradcheck`` parser (see ``lstm-gradcheck --help``)."""
    formatter = argparse.RawDescriptionHelpFormatter
    parser = _Parser(
        prog="lstm-gradcheck",
        description="Prove an LSTM's hand-derived gradients right, or show exactly where they are wrong.",
        epilog=REPORT_EXAMPLES + "\n" + EXIT_STATUS_HELP,
        formatter_class=formatter,
    )
    parser.add_argument("--version", action="version", version=f"lstm-gradcheck {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="{report,search,variants}", parser_class=_Parser)
    sub.required = True

    report = sub.add_parser(
        "report",
        help="check one case against every oracle that fits; a mismatch table",
        description="Check one case (built from the options and --seed) against every oracle that fits.",
        epilog=f"oracles (--oracle NAME):\n{oracle_help()}\n\n{REPORT_EXAMPLES}\n{EXIT_STATUS_HELP}",
        formatter_class=formatter,
    )
    _add_impl(report)
    report.add_argument(
        "--oracle", action="append", metavar="NAME", help="run this oracle (repeatable; default every one that fits)"
    )
    _add_require(report)
    report.add_argument("--json", action="store_true", help="print one JSON object on stdout and nothing else")
    report.add_argument("--plot", metavar="FILE.png", help="also draw a heatmap of the error per gate and time step")
    report.add_argument(
        "--budget",
        type=positive_float,
        default=DEFAULT_BUDGET,
        metavar="SECONDS",
        help=f"time the report may take (default {DEFAULT_BUDGET:g}): the implementation, the exact answer, "
        "its conditioning probes and the torch oracle always run; every other oracle runs while its estimate "
        "fits in what is left, else it is skipped with its estimate",
    )
    _add_case_options(report)

    search = sub.add_parser(
        "search",
        help="search random cases for one where the implementation is wrong; shrink it",
        description="A Hypothesis search (the property suite's strategies) for a case where the implementation "
        "disagrees with the oracles; the failure is shrunk to a minimal case, reported in full, and printed as a "
        "ready-to-run `lstm-gradcheck report` command line.",
        epilog=f"{_search_epilog()}\noracles (--oracle NAME):\n{oracle_help()}\n\n{SEARCH_EXAMPLES}\n"
        + EXIT_STATUS_HELP,
        formatter_class=formatter,
    )
    _add_impl(search)
    search.add_argument(
        "--profile",
        choices=tuple(PROFILES),
        default=DEFAULT_PROFILE,
        help=f"the space and number of examples (default {DEFAULT_PROFILE}; see 'search space' below)",
    )
    search.add_argument(
        "--max-examples", type=positive_int, default=None, metavar="N", help="cases to try (default: the profile's)"
    )
    search.add_argument("--seed", type=seed, default=0, help="the search's seed: the same seed gives the same result")
    search.add_argument(
        "--oracle", action="append", metavar="NAME", help="oracle(s) the search compares against (default torch)"
    )
    _add_require(search)
    search.add_argument("--json", action="store_true", help="print one JSON object on stdout and nothing else")
    bounds = search.add_argument_group("search space (upper bounds; default: the profile's)")
    for field in ("hidden", "input", "seq_len", "batch", "layers", "output"):
        what = {"seq_len": "seq_len", "layers": "num_layers"}.get(field, f"{field}_size")
        bounds.add_argument(case_flag(f"max_{field}"), type=positive_int, metavar="N", help=f"largest {what}")
    bounds.add_argument(
        "--forget-bias-range", type=_nonnegative_float, metavar="R", help="forget_bias drawn from [-R, R] (and 0)"
    )

    variants = sub.add_parser(
        "variants",
        help="the regression table of derivation variants: expected and observed verdicts",
        description="Check every registered derivation variant (each seed's derivation, a catalogue of realistic "
        "wrong ones, right ones of other forms): observed verdict against the record, the minimal failing case, "
        "where it is wrong. Exit 0 when every verdict is as recorded, 1 otherwise.",
        formatter_class=formatter,
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
        "--max-examples", type=positive_int, default=100, metavar="N", help="search budget per variant (default 100)"
    )
    variants.add_argument("--seed", type=seed, default=0, help="the searches' seed (default 0)")
    variants.add_argument("--only", action="append", metavar="NAME", help="check only this variant (repeatable)")
    return parser


def wants_json(argv: list[str]) -> bool:
    """Whether ``--json`` was asked for, even on a command line that does not parse."""
    return "--json" in argv


def usage_to_stderr(usage: str) -> None:
    sys.stderr.write(usage)
