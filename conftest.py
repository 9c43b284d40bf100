"""Hypothesis profiles for the whole suite, and the example count in the summary.

Choose a profile with ``HYPOTHESIS_PROFILE`` (default ``dev``; ``.ci/run`` uses ``ci``):

* ``dev``: a quick, random run while editing.
* ``ci``: derandomized (the same examples every run) and no deadline: the
  numbers of examples are fixed so the suite runs >= 1,000 examples in minutes.
* ``thorough``: many more examples, random, for hunting (pair with ``pytest -n auto``).
"""

from __future__ import annotations

import importlib.util
import os

from hypothesis import settings

from lstm_gradcheck.properties.counting import example_counts
from lstm_gradcheck.properties.hypothesis_settings import RELAXED

if os.environ.get("PYTEST_XDIST_WORKER"):
    # Each xdist worker takes one core: two workers each running 2-thread BLAS (or torch)
    # on two cores oversubscribe them, and spinning BLAS threads then slow small GEMMs 50x.
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # read by torch when it starts its pool
    from threadpoolctl import threadpool_limits

    _BLAS_LIMIT = threadpool_limits(limits=1)

settings.register_profile("dev", max_examples=25, **RELAXED)
settings.register_profile("ci", max_examples=200, derandomize=True, print_blob=True, **RELAXED)
settings.register_profile("thorough", max_examples=2500, print_blob=True, **RELAXED)
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "dev")
settings.load_profile(PROFILE)

_WORKER_TOTALS: list[dict[str, int]] = []


def pytest_sessionfinish(session, exitstatus):
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker: hand the counts to the controller
        workeroutput["hypothesis_examples"] = example_counts()


if importlib.util.find_spec("xdist") is not None:  # pytest rejects hooks no plugin declares

    def pytest_testnodedown(node, error):
        counts = getattr(node, "workeroutput", {}).get("hypothesis_examples")
        if counts:
            _WORKER_TOTALS.append(counts)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    totals: dict[str, int] = dict(example_counts())
    for counts in _WORKER_TOTALS:
        for name, n in counts.items():
            totals[name] = totals.get(name, 0) + n
    if not totals:
        return
    terminalreporter.write_sep("-", f"Hypothesis examples (profile {PROFILE!r})")
    for name in sorted(totals):
        terminalreporter.write_line(f"{totals[name]:7d}  {name}")
    terminalreporter.write_line(f"{sum(totals.values()):7d}  examples in {len(totals)} properties")
