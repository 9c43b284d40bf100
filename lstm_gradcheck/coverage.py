"""Which gradients were judged, and on how many examples: no pass with a tensor unchecked.

A search (or one report) counts, per gradient name, the examples on which the implementation
answered and the case had that tensor, on which it provided it, and on which an oracle
judged it. ``--require`` says which tensors a pass needs judged at least once: ``all``
(every tensor of every answered case), a comma-separated list of names or patterns
(``weight_hh_l*,x``), or by default every tensor the implementation provided on some case.
A requirement not met makes the verdict "nothing checked", never "pass"; with the default,
the tensors never provided are named beside the verdict.
"""

from __future__ import annotations

import fnmatch
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from lstm_gradcheck.loading import UsageError
from lstm_gradcheck.reference.layout import parse_name

__all__ = ["ALL", "Require", "parse_require", "TensorCoverage"]

ALL = "all"


@dataclass(frozen=True)
class Require:
    """What a pass needs judged: ``patterns`` (names or fnmatch patterns), ``every`` (``all``), or
    neither (the default: whatever was provided)."""

    patterns: tuple[str, ...] = ()
    every: bool = False

    def describe(self) -> str:
        if self.every:
            return "every tensor of the cases"
        return ", ".join(self.patterns) if self.patterns else "every tensor it provided"


def parse_require(text: str | None) -> Require:
    """``--require``'s value: ``all``, or names and patterns separated by commas (None: the default)."""
    if text is None:
        return Require()
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        raise UsageError("--require: expected 'all' or gradient names such as weight_hh_l0,x (patterns allowed)")
    if items == [ALL]:
        return Require(every=True)
    for item in items:
        if any(ch in item for ch in "*?["):
            continue
        try:
            parse_name(item)
        except ValueError as exc:
            raise UsageError(f"--require: {exc}") from None
    return Require(tuple(items))


@dataclass
class TensorCoverage:
    """Per gradient name, on how many answered examples the case had it, it was provided, and judged."""

    present: Counter = field(default_factory=Counter)
    provided: Counter = field(default_factory=Counter)
    judged: Counter = field(default_factory=Counter)

    def add(self, names: Iterable[str], provided: Iterable[str], judged: Iterable[str]) -> None:
        """One answered example: the case's ``names``, those ``provided``, those ``judged``."""
        self.present.update(names)
        self.provided.update(provided)
        self.judged.update(judged)

    @property
    def answered(self) -> bool:
        return bool(self.present)

    def never_provided(self) -> list[str]:
        """Tensors some answered case had that the implementation never returned."""
        return [name for name in self.present if not self.provided[name]]

    def unmet(self, require: Require) -> list[str]:
        """What ``require`` asks for that was never judged (a pattern matching no tensor stays itself).

        The default asks nothing more than what was judged: a tensor the implementation
        provided is judged or found wrong unless the case made it ill-conditioned, which
        the report names; tensors never provided are named by :meth:`never_provided`."""
        if require.every:
            return [name for name in self.present if not self.judged[name]]
        if not require.patterns:
            return []
        unmet = []
        for pattern in require.patterns:
            matched = [n for n in self.present if fnmatch.fnmatchcase(n, pattern)]
            if not matched:
                unmet.append(pattern)
            else:
                unmet += [n for n in matched if not self.judged[n]]
        return unmet

    def as_json(self) -> dict[str, dict[str, int]]:
        return {
            name: {"present": self.present[name], "provided": self.provided[name], "judged": self.judged[name]}
            for name in self.present
        }

    def line(self) -> str:
        """``judged on: name N, ...`` (examples that judged each tensor)."""
        return "judged per tensor (examples): " + ", ".join(f"{n} {self.judged[n]}" for n in self.present)

    def unmet_text(self, require: Require) -> str:
        """Why the requirement is not met, tensor by tensor."""
        parts = []
        for name in self.unmet(require):
            if name not in self.present:
                parts.append(f"{name} (no drawn case has such a tensor)")
            elif not self.provided[name]:
                parts.append(f"{name} (not provided on any of the {self.present[name]} examples that had it)")
            else:
                parts.append(f"{name} (provided on {self.provided[name]}, judged on none: ill-conditioned)")
        return f"required ({require.describe()}) but never judged: " + "; ".join(parts)
