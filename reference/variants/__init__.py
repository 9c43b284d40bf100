"""Derivation variants: implementations of the contract's ``grads(case)`` that follow a
derivation as written (the seed documents', a catalogue of realistic mistakes, and
right ones of other parameter forms), registered with their source, statement,
expected verdict and, for wrong ones, their minimal failing condition and location.

    from lstm_gradcheck.reference.variants import VARIANTS, get_variant
    loss, grads = get_variant("seed004_eq3_no_recurrent_dh").grads(case)

Every variant is also an attribute of this package under its name, so the CLI
checks it directly: ``lstm-gradcheck report --impl lstm_gradcheck.reference.variants:seed004_eq3_no_recurrent_dh``.
"""

from __future__ import annotations

from lstm_gradcheck.reference.variants.convention import ANY, Convention
from lstm_gradcheck.reference.variants.derivation import Derivation
from lstm_gradcheck.reference.variants.registry import (
    VARIANTS,
    get_variant,
    right_variants,
    variant_names,
    wrong_variants,
)
from lstm_gradcheck.reference.variants.variant import BASE_CONFIG, ExpectedLocation, Minimal, Variant, build_case

__all__ = [
    "ANY",
    "BASE_CONFIG",
    "Convention",
    "Derivation",
    "ExpectedLocation",
    "Minimal",
    "VARIANTS",
    "Variant",
    "build_case",
    "get_variant",
    "right_variants",
    "variant_names",
    "wrong_variants",
]


def __getattr__(name: str) -> object:
    """``lstm_gradcheck.reference.variants.<variant name>`` is that variant's ``grads`` (for ``--impl``)."""
    if name in VARIANTS:
        return VARIANTS[name].grads
    raise AttributeError(f"module 'reference.variants' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *VARIANTS])
