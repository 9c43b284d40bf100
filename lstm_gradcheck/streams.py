"""Writing to the harness's own stdout and stderr whatever state they are in.

Standard error may be closed, a full disk (``/dev/full``) or gone; progress lines,
warnings and the implementation's forwarded output must then be dropped, never turn a
verdict into a crash. Standard output carries the verdict (and the ``--json`` object):
a failure to write it is reported on stderr, and the exit status stays the verdict's.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import TextIO

__all__ = ["write", "is_terminal", "ensure_standard_fds", "forget_unwritten_stdout"]


def write(stream: TextIO | None, text: str) -> bool:
    """Write and flush ``text``; False (and nothing raised) if the stream cannot take it."""
    if stream is None:
        return False
    try:
        stream.write(text)
        stream.flush()
    except (OSError, ValueError, AttributeError):
        return False
    return True


def is_terminal(stream: TextIO | None) -> bool:
    try:
        return stream is not None and stream.isatty()
    except (OSError, ValueError, AttributeError):
        return False


def ensure_standard_fds() -> None:
    """Open /dev/null on any of fds 0, 1, 2 that is closed, so that no pipe or file the harness
    opens later takes their numbers (a child process would then receive it as its stdio)."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            opened = os.open(os.devnull, os.O_RDWR)
            if opened != fd:
                os.dup2(opened, fd)
                os.close(opened)


def forget_unwritten_stdout() -> None:
    """After stdout failed to take the verdict, drop what is still buffered, so that Python's
    exit does not fail again on it (and change the exit status)."""
    with contextlib.suppress(Exception):
        sys.stdout = open(os.devnull, "w")
