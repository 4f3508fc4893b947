"""Which language a text is in: French or English, the two the product speaks."""

from __future__ import annotations

import re
from functools import cache

from qa.text import ENGLISH_WORDS, FRENCH_WORDS
from qa.types import Language

NAMES = {"fr": {"fr": "français", "en": "anglais"}, "en": {"fr": "French", "en": "English"}}


@cache
def _detector():
    from lingua import Language as L
    from lingua import LanguageDetectorBuilder

    return LanguageDetectorBuilder.from_languages(L.ENGLISH, L.FRENCH).build()


def detect_language(text: str, default: Language = "en") -> Language:
    """Return "fr" or "en" for `text`; `default` when the text gives no evidence either way.

    >>> detect_language("Combien de modèles dérivés ?")
    'fr'
    >>> detect_language("How many derived models?")
    'en'
    """
    if not any(ch.isalpha() for ch in text):
        return default
    values = _detector().compute_language_confidence_values(text)
    if not values:
        return default
    best = values[0]
    guess: Language = "fr" if best.language.name == "FRENCH" else "en"
    if best.value >= 0.75:
        return guess
    # short or informal text: let the little words decide, e.g. "c koi le nom du modele ?"
    words = re.findall(r"[a-zà-ÿ]+", text.lower())
    fr = sum(w in FRENCH_WORDS for w in words)
    en = sum(w in ENGLISH_WORDS for w in words)
    if fr != en:
        return "fr" if fr > en else "en"
    return guess if best.value >= 0.6 else default
