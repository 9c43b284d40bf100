"""Every verdict and status word of the contract's JSON and reports, defined once.

The bottom of the project, so the reference's variants, the oracles, the report,
search and the command line all spell them the same way.
"""

from __future__ import annotations

__all__ = [
    "PASS",
    "FAIL",
    "SKIPPED",
    "NOTHING_CHECKED",
    "ERROR",
    "INTERRUPTED",
    "OK",
    "MISMATCH",
    "NOT_PROVIDED",
    "SUPPORTED",
    "UNSUPPORTED",
    "FAILED",
]

#: Verdicts: of an oracle (pass, fail, skipped), a report or search (pass, fail, nothing checked), a
#: command that could not run (error), a search stopped early (interrupted), a variant (pass, fail).
PASS, FAIL, SKIPPED, NOTHING_CHECKED = "pass", "fail", "skipped", "nothing checked"
ERROR, INTERRUPTED = "error", "interrupted"
#: A tensor's status in a check.
OK, MISMATCH, NOT_PROVIDED = "ok", "mismatch", "not provided"
#: An implementation's status on one call: it returned a result, refused the case, or failed.
SUPPORTED, UNSUPPORTED, FAILED = "ok", "unsupported", "failed"
