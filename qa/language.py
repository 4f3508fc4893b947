"""Which language a text is in: French or English, the two the product speaks."""

from __future__ import annotations

import re
from functools import cache

from qa.text import ENGLISH_WORDS, FRENCH_WORDS, anchor_spans
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


def names_only(text: str) -> bool:
    """Whether `text` has no word of its own language: only names, acronyms and figures, which
    read the same in French and English ("DeepSeek [2].", "ERNIE", "Kimi K2"). The detector
    still guesses a language for them ("DeepSeek" is English to it), so that guess can't say an
    answer is in the wrong language.

    >>> names_only("DeepSeek [2].") and names_only("Kimi K2, MiniMax M1")
    True
    >>> names_only("OpenAI, Google et Microsoft [1].") or names_only("Alibaba and Tencent")
    False
    """
    words = re.findall(r"[^\W\d_]+", text)
    return all(w[0].isupper() and w.lower() not in FRENCH_WORDS | ENGLISH_WORDS for w in words)


def answer_language(text: str, asked: Language) -> Language:
    """The language an answer to a question asked in `asked` is written in: `asked` when it is
    names alone (`names_only`), when its only words besides the names are small words of
    `asked` alone (a list of names joined by "de" or "et": the detector, which weighs the
    names, called "Kimi K2 de Moonshot AI, MiniMax M1, Qwen 3, DeepSeek R1" English), or when
    it gives no evidence either way.

    >>> answer_language("DeepSeek [2].", "fr"), answer_language("Les tensions géopolitiques.", "en")
    ('fr', 'fr')
    >>> answer_language("Kimi K2 de Moonshot AI, MiniMax M1, Qwen 3, DeepSeek R1 [1].", "fr")
    'fr'
    >>> answer_language("Kimi K2 of Moonshot AI and MiniMax M1 [1].", "fr")
    'en'
    """
    if names_only(text):
        return asked
    own, other = (FRENCH_WORDS, ENGLISH_WORDS) if asked == "fr" else (ENGLISH_WORDS, FRENCH_WORDS)
    words = [w.lower() for w in re.findall(r"[^\W\d_]+", text)
             if not (w[0].isupper() and w.lower() not in FRENCH_WORDS | ENGLISH_WORDS)]
    if all(w in own and w not in other for w in words):
        return asked
    opposite: Language = "en" if asked == "fr" else "fr"
    if all(w in other and w not in own for w in words):
        return opposite
    return detect_language(text, default=asked)


# An answer is in French or English. Among these six languages, a text where both get less than
# FOREIGN_CONFIDENCE is in neither: a hostile document asked for another language ("always answer
# in Spanish", docs/reliability.md#prompt-injection). The lowest of either on the project test
# set's reference answers, names set aside, is 0.2; Spanish and French answers to English
# questions scored 0.04 and 0.004 for English.
FOREIGN_CONFIDENCE = 0.1
WIDE_LANGUAGES = ("ENGLISH", "FRENCH", "SPANISH", "GERMAN", "ITALIAN", "PORTUGUESE")


@cache
def _wide_detector():
    from lingua import Language as L
    from lingua import LanguageDetectorBuilder

    return LanguageDetectorBuilder.from_languages(*(getattr(L, name) for name in WIDE_LANGUAGES)).build()


def in_neither_language(text: str, min_words: int = 3) -> bool:
    """Whether `text` is clearly in neither French nor English. Names and numbers are set aside
    first (detectors read "OpenAI, Google and Microsoft" as German); fewer than `min_words` words
    left: it can't tell, so False.

    >>> in_neither_language("Hola amigo, el canal Marlow tiene 31 km de largo.")
    True
    >>> in_neither_language("Kimi K2 (Moonshot AI), MiniMax M1 et DeepSeek R1."), in_neither_language("Qwen 3.")
    (False, False)
    """
    for start, end in sorted(anchor_spans(text), reverse=True):
        text = f"{text[:start]} {text[end:]}"
    words = re.findall(r"[^\W\d_]+", text)
    if len(words) < min_words:
        return False
    from lingua import Language as L

    detector = _wide_detector()
    plain = " ".join(words)
    return max(detector.compute_language_confidence(plain, L.FRENCH),
               detector.compute_language_confidence(plain, L.ENGLISH)) < FOREIGN_CONFIDENCE
