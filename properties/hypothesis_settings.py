"""Hypothesis settings for checks of an LSTM: the shipped decorator and profile.

Each example runs the implementation, the float64 reference and an oracle, and
the first one also pays torch's start-up (about a second): a per-example
deadline would fail on it, and the too_slow health check would trip. These
settings turn both off and change nothing else: the profile loaded when the
test is decorated (its example count, derandomizing) still applies.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from hypothesis import HealthCheck, settings

__all__ = ["gradcheck_settings", "PROFILE", "RELAXED"]

#: What the settings change: no deadline, no too_slow or data_too_large health check.
RELAXED: dict[str, Any] = {
    "deadline": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
}
#: A profile with only those changes: ``settings.load_profile(PROFILE)``.
PROFILE = "lstm-gradcheck"
settings.register_profile(PROFILE, **RELAXED)

Test = TypeVar("Test", bound=Callable[..., Any])


def gradcheck_settings(test: Test) -> Test:
    """Decorate a ``@given(cases())`` test (put it above ``@given``): the current profile's
    settings, with :data:`RELAXED`'s changes."""
    return settings(settings.default, **RELAXED)(test)
