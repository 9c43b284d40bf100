"""pytest plugin: ``pytest --lstm-impl mypkg.lstm:grads`` adds a search test to the session.

Installed with lstm-gradcheck (entry point ``pytest11``); inert unless
``--lstm-impl`` is given. The added test fails with the shrunk case's full
report and a ready-to-run ``lstm-gradcheck report`` command line.
"""

from __future__ import annotations

import pytest

from lstm_gradcheck.implementation import UsageError, load_implementation

__all__ = ["pytest_addoption", "pytest_collection_modifyitems", "SearchItem"]


class SearchFailure(AssertionError):
    """The search found a case where the implementation is wrong."""


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("lstm-gradcheck", "search an LSTM implementation for wrong gradients")
    group.addoption(
        "--lstm-impl",
        action="append",
        default=[],
        metavar="SPEC",
        help="search this implementation (package.module:function or path/to/file.py:function); repeatable",
    )
    group.addoption("--lstm-max-examples", type=int, default=200, metavar="N", help="cases per search (default 200)")
    group.addoption("--lstm-seed", type=int, default=0, metavar="S", help="the searches' seed (default 0)")


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    for spec in config.getoption("lstm_impl"):
        items.append(SearchItem.from_parent(session, name=f"lstm-gradcheck-search[{spec}]", spec=spec))


class SearchItem(pytest.Item):
    """One ``lstm-gradcheck search`` of one implementation, as a test."""

    def __init__(self, *, spec: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.spec = spec

    def runtest(self) -> None:
        from lstm_gradcheck.render import render_report  # noqa: PLC0415
        from lstm_gradcheck.report import build_report  # noqa: PLC0415
        from lstm_gradcheck.search import report_command, search  # noqa: PLC0415

        impl = load_implementation(self.spec)
        result = search(
            impl, max_examples=self.config.getoption("lstm_max_examples"), seed=self.config.getoption("lstm_seed")
        )
        if result.found:
            import io  # noqa: PLC0415

            text = io.StringIO()
            render_report(build_report(result.case, impl), text, rich=False)
            raise SearchFailure(
                f"found a failing case after {result.examples} examples ({result.unsupported} unsupported); "
                f"shrunk:\n{text.getvalue()}reproduce: {report_command(result.case, self.spec)}"
            )

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, (SearchFailure, UsageError)):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self):
        return self.path, None, self.name
