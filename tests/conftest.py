"""Fixtures shared by the command-line tests."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from lstm_gradcheck.cli import main


@pytest.fixture
def run_cli(capsys) -> Callable[..., tuple[int, str, str]]:
    """``run_cli(*argv)``: ``lstm-gradcheck`` in process; its exit status, stdout and stderr.

    argparse's usage errors exit through SystemExit; ``main`` returns the status otherwise.
    """

    def run(*argv: str) -> tuple[int, str, str]:
        try:
            code = main(list(argv))
        except SystemExit as exited:
            code = exited.code
        out, err = capsys.readouterr()
        return code, out, err

    return run
