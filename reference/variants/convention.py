"""The setting a derivation was written for, and the cases outside it.

A seed derives the LSTM for one setting (seed 001: h = o·s, a loss at every
step, no final-state term; seed 003: softmax cross-entropy on the last step
only; ...). Its derivation is judged only inside that setting: a case outside
it raises ``NotImplementedError``, which the harness counts as unsupported,
never as wrong (contract: "What an implementation returns").
"""

from __future__ import annotations

from dataclasses import dataclass

from lstm_gradcheck.reference.config import LSTMConfig

__all__ = ["Convention", "ANY"]


@dataclass(frozen=True)
class Convention:
    """Allowed values of the config fields a derivation depends on (``None``: any).

    Attributes:
        cell_output, loss, loss_at: allowed values of those config fields.
        final_state, peepholes, bidirectional, coupled: allowed values of those booleans.
        projection: allowed values of ``config.proj_size > 0``.
        note: what the setting is, for the error message and the docs.
    """

    cell_output: tuple[str, ...] | None = None
    loss: tuple[str, ...] | None = None
    loss_at: tuple[str, ...] | None = None
    final_state: tuple[bool, ...] | None = None
    peepholes: tuple[bool, ...] | None = None
    projection: tuple[bool, ...] | None = None
    bidirectional: tuple[bool, ...] | None = None
    coupled: tuple[bool, ...] | None = None
    note: str = "any case of the contract"

    #: The fields a convention may constrain (``projection`` stands for ``proj_size > 0``).
    FIELDS = ("cell_output", "loss", "loss_at", "final_state", "peepholes", "projection", "bidirectional", "coupled")

    def violations(self, config: LSTMConfig) -> list[str]:
        """The fields of ``config`` outside this convention, as ``field=value`` strings."""
        out = []
        for field in self.FIELDS:
            allowed = getattr(self, field)
            value = config.proj_size > 0 if field == "projection" else getattr(config, field)
            if allowed is not None and value not in allowed:
                out.append(f"proj_size={config.proj_size}" if field == "projection" else f"{field}={value}")
        return out

    def covers(self, config: LSTMConfig) -> bool:
        return not self.violations(config)

    def require(self, config: LSTMConfig) -> None:
        """Raise ``NotImplementedError`` for a case outside the convention."""
        bad = self.violations(config)
        if bad:
            raise NotImplementedError(f"outside this derivation's setting ({self.note}): {', '.join(bad)}")


ANY = Convention()
