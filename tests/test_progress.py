"""Progress on a terminal: shown for a part that outlasts DELAY, erased when it ends, never elsewhere."""

from __future__ import annotations

import io
import time

from lstm_gradcheck.progress import DELAY, Progress


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_long_part_is_shown_with_its_estimate_then_erased():
    stream = _Terminal()
    with Progress(stream).step("oracle screen", estimate=2.0):
        time.sleep(DELAY + 0.3)
    text = stream.getvalue()
    assert "lstm-gradcheck: oracle screen, about 2 s:" in text
    assert text.endswith("\r") and text.rstrip("\r").split("\r")[-1].strip() == ""  # the last draw erases


def test_a_short_part_and_a_pipe_see_nothing():
    stream = _Terminal()
    with Progress(stream).step("the implementation"):
        pass
    assert stream.getvalue() == ""
    piped = io.StringIO()  # not a terminal: disabled by default
    with Progress(piped).step("oracle fd", estimate=5.0):
        time.sleep(DELAY + 0.2)
    assert piped.getvalue() == ""
