"""Every registered derivation variant by name: the subjects of the regression suite.

``VARIANTS`` holds, in order, the seeds' own derivations
(:mod:`lstm_gradcheck.reference.variants.seeds`), the catalogue of wrong ones
(:mod:`lstm_gradcheck.reference.variants.catalogue`), the right ones of other forms
(:mod:`lstm_gradcheck.reference.variants.equivalent`) and the LSTM family's, right and
wrong (:mod:`lstm_gradcheck.reference.variants.family_catalogue`).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from lstm_gradcheck.reference.variants.catalogue import CATALOGUE
from lstm_gradcheck.reference.variants.equivalent import EQUIVALENT
from lstm_gradcheck.reference.variants.family_catalogue import FAMILY_VARIANTS
from lstm_gradcheck.reference.variants.seeds import SEED_VARIANTS
from lstm_gradcheck.reference.variants.variant import Variant
from lstm_gradcheck.reference.verdicts import FAIL, PASS

__all__ = ["VARIANTS", "get_variant", "variant_names", "right_variants", "wrong_variants"]


def _by_name(variants: tuple[Variant, ...]) -> Mapping[str, Variant]:
    out: dict[str, Variant] = {}
    for variant in variants:
        if variant.name in out:
            raise ValueError(f"two derivation variants are named {variant.name!r}")
        out[variant.name] = variant
    return MappingProxyType(out)


VARIANTS: Mapping[str, Variant] = _by_name((*SEED_VARIANTS, *CATALOGUE, *EQUIVALENT, *FAMILY_VARIANTS))


def variant_names() -> tuple[str, ...]:
    return tuple(VARIANTS)


def get_variant(name: str) -> Variant:
    """The variant called ``name``; ``KeyError`` lists the registered names."""
    try:
        return VARIANTS[name]
    except KeyError:
        raise KeyError(f"no derivation variant {name!r}; registered: {', '.join(VARIANTS)}") from None


def right_variants() -> tuple[Variant, ...]:
    return tuple(v for v in VARIANTS.values() if v.expected == PASS)


def wrong_variants() -> tuple[Variant, ...]:
    return tuple(v for v in VARIANTS.values() if v.expected == FAIL)
