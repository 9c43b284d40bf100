"""pytest plugin: ``pytest --lstm-impl mypkg.lstm:grads`` adds a search test to the session.

Installed with lstm-gradcheck (entry point ``pytest11``) and inert unless an
implementation is named: until a search runs it imports nothing of the harness
(only pytest). Each search is one test item ``lstm-gradcheck::search[SPEC]``,
marked ``lstm_gradcheck``. It fails with the shrunk case's full report and a
ready-to-run ``lstm-gradcheck report`` command line, and it fails too, saying
why, when nothing could be checked (every case refused, no gradient given).

Note [When the searches run]
----------------------------
``--lstm-impl SPEC`` on the command line always adds its search. Implementations named in
the configuration (``impl`` in pyproject.toml's ``[tool.lstm-gradcheck]`` table, or an
``lstm_impl`` ini line) are searched only when the run selects the whole suite (pytest
given no file, folder or test id) or the marker (``-m`` naming ``lstm_gradcheck``), so
``pytest tests/test_x.py::test_y`` stays fast. The table is not a pytest setting: with
``-p no:lstm_gradcheck`` pytest ignores it, where an unknown ini key fails --strict-config.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest

__all__ = ["pytest_addoption", "pytest_configure", "pytest_collection_modifyitems", "SearchItem"]

MARKER = "lstm_gradcheck"


class SearchFailure(AssertionError):
    """The search found a case where the implementation is wrong, or could check nothing."""


#: pyproject.toml's table for the plugin's settings (Note [When the searches run]).
TABLE = "lstm-gradcheck"


def pytest_addoption(parser: pytest.Parser) -> None:
    # The CLI's argument types (standard library only), imported here: importing the plugin
    # itself loads nothing of the harness.
    from lstm_gradcheck.arg_types import positive_float, positive_int, seed  # noqa: PLC0415

    group = parser.getgroup("lstm-gradcheck", "search an LSTM implementation for wrong gradients")
    group.addoption(
        "--lstm-impl",
        action="append",
        default=[],
        metavar="SPEC",
        help="search this implementation (package.module:function or path/to/file.py:function); repeatable",
    )
    group.addoption(
        "--lstm-max-examples", type=positive_int, default=None, metavar="N", help="cases per search (default 200)"
    )
    group.addoption("--lstm-seed", type=seed, default=0, metavar="S", help="the searches' seed (default 0)")
    group.addoption(
        "--lstm-timeout",
        type=positive_float,
        default=None,
        metavar="SECONDS",
        help="seconds one call of the implementation may take before it counts as hung (default 60)",
    )
    group.addoption(
        "--lstm-require",
        default=None,
        metavar="all|NAMES",
        help="tensors a pass needs judged: all, or names and patterns (default: every tensor it provided)",
    )
    group.addoption(
        "--lstm-profile",
        choices=("dev", "ci", "thorough"),
        default="ci",
        help="the search space and default number of examples (default ci)",
    )
    parser.addini(
        "lstm_impl",
        "implementations to search when the whole suite or -m lstm_gradcheck runs (one per line; "
        "prefer impl in pyproject.toml's [tool.lstm-gradcheck] table)",
        type="linelist",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"{MARKER}: a search of an LSTM implementation by lstm-gradcheck")


def _table(config: pytest.Config) -> dict:
    """The ``[tool.lstm-gradcheck]`` table of the project's pyproject.toml (empty if none)."""
    inipath = getattr(config, "inipath", None)
    path = inipath if inipath is not None and Path(inipath).name == "pyproject.toml" else None
    path = Path(path) if path is not None else Path(config.rootpath) / "pyproject.toml"
    if not path.is_file():
        return {}
    try:
        import tomllib  # noqa: PLC0415
    except ImportError:  # Python 3.10: pytest itself depends on tomli there
        import tomli as tomllib  # noqa: PLC0415
    try:
        table = tomllib.loads(path.read_text(encoding="utf-8")).get("tool", {}).get(TABLE, {})
    except (OSError, ValueError) as exc:
        raise pytest.UsageError(f"lstm-gradcheck: cannot read {path}: {exc}") from None
    return table if isinstance(table, dict) else {}


def _configured_specs(config: pytest.Config) -> list[str]:
    """Implementations named in the configuration: the table's ``impl`` and the ini's ``lstm_impl``."""
    impl = _table(config).get("impl", [])
    if isinstance(impl, str):
        impl = [impl]
    if not isinstance(impl, list) or not all(isinstance(spec, str) for spec in impl):
        raise pytest.UsageError(f"lstm-gradcheck: [tool.{TABLE}] impl must be a string or a list of strings")
    return [*impl, *config.getini("lstm_impl")]


def _whole_suite_or_marker(config: pytest.Config) -> bool:
    """Whether the run selects the whole suite or the marker (Note [When the searches run])."""
    if MARKER in (config.getoption("markexpr", "") or ""):
        return True
    source = getattr(config, "args_source", None)
    if source is not None:
        return source != pytest.Config.ArgsSource.ARGS
    return not config.invocation_params.args or all(a.startswith("-") for a in config.invocation_params.args)


def _specs(config: pytest.Config) -> list[str]:
    configured = _configured_specs(config) if _whole_suite_or_marker(config) else []
    return list(dict.fromkeys([*configured, *config.getoption("lstm_impl")]))


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    for spec in _specs(config):
        name = f"lstm-gradcheck::search[{spec}]"
        item = SearchItem.from_parent(session, name=name, nodeid=name, spec=spec)
        item.add_marker(MARKER)
        items.append(item)


class SearchItem(pytest.Item):
    """One ``lstm-gradcheck search`` of one implementation, as a test."""

    def __init__(self, *, spec: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.spec = spec  # the item's id is its name, whatever file or folder pytest was given

    def runtest(self) -> None:
        # The harness loads only when a search runs: every pytest session imports this plugin.
        from lstm_gradcheck.coverage import parse_require  # noqa: PLC0415
        from lstm_gradcheck.implementation import UsageError  # noqa: PLC0415
        from lstm_gradcheck.isolation import DEFAULT_TIMEOUT, load_implementation  # noqa: PLC0415
        from lstm_gradcheck.render import render_report  # noqa: PLC0415
        from lstm_gradcheck.report import build_report  # noqa: PLC0415
        from lstm_gradcheck.search_command import few_judged_warning  # noqa: PLC0415
        from lstm_gradcheck.searching import NOTHING_CHECKED, PROFILES, report_command, search  # noqa: PLC0415

        option = self.config.getoption
        timeout = option("lstm_timeout") or DEFAULT_TIMEOUT
        try:
            impl = load_implementation(self.spec, timeout=timeout)
            require = parse_require(option("lstm_require"))
        except UsageError as exc:
            raise SearchFailure(f"--lstm-impl {self.spec}: {exc}") from None
        profile = PROFILES[option("lstm_profile")]
        budget = option("lstm_max_examples") or profile.max_examples
        result = search(
            impl, max_examples=budget, seed=option("lstm_seed"), space=profile.space, require=require, timeout=timeout
        )
        if result.verdict == NOTHING_CHECKED:
            raise SearchFailure(f"--lstm-impl {self.spec}: nothing checked: {result.nothing_checked_message()}")
        if result.found:
            text = io.StringIO()
            render_report(build_report(result.case, impl), text, rich=False)
            raise SearchFailure(
                f"--lstm-impl {self.spec}: found a failing case after {result.examples} examples "
                f"({result.judged} judged, {result.unsupported} unsupported); shrunk:\n{text.getvalue()}"
                f"reproduce: {report_command(result.case, self.spec)}"
            )
        warning = few_judged_warning(result)
        if warning is not None:
            self.warn(pytest.PytestWarning(f"--lstm-impl {self.spec}: {warning}"))
        missing = result.coverage.never_provided()
        if missing:
            self.warn(
                pytest.PytestWarning(
                    f"--lstm-impl {self.spec}: never provided, so never checked: {', '.join(missing)} "
                    "(--lstm-require all makes that a failure)"
                )
            )

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, SearchFailure):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self):
        return self.path, 0, self.name  # a line number, so that warnings of the item can be placed
