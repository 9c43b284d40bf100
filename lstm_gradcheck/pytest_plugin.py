"""pytest plugin: ``pytest --lstm-impl mypkg.lstm:grads`` adds a search test to the session.

Installed with lstm-gradcheck (entry point ``pytest11``) and inert unless
``--lstm-impl`` is given or the ini setting ``lstm_impl`` is set: until then it
imports nothing of the harness (only pytest). Each search is one test item
``lstm-gradcheck::search[SPEC]``, marked ``lstm_gradcheck`` (select it with
``-m lstm_gradcheck``). It fails with the shrunk case's full report and a
ready-to-run ``lstm-gradcheck report`` command line, and it fails too, saying
why, when nothing could be checked (every case refused, no gradient given).
"""

from __future__ import annotations

import io

import pytest

__all__ = ["pytest_addoption", "pytest_configure", "pytest_collection_modifyitems", "SearchItem"]

MARKER = "lstm_gradcheck"


class SearchFailure(AssertionError):
    """The search found a case where the implementation is wrong, or could check nothing."""


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("lstm-gradcheck", "search an LSTM implementation for wrong gradients")
    group.addoption(
        "--lstm-impl",
        action="append",
        default=[],
        metavar="SPEC",
        help="search this implementation (package.module:function or path/to/file.py:function); repeatable",
    )
    group.addoption("--lstm-max-examples", type=int, default=None, metavar="N", help="cases per search (default 200)")
    group.addoption("--lstm-seed", type=int, default=0, metavar="S", help="the searches' seed (default 0)")
    parser.addini("lstm_impl", "implementations to search, as --lstm-impl takes them (one per line)", type="linelist")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"{MARKER}: a search of an LSTM implementation by lstm-gradcheck")


def _specs(config: pytest.Config) -> list[str]:
    return [*config.getini("lstm_impl"), *config.getoption("lstm_impl")]


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
        from lstm_gradcheck.implementation import UsageError  # noqa: PLC0415
        from lstm_gradcheck.isolation import load_implementation  # noqa: PLC0415
        from lstm_gradcheck.render import render_report  # noqa: PLC0415
        from lstm_gradcheck.report import build_report  # noqa: PLC0415
        from lstm_gradcheck.search_command import few_judged_warning  # noqa: PLC0415
        from lstm_gradcheck.searching import (  # noqa: PLC0415
            DEFAULT_MAX_EXAMPLES,
            NOTHING_CHECKED,
            report_command,
            search,
        )

        try:
            impl = load_implementation(self.spec)
        except UsageError as exc:
            raise SearchFailure(f"--lstm-impl {self.spec}: {exc}") from None
        budget = self.config.getoption("lstm_max_examples") or DEFAULT_MAX_EXAMPLES
        result = search(impl, max_examples=budget, seed=self.config.getoption("lstm_seed"))
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

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, SearchFailure):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self):
        return self.path, None, self.name
