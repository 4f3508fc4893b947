"""Text helpers the stages share: sentences, folding, words, stems, names and numbers.

Pure functions over strings. Chunking, retrieval, evidence, citations, prompting, the reader, the
pipeline's decisions and the measurement code all import them from here, downward; this module
imports nothing from `qa` but its types.

    split_sentences  sentence spans: pysbd, lines as hard boundaries
    fold             "L’État" -> "l'etat": case, accents, apostrophes
    normalize        fold, and "100 000" -> "100000": how answers and evidence are matched
    tokenize         content-word stems for BM25
    anchors          names, acronyms and numbers: the words that survive translation
    numbers          every number, separators and multipliers resolved ("100k" = "100 000")
    figures          standalone figures, not the digits of names ("R1") or versions ("Qwen 3")
    negated          whether a clause says "not" (« ne… pas », "never", « ni »), not "not only"
    clauses          a sentence's clauses: what one "not" governs
"""

from __future__ import annotations

import re
import unicodedata
from functools import cache

from qa.types import Chunk, Language

_WORD = re.compile(r"\w+", re.UNICODE)

# Function words: the language detector's vote on short questions (`qa.language`), and words
# that are not names though capitalised at a question's start (`qa.ui`).
FRENCH_WORDS = frozenset(
    "le la les un une des du de au aux et ou est sont quel quelle quels quelles qui que quoi "
    "koi combien pourquoi comment quand où dans sur pour par avec ce cette ces il elle ils "
    "elles son sa ses leur leurs pas ne".split()
)
ENGLISH_WORDS = frozenset(
    "the a an of and or is are was were what which who whom why how when where in on for by "
    "with this that these those it its they their not does did do has have".split()
)


@cache
def _segmenter(language: Language):
    import pysbd

    return pysbd.Segmenter(language=language, clean=False)


def split_sentences(text: str, language: Language) -> list[tuple[int, int]]:
    """Sentence spans `(start, end)` of `text`, trimmed of surrounding whitespace.

    Lines are hard boundaries (a title or a paragraph never runs into the next one).

    >>> text = "Il y a 100 000 modèles. Qwen domine.\\nTitre"
    >>> [text[s:e] for s, e in split_sentences(text, "fr")]
    ['Il y a 100 000 modèles.', 'Qwen domine.', 'Titre']
    """
    spans: list[tuple[int, int]] = []
    line_start = 0
    for line in text.split("\n"):
        if line.strip():
            cursor = 0
            for sentence in _segmenter(language).segment(line):
                piece = sentence.strip()
                if not piece:
                    continue
                found = line.find(piece, cursor)
                if found < 0:  # the segmenter altered the text: fall back to the rest of the line
                    found = cursor
                    piece = line[cursor:].strip()
                    if not piece:
                        break
                    found = line.index(piece, cursor)
                spans.append((line_start + found, line_start + found + len(piece)))
                cursor = found + len(piece)
        line_start += len(line) + 1
    return spans


def sentence_spans(chunk: Chunk) -> list[tuple[int, int]]:
    """The sentences of a passage, as evidence and retrieval read them (the whole passage if it
    has none)."""
    return split_sentences(chunk.text, chunk.language) or [(0, len(chunk.text))]


def fold(text: str) -> str:
    """Lower-case, strip accents and unify apostrophes.

    >>> fold("L’État Français")
    "l'etat francais"
    """
    text = text.replace("\u2019", "'").replace("\u2018", "'").replace("\u02bc", "'")
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def folded_words(text: str) -> set[str]:
    """The distinct words of `text`, folded.

    >>> sorted(folded_words("L’État et l'état"))
    ['et', 'etat', 'l']
    """
    return set(_WORD.findall(fold(text)))


_GROUPED_NUMBER = re.compile(r"(?<![\d.,])\d{1,3}(?:[ ,\u00a0\u202f]\d{3})+(?!\d)")


def normalize(text: str) -> str:
    """Fold case, accents and apostrophes, drop thousands separators, collapse whitespace: the
    form in which answers and evidence spans are matched.

    >>> normalize("Plus de 100\u202f000 modèles,  l’État")
    "plus de 100000 modeles, l'etat"
    >>> normalize("100,000 models") == normalize("100 000 models") == "100000 models"
    True
    >>> normalize("2,5 % en 2024")
    '2,5 % en 2024'
    """
    text = fold(text)
    text = _GROUPED_NUMBER.sub(lambda m: re.sub(r"[ ,\u00a0\u202f]", "", m.group(0)), text)
    return " ".join(text.split())


@cache
def _stopwords() -> frozenset[str]:
    from bm25s.stopwords import STOPWORDS_EN, STOPWORDS_FRENCH

    return frozenset(fold(w) for w in (*STOPWORDS_EN, *STOPWORDS_FRENCH))


@cache
def _stemmer(language: Language):
    import Stemmer

    return Stemmer.Stemmer("french" if language == "fr" else "english")


def tokenize(text: str, language: Language) -> list[str]:
    """Content-word stems for BM25: folded, stop words dropped, snowball-stemmed.

    >>> tokenize("Les modèles dérivés de Qwen", "fr")
    ['model', 'deriv', 'qwen']
    """
    words = [w for w in _WORD.findall(fold(text).replace("'", " ")) if w not in _stopwords()]
    return _stemmer(language).stemWords(words)


def _unaccented(text: str) -> str:
    """`text` without its accents, case kept: "Corée du Sud" -> "Coree du Sud"."""
    return "".join(ch for ch in unicodedata.normalize("NFKD", text) if not unicodedata.combining(ch))


@cache
def _country_names(language: Language) -> tuple[re.Pattern, dict[str, str]]:
    """A pattern of the country names the other language writes differently, and the name
    `language` gives each (CLDR's territory names, through Babel): "China" -> "Chine"."""
    from babel import Locale

    ours = Locale(language).territories
    theirs = Locale("en" if language == "fr" else "fr").territories
    names: dict[str, str] = {}
    for code, name in theirs.items():
        if not (len(code) == 2 and code.isalpha()) or code not in ours:
            continue
        name, own = (re.sub(r"\s*\(.*\)", "", n).strip() for n in (name, ours[code]))
        if fold(name) == fold(own):
            continue
        names.setdefault(name, own)
        names.setdefault(_unaccented(name), own)  # "Etats-Unis" too
    written = sorted(names, key=len, reverse=True)  # "Papua New Guinea" before "Guinea"
    pattern = re.compile(r"(?<![\w-])(?:" + "|".join(re.escape(n).replace(r"\ ", r"\s+").replace("\u2019", "['\u2019]")
                                                 for n in written) + r")(?![\w-])")
    return pattern, {" ".join(n.split()).replace("'", "\u2019"): own for n, own in names.items()}


def with_country_names(text: str, language: Language) -> str:
    """`text` with the country names of the other language written as `language` writes them,
    so that a name is matched across languages; capitalised names only (not "turkey", "china").

    >>> with_country_names("China and the United States.", "fr")
    'Chine and the États-Unis.'
    >>> with_country_names("la Chine et les Etats-Unis, pas la chine en porcelaine", "en")
    'la China et les United States, pas la chine en porcelaine'
    """
    pattern, own = _country_names(language)
    return pattern.sub(lambda m: own[" ".join(m.group(0).split()).replace("'", "\u2019")], text)


def same_name(name: str, word: str) -> bool:
    """Whether the folded `word` writes the folded `name`, allowing for another language's or an
    adjective's ending: a shared start of five letters, or of all but the last letter for shorter
    names.

    >>> same_name("chine", "china"), same_name("chine", "chinois"), same_name("allemagne", "allemand")
    (True, True, True)
    >>> same_name("japon", "jamais")
    False
    """
    return word.startswith(name[:min(5, len(name) - 1)])


_ANCHOR = re.compile(r"(?<!^)(?<![.!?]\s)\b(?:[A-Z][\w-]*|\w*\d\w*)")


def anchors(text: str) -> set[str]:
    """Names, acronyms and numbers (folded): the words that survive translation.

    The first word of a sentence doesn't count as a name.

    >>> sorted(anchors("When was the US AI Action Plan published in July 2025?"))
    ['2025', 'action', 'ai', 'july', 'plan', 'us']
    """
    words = set()
    for start, end in anchor_spans(text):
        words.update(_WORD.findall(fold(text[start:end])))
    return words


def anchor_spans(text: str) -> list[tuple[int, int]]:
    """Where `text` has a name, an acronym or a number, as written (`anchors`, unfolded).

    >>> text = "En 2025, Kimi K2 de Moonshot AI."
    >>> [text[s:e] for s, e in anchor_spans(text)]
    ['2025', 'Kimi', 'K2', 'Moonshot', 'AI']
    """
    return [m.span() for m in _ANCHOR.finditer(text)]


_NUMBER = re.compile(r"\d+(?:[\s\u00a0\u202f.,]\d{3})*(?:[.,]\d+)?")
# "100, 000": a figure whose groups a model copied apart ("100 000" read as "100," and "000").
_SPLIT_GROUPS = re.compile(r"(?<![\d.,])\d{1,3}(?:, \d{3})+(?![\d.,]?\d)")
# A number with a multiplier word or suffix: "100k", "100 thousand", "1,5 million", "2 milliards".
_SCALED = re.compile(r"(?<![\w.,])(\d+(?:[.,]\d+)?)\s*(k|thousand|mille|millions?|milliards?|billions?|bn)(?!\w)",
                     re.IGNORECASE)
_SCALE = {"k": 10**3, "thousand": 10**3, "mille": 10**3, "million": 10**6, "millions": 10**6,
          "milliard": 10**9, "milliards": 10**9, "billion": 10**9, "billions": 10**9, "bn": 10**9}


# Numbers written in words, French and English. "un", "une" and "one" count only inside a longer
# number ("vingt et un", "one hundred"): alone they are mostly articles and pronouns.
_UNITS = {
    "un": 1, "une": 1, "deux": 2, "trois": 3, "quatre": 4, "cinq": 5, "six": 6, "sept": 7, "huit": 8,
    "neuf": 9, "dix": 10, "onze": 11, "douze": 12, "treize": 13, "quatorze": 14, "quinze": 15,
    "seize": 16, "vingt": 20, "vingts": 20, "trente": 30, "quarante": 40, "cinquante": 50,
    "soixante": 60, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "seven": 7,
    "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14,
    "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19, "twenty": 20,
    "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90,
}
_MULTIPLIERS = {"cent": 100, "cents": 100, "hundred": 100, "mille": 1000, "thousand": 1000,
                "million": 10**6, "millions": 10**6, "milliard": 10**9, "milliards": 10**9,
                "billion": 10**9, "billions": 10**9}
_NUMBER_WORD = "|".join(sorted((*_UNITS, *_MULTIPLIERS), key=len, reverse=True))
_WORDS_NUMBER = re.compile(
    rf"(?<![\w-])(?:{_NUMBER_WORD})(?:(?:-|\s+|\s+(?:et|and)\s+|-et-)(?:{_NUMBER_WORD}))*(?![\w-])",
    re.IGNORECASE)


def number_words(text: str) -> set[str]:
    """The numbers `text` writes in words, as digits: "quatre" and "four" are "4", "dix-huit"
    "18", "quatre-vingt-dix" "90", "two hundred" "200", "deux millions" "2000000". A lone "un",
    "une" or "one" is not counted, nor "cent" in "pour cent".

    >>> sorted(number_words("Quatre représentants, dix-huit ans, vingt et un jours, un seul."), key=int)
    ['4', '18', '21']
    >>> sorted(number_words("nine nations, two hundred and five, quatre-vingt-dix, 30 pour cent"), key=int)
    ['9', '90', '205']
    """
    found = set()
    for match in _WORDS_NUMBER.finditer(text):
        words = re.findall(r"[^\W\d_]+", match.group(0).lower())
        if words in (["un"], ["une"], ["one"]):
            continue
        if words[0] in ("cent", "cents") and text[:match.start()].lower().rstrip().endswith(("pour", "per")):
            continue
        total = current = 0
        previous = None
        for word in words:
            if word in ("et", "and"):
                continue
            if word in _UNITS:
                value = _UNITS[word]
                if value == 20 and previous == 4:  # quatre-vingt(s)
                    current += 76
                else:
                    current += value
            elif _MULTIPLIERS[word] == 100:
                current = max(current, 1) * 100
            else:
                total += max(current, 1) * _MULTIPLIERS[word]
                current = 0
            previous = _UNITS.get(word)
        found.add(str(total + current))
    return found


def numbers(text: str) -> set[str]:
    """Numbers with thousands separators removed, so "100 000", "100,000" and "100000" agree, and
    multipliers applied, so "100k", "100 thousand" and "1,5 million" agree with their digits;
    numbers in words count as their digits (`number_words`: "quatre" is "4").

    >>> sorted(numbers("100 000 modèles, 100,000 models, le 14e plan, 2,5 %"))
    ['100000', '14', '25']
    >>> sorted(numbers("100k models, 100 thousand, 1.5 million, 2 milliards"))
    ['100000', '1500000', '2000000000']
    >>> sorted(numbers("quatre représentants, four representatives, 4 sièges"))
    ['4']
    >>> sorted(numbers("More than 100, 000 derivative models; in 2024, 100 of them"), key=int)
    ['100', '2024', '100000']
    """
    found = set()

    def scaled(match: re.Match) -> str:
        found.add(str(round(float(match.group(1).replace(",", ".")) * _SCALE[match.group(2).lower()])))
        return " "

    rest = _SPLIT_GROUPS.sub(lambda m: m.group(0).replace(", ", ""), _SCALED.sub(scaled, text))
    for match in _NUMBER.finditer(rest):
        found.add(re.sub(r"[\s\u00a0\u202f.,]", "", match.group(0)))
    return found | number_words(rest)


_ORDINAL = r"(?:e|er|ème|th|st|nd|rd)?(?!\w)"
_FIGURE = re.compile(rf"(?<![^\W\d_])(?:\d{{1,3}}(?:[\s\u00a0\u202f.,]\d{{3}})+(?!\d)|\d+(?:[.,]\d+)?){_ORDINAL}")
_VERSION = re.compile(r"[A-Z][\w-]*\s$")


def figure_spans(text: str) -> list[tuple[int, int]]:
    """Where `text` states a figure: standalone numbers as written ("100 000", "14e", "2,5"), not
    the digits of names such as "R1" or "K2", nor a version of one or two digits after a name
    ("Qwen 3").

    >>> text = "DeepSeek R1 : 100 000 modèles, Qwen 3, 14e plan."
    >>> [text[s:e] for s, e in figure_spans(text)]
    ['100 000', '14e']
    """
    spans = []
    for m in _FIGURE.finditer(text):
        if len(re.sub(r"\D", "", m.group(0))) <= 2 and _VERSION.search(text[max(0, m.start() - 30):m.start()]):
            continue
        spans.append(m.span())
    return spans


def figures(text: str) -> set[str]:
    """The digits of each figure of `text` (`figure_spans`), separators and suffixes removed.

    >>> sorted(figures("DeepSeek R1 et Kimi K2 : 100 000 modèles en juillet 2025, Qwen 3, 14e plan."))
    ['100000', '14', '2025']
    """
    return {re.sub(r"\D", "", text[s:e]) for s, e in figure_spans(text)}


_MARKUP = re.compile(r"<(script|style)\b[^>]*>.*?</\1\s*>|</?[A-Za-z][^<>]{0,300}>", re.IGNORECASE | re.DOTALL)


def without_markup(text: str) -> str:
    """`text` without HTML tags (and script or style bodies): a model that copies a document's
    markup into its answer states no fact by it.

    >>> without_markup('<img src=x onerror=alert(1)> <b>4321</b> <script>alert(1)</script> [1]')
    ' 4321  [1]'
    """
    return _MARKUP.sub("", text)


# A grammatical negation, in folded text: French « ne/n' … pas, plus, jamais, rien, aucun… » (not
# « ne … que », "only"), « aucun », « jamais », « ni », « non » before a word; English "not",
# "n't", "never", "no", "none", "nor"… "Not only" / « non seulement » / « pas seulement » add, not deny.
_NEGATION = re.compile(
    r"\b(?:ne\s+|n')(?:[\w'-]+\s+){0,3}?(?:pas|plus|jamais|rien|aucune?s?|guere|point|nullement|personne)\b"
    r"|\b(?:aucune?s?|jamais|ni|nullement|non(?=\s))\b"
    r"|\b(?:not|never|no|none|nobody|nothing|neither|nor|cannot)\b|n't\b")
_NOT_NEGATION = re.compile(r"\b(?:not\s+(?:only|just|merely)|non\s+seulement|pas\s+seulement|pas\s+uniquement)\b")
# Words that deny without a grammatical negation: "China lacks the chips" says what « la Chine
# n'a pas accès aux puces » says. Folded stems, matched at a word's start.
_PRIVATIVE = re.compile(
    r"\b(?:lack|without|absen|missing|fail|unable|refus|prevent|banned|bans\b|deni|deny|differ|shortage"
    r"|exempt|instead|rather than|manqu|sans\b|faute\b|penuri|interdi|empech|incapab|impossib|dispens"
    r"|au lieu|plutot que|diffe|forbid|prohibit|proscri|illeg|illicit|barred)")


def negated(text: str) -> bool:
    """Whether `text` (a clause, any language) says "not".

    >>> negated("La tentative de médiation n'est pas exigée en cas de violences")
    True
    >>> negated("Elle n'est possible que dans onze tribunaux."), negated("Not only Qwen, but also ERNIE.")
    (False, False)
    >>> negated("Mediation isn't required"), negated("ni lorsque la demande est présentée par les deux parents")
    (True, True)
    """
    folded = _NOT_NEGATION.sub(" ", fold(text))
    return bool(_NEGATION.search(folded))


def denies(text: str) -> bool:
    """Whether `text` says "not", or denies through a word such as "lack", "without" or « sans ».

    >>> denies("China lacks the most advanced chips"), denies("China has the most advanced chips")
    (True, False)
    >>> denies("Pharmacists are forbidden to form partnerships")  # « cannot form » says it
    True
    """
    return negated(text) or bool(_PRIVATIVE.search(fold(text)))


_CLAUSE = re.compile(r"(?<!\d),|,(?!\d)|[;:()]"
                     r"|\s(?:mais|but|tandis que|whereas|alors que|bien que|although|though|while)\s", re.IGNORECASE)
_AND = re.compile(r"\s(?:and|et)\s", re.IGNORECASE)


def clauses(text: str, at_and: bool = True) -> list[str]:
    """The clauses of a sentence: its pieces between commas, semicolons, colons, brackets and
    "but"-like words, and with `at_and` "and", each with three words or more (shorter ones join
    the piece before).

    >>> clauses("Bien que la Chine n'ait pas accès aux puces, l'open sourcing permet d'entraîner les modèles.")
    ["Bien que la Chine n'ait pas accès aux puces", "l'open sourcing permet d'entraîner les modèles."]
    >>> clauses("Qwen compte plus de 100,000 modèles dérivés, surpassant Llama.")
    ['Qwen compte plus de 100,000 modèles dérivés surpassant Llama.']
    >>> clauses("A technician is a professional and often does not work under a pharmacist.")
    ['A technician is a professional', 'often does not work under a pharmacist.']
    >>> clauses("The gap between and among classes is open.", at_and=False)
    ['The gap between and among classes is open.']
    """
    pieces = [p.strip() for piece in _CLAUSE.split(text) for p in (_AND.split(piece) if at_and else [piece])]
    out: list[str] = []
    for piece in pieces:
        if len(piece.split()) >= 3 or not out:
            out.append(piece)
        elif piece:
            out[-1] = f"{out[-1]} {piece}"
    return [p for p in out if p] or [text]
