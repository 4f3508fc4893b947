"""Citations: parse `[n]` markers, check each against its passage, and find the supporting span.

A citation survives only when its passage supports the sentence it is attached to:
every number in the sentence appears in the passage, and the sentence (or, for a short
answer, the question plus the sentence) is close to one of the passage's sentences, by
meaning (multilingual embeddings, so an English answer can be checked against French text)
or by shared content words. That sentence of the passage becomes the citation's quote.
"""

from __future__ import annotations

import logging
import re
from bisect import bisect
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from qa.text import (
    anchor_spans,
    anchors,
    clauses,
    denies,
    fold,
    folded_words,
    negated,
    number_words,
    numbers,
    same_name,
    sentence_spans,
    split_sentences,
    tokenize,
    with_country_names,
)
from qa.types import Chunk, Citation, Language, Passage

log = logging.getLogger(__name__)

_MARKER = re.compile(r"\[\s*(?:(?:source|src)s?\s*)?(\d+(?:\s*(?:,|;|et|and|-)\s*\d+)*)\s*\]",
                     re.IGNORECASE)

SEMANTIC_THRESHOLD = 0.5
ANCHORED_THRESHOLD = 0.35
LEXICAL_THRESHOLD = 0.6
SHORT_CLAIM_WORDS = 6
# What an answer adds to the question (its content words that the question doesn't have) must
# be in the passage it cites, when both are in one language: at least this share of those words.
# Without it, "Le mridang est l'instrument joué par Biyat Edaber [2]" passed on the question's
# words while the passage names the imzad. Words any answer may add don't count.
NEW_WORDS_FOUND = 0.5
_ANSWER_WORDS = "oui non yes no d’après selon according sources source passage document documents"

_WORDS = re.compile(r"\w+")


# Roles a question can ask who holds: the sources answer "Who founded Moonshot AI?" only in a
# sentence that speaks of founding. Without it, "Kimi K2 de Moonshot AI" was read as "Moonshot AI
# was founded by Kimi K2" (the article's near miss; folded text, French and English forms).
ROLES = (
    re.compile(r"\b(?:co-?)?(?:found(?:ed|ers?|ing)|fond(?:e|ee|es|ees|ateurs?|atrices?|a|erent))\b"),
    re.compile(r"\b(?:ceo|pdg|chief executive|directeur general|directrice generale|president-directeur)\b"),
)


def roles_asked(question: str) -> list[re.Pattern]:
    """The `ROLES` a question asks about.

    >>> len(roles_asked("Who founded Moonshot AI?")), len(roles_asked("Qui a fondé Moonshot AI ?"))
    (1, 1)
    >>> roles_asked("Who made Qwen?")
    []
    """
    folded = fold(question)
    return [role for role in ROLES if role.search(folded)]


def names_the_roles_asked(question: str, texts: Sequence[str]) -> bool:
    """Whether `texts` (in any language) speak of every role the question asks who holds: a
    claim's quote must, and so must a fallback quote (`qa.pipeline`).

    >>> names_the_roles_asked("Qui a fondé Moonshot AI ?", ["Kimi K2 de Moonshot AI est en tête."])
    False
    >>> names_the_roles_asked("Who founded Alibaba?", ["Jack Ma a fondé Alibaba en 1999."])
    True
    """
    folded = fold(" ".join(texts))
    return all(role.search(folded) for role in roles_asked(question))


Embed = Callable[[list[str]], np.ndarray]

# A third person's pronoun among a sentence's first PRONOUN_WORDS words: the sentence speaks of
# someone named before it ("Sa thèse portait sur…", "Ce séjour lui vaudra le surnom…").
_PRONOUN = re.compile(r"\b(?:il|elle|ils|elles|lui|leur|leurs|sa|son|ses|he|she|they|him|her|his|their|them|it|its)\b")
PRONOUN_WORDS = 6


def parse_markers(text: str, n_passages: int) -> tuple[list[int], list[int]]:
    """Citation numbers in `text`, split into (in range, out of range); order kept, no repeats.

    Numbers are 1-based; 0 and anything above `n_passages` are out of range (never wrapped).

    >>> parse_markers("Oui [2]. Non [0][5], voir [1, 3].", n_passages=3)
    ([2, 1, 3], [0, 5])
    """
    valid: list[int] = []
    invalid: list[int] = []
    for match in _MARKER.finditer(text):
        for raw in re.findall(r"\d+", match.group(1)):
            n = int(raw)
            bucket = valid if 1 <= n <= n_passages else invalid
            if n not in bucket:
                bucket.append(n)
    return valid, invalid


def strip_markers(text: str) -> str:
    """`text` without citation markers, spaces tidied.

    >>> strip_markers("Plus de 100 000 modèles [1][2] .")
    'Plus de 100 000 modèles.'
    """
    text = _MARKER.sub("", text)
    text = re.sub(r"\[\s*\d*\s*$", "", text)  # a marker cut off at the end of the output
    text = re.sub(r"\s+([.,;:!?])", r"\1", text)
    return re.sub(r"\s{2,}", " ", text).strip()


_LIST_SEPARATOR = re.compile(r"[,;:]|\s(?:et|and|ou|or)\s", re.IGNORECASE)


def misattributed(claim: str, source: str) -> bool:
    """Whether `claim` pairs two names that `source` gives in different items of a list, each
    item naming something else that the claim leaves out: from "ERNIE de Baidu, Qwen d'Alibaba
    et Hunyuan de Tencent", "Qwen was developed by Tencent" swaps an attribution.

    >>> source = "Par exemple, ERNIE de Baidu, Qwen d’Alibaba et Hunyuan de Tencent."
    >>> misattributed("Qwen was developed by Tencent [1].", source)
    True
    >>> misattributed("Qwen was developed by Alibaba [1].", source)
    False
    >>> misattributed("Qwen and Hunyuan come from Alibaba and Tencent [1].", source)
    False
    >>> misattributed("DeepSeek is owned by Moonshot AI.", "…comme Kimi K2 de Moonshot AI et DeepSeek R1.")
    True
    """
    cuts = [m.start() for m in _LIST_SEPARATOR.finditer(source)]
    item: dict[str, int] = {}
    members: dict[int, set[str]] = {}
    for start, end in anchor_spans(source):
        for word in _WORDS.findall(fold(source[start:end])):
            if not word.isdigit() and (len(word) > 2 or any(c.isdigit() for c in word)):  # "Qwen", "R1"
                item.setdefault(word, bisect(cuts, start))
                members.setdefault(bisect(cuts, start), set()).add(word)
    bare = strip_markers(claim)
    named = {w for w in _WORDS.findall(fold(bare)) if w in item}
    # which names the claim puts together: all of them when it names two, else those in one of
    # its own list items ("ERNIE, Qwen and Hunyuan are open" pairs none of them)
    claim_cuts = [m.start() for m in _LIST_SEPARATOR.finditer(bare)]
    claim_item = {w: bisect(claim_cuts, m.start()) for m in _WORDS.finditer(bare)
                  if (w := fold(m.group(0))) in named}
    together = len(named) <= 2
    return any(item[a] != item[b] and members[item[a]] - named and members[item[b]] - named
               and (together or claim_item[a] == claim_item[b])
               for a in named for b in named)


# A comma between digits ("100,000") separates no items.
_ITEM_SEPARATOR = re.compile(r"(?<!\d),|,(?!\d)|[;:]|\s(?:et|and|ou|or)\s", re.IGNORECASE)
# A list item that names what the sentence compares its subject with.
_COMPARED = re.compile(r"^\W*(?:en\s+)?(?:surpass|dépass|depass|devan[cç]|devant\b|derrière\b|plus que\b"
                       r"|outpac|overtak|ahead of\b|behind\b|than\b)", re.IGNORECASE)


def _names_of(text: str) -> set[str]:
    """The names of `text` (`anchors`, folded), its first word included, without figures and
    two-letter acronyms."""
    return {w for w in anchors(f"x {text}") if len(w) > 2 and not w.isdigit()}


def compared_figure(claim: str, source: str) -> bool:
    """Whether `claim` gives a figure of `source` to what `source` compares it with: from "Qwen…,
    avec plus de 100 000 modèles dérivés, surpassant la communauté Llama de Meta", "Llama's
    community has 100,000 derived models" moves Qwen's figure to Llama.

    >>> source = "Qwen est devenu le plus grand écosystème, avec 100 000 modèles, surpassant Llama de Meta."
    >>> compared_figure("La communauté Llama de Meta compte 100 000 modèles [1].", source)
    True
    >>> compared_figure("Qwen compte 100 000 modèles, devant Llama [1].", source)
    False
    """
    items = _ITEM_SEPARATOR.split(source)
    bare = strip_markers(claim)
    figures = numbers(bare)
    holding = [k for k, text in enumerate(items) if figures and figures & numbers(text)]
    if not holding:
        return False
    names = _names_of(bare)
    for k, text in enumerate(items):
        if not _COMPARED.match(text) or k in holding:
            continue
        theirs = _names_of(text)
        elsewhere = set().union(*(_names_of(items[j]) for j in range(len(items)) if j != k))
        if names & theirs and not names & (elsewhere - theirs):
            return True  # the claim names only what is compared with, and gives the other's figure
    return False


def figure_of_the_compared(question: str, texts: Sequence[str]) -> bool:
    """Whether one of `texts` (evidence to quote) holds figures only for something other than
    what the `question` names, which it names as compared with: "Combien de modèles dérivés la
    communauté Llama compte-t-elle ?" is not answered by Qwen's 100 000 "surpassant la communauté
    Llama" (`compared_figure`, the question standing for a claim of the sentence's figures).

    >>> figure_of_the_compared("Combien de modèles la communauté Llama compte-t-elle ?",
    ...     ["Qwen a 100 000 modèles, surpassant la communauté Llama."])
    True
    """
    return any(compared_figure(f"{question} {' '.join(sorted(numbers(text)))}", text)
               for text in texts if numbers(text))


# What an answer may begin with that claims nothing: "According to the sources," and a yes or a no
# followed by punctuation (a determiner "No fee is charged" is part of the claim).
_LEAD = re.compile(r"^\W*(?:(?:according to the sources|d['’]apr[eè]s les sources|selon les sources)\W*)?"
                   r"(?:(yes|no|oui|non)(?:\s*[,.;:!–—-]|\s*$))?\s*", re.IGNORECASE)


def stated_clauses(sentence: str, question: str, language: Language) -> list[tuple[str, bool, bool]]:
    """What an answer sentence asserts, clause by clause, as (text to match with the sources,
    says "not", denies in any way): its clauses (`qa.text.clauses`) past a leading yes or no; a
    short one with the question before it, which may hold its denial ("1986 [1]" for "When were
    they not allowed…?"); [] for a bare yes or no, which asserts nothing to match.

    >>> stated_clauses("No, mediation isn't required in cases of violence [1].", "Q?", "en")
    [("mediation isn't required in cases of violence.", True, True)]
    >>> stated_clauses("1986 [1].", "When were they not allowed to sue?", "en")
    [('When were they not allowed to sue? 1986.', False, True)]
    >>> stated_clauses("Non [1].", "La médiation est-elle obligatoire ?", "fr")
    []
    """
    bare = strip_markers(sentence)
    rest = bare[_LEAD.match(bare).end():]
    if not tokenize(rest, language):
        return []
    if len(rest.split()) < SHORT_CLAIM_WORDS:  # "1986 [1]" denies what "When were they not allowed…?" denies
        return [(f"{question} {rest}", negated(rest), denies(f"{question} {rest}"))]
    return [(c, negated(c), denies(c)) for c in clauses(rest, at_and=False)]  # "between and among" is one


def bare_yes_or_no(sentence: str) -> bool:
    """Whether an answer sentence is only a yes or a no: nothing in it can be checked against the
    sources, and which way the question leans is no guide ("Do they have the same motivations?"
    is answered no by « leurs motivations diffèrent », which says no "not").

    >>> bare_yes_or_no("Yes [1]."), bare_yes_or_no("Non, elle n'est pas exigée [1].")
    (True, False)
    """
    bare = strip_markers(sentence)
    lead = _LEAD.match(bare)
    return bool(lead.group(1)) and not _WORDS.search(bare[lead.end():])


# A closing relative clause: ", which…", ", qui…" to the sentence's end.
_RELATIVE = re.compile(r",\s+(?:which|who|whose|whom|qui|dont|lequel|laquelle|lesquels|lesquelles|ce qui)\b[^,;]*$",
                       re.IGNORECASE)


def main_clause(sentence: str) -> str:
    """An answer sentence (markers removed) without its closing relative clause, ended as it was;
    "" when it has none, or too little would be left to state anything (three words).

    >>> main_clause("The Chinese plan is the 14th Five-Year Plan, which was published in July 2025.")
    'The Chinese plan is the 14th Five-Year Plan.'
    >>> main_clause("Qwen, qui compte 100 000 modèles."), main_clause("Qwen compte 100 000 modèles.")
    ('', '')
    """
    match = _RELATIVE.search(sentence.rstrip(" .!…"))
    if not match:
        return ""
    main = sentence[:match.start()].rstrip()
    return main + sentence.rstrip()[-1:] * sentence.rstrip().endswith((".", "!", "…")) \
        if len(main.split()) >= 3 else ""


def answer_sentences(text: str, language: Language) -> list[str]:
    """Sentences of an answer, each keeping the markers that follow it.

    >>> answer_sentences("Qwen [1]. Il domine. [2]", "fr")
    ['Qwen [1].', 'Il domine. [2]']
    """
    pieces = [text[s:e] for s, e in split_sentences(text, language)]
    sentences: list[str] = []
    for piece in pieces:
        if sentences and not strip_markers(piece).strip(" .;,"):
            sentences[-1] = f"{sentences[-1]} {piece}"  # a marker split off on its own
        else:
            sentences.append(piece)
    return sentences


@dataclass(frozen=True)
class Support:
    score: float  # 0..1
    start: int  # the supporting sentence, offsets in the passage's text
    end: int


class SupportChecker:
    """Scores how well each passage supports a claim, and where."""

    def __init__(self, embed: Embed, passages: list[Passage], new_words: float | None = None,
                 own_names: bool = False) -> None:
        self.embed = embed
        self.passages = {p.n: p for p in passages}
        # the share of the words an answer adds that its passage must hold (default NEW_WORDS_FOUND)
        self.new_words = NEW_WORDS_FOUND if new_words is None else new_words
        # whether a short answer is anchored by its own names too, not only the question's (`score`)
        self.own_names = own_names
        self._spans: dict[int, list[tuple[int, int]]] = {}
        self._clauses: dict[int, tuple[list[str], np.ndarray]] = {}  # `_clauses_of`
        self._stated: dict[tuple[str, ...], np.ndarray] = {}  # the claims' clauses (`states_otherwise`)
        self._vectors: dict[int, np.ndarray] = {}
        texts: list[str] = []
        owners: list[tuple[int, int]] = []
        for p in passages:
            spans = sentence_spans(p.chunk)
            self._spans[p.n] = spans
            for k, (s, e) in enumerate(spans):
                texts.append(p.chunk.text[s:e])
                owners.append((p.n, k))
        vectors = embed(texts) if texts else np.zeros((0, 1), dtype=np.float32)
        for n in self._spans:
            rows = [i for i, (owner, _) in enumerate(owners) if owner == n]
            self._vectors[n] = vectors[rows]
        self._numbers = {n: numbers(p.chunk.text) for n, p in self.passages.items()}
        self._all_words = folded_words(" ".join(p.chunk.text for p in passages))
        self._names = {w for p in passages for w in anchors(p.chunk.text) if not w.isdigit()}
        self._stems = {n: set(tokenize(p.chunk.text, p.chunk.language))
                       for n, p in self.passages.items()}

    def score(self, claim: str, language: Language, claim_vector: np.ndarray, n: int,
              sentence: str | None = None, question: str = "") -> Support:
        """How well passage `n` supports `claim`, and its best sentence.

        Supported (score >= 0.5) when every number of the claim is in the passage, and
        the claim shares most content words with it (`lexical` >= LEXICAL_THRESHOLD), or one of
        its sentences is close in meaning (cosine >= SEMANTIC_THRESHOLD), or fairly close
        (>= ANCHORED_THRESHOLD) while the claim's names and acronyms appear in the passage.
        The names and figures of the answer `sentence` that occur in the retrieved passages must
        all be in one sentence of this passage, which becomes the quote: a claim that pairs a name
        from one sentence with a fact from another ("Hunyuan has 100,000 derived models", where
        the passage says it of Qwen) is not supported. That sentence must also speak of any role
        the `question` asks who holds (`names_the_roles_asked`: "Who founded…?" is not answered by
        "Kimi K2 de Moonshot AI"). When the passage is in the claim's language, what the answer
        adds to the `question` must be in it (`new_words_found`).
        """
        passage = self.passages[n]
        text = passage.chunk.text
        spans = self._spans[n]
        sentence = claim if sentence is None else sentence
        if bare_yes_or_no(sentence):
            return Support(0.0, *spans[0])  # "Yes [1]." states nothing the passage could hold
        # the question's numbers in words ("which three companies") need not be in the passage
        claim_numbers = numbers(claim) - (number_words(question) - numbers(sentence))
        if claim_numbers - self._numbers[n]:
            return Support(0.0, *spans[0])  # a figure the passage doesn't contain
        if passage.chunk.language == language and not self.new_words_found(sentence, question, language, n):
            return Support(0.0, *spans[0])  # what the answer adds is not in the passage
        sims = self._vectors[n] @ claim_vector
        together = self._sentences_holding(n, sentence, question, language)
        if roles_asked(question):
            together = [k for k in together if names_the_roles_asked(question, [text[spans[k][0]:spans[k][1]]])]
        if not together:
            return Support(0.0, *spans[0])
        sims = np.where(np.isin(np.arange(len(spans)), together), sims, -1.0)
        best = int(np.argmax(sims))
        semantic = float(sims[best])
        stems = set(tokenize(claim, language))
        lexical = len(stems & self._stems[n]) / len(stems) if stems else 0.0
        if len(strip_markers(sentence).split()) < SHORT_CLAIM_WORDS:  # "DeepSeek [1]": the question's names too
            found = anchors(strip_markers(self._named(claim, n, language))) \
                | (self.answer_names(self._named(sentence, n, language)) if self.own_names else set())
            anchored = bool(found) and len(found & folded_words(text)) / len(found) >= 0.5
        else:
            anchored = self._anchored(sentence, n)
        # the quote: the sentence closest by meaning, unless another shares clearly more of the
        # claim's numbers and content words
        overlap = [len(stems & set(tokenize(text[s:e], passage.chunk.language)))
                   + 2 * len(claim_numbers & numbers(text[s:e])) if k in together else -1
                   for k, (s, e) in enumerate(spans)]
        if max(overlap) > overlap[best] + 1:
            best = int(np.argmax(overlap))
        ratios = [lexical / LEXICAL_THRESHOLD, semantic / SEMANTIC_THRESHOLD]
        if anchored:
            ratios.append(semantic / ANCHORED_THRESHOLD)
        support = min(1.0, 0.5 * max(ratios))
        if support >= 0.5 and self.states_otherwise(n, sentence, question, language):
            return Support(0.0, *spans[best])  # « n'est pas exigée » does not support "is mandatory"
        return Support(support, *spans[best])

    def states_otherwise(self, n: int, sentence: str, question: str, language: Language) -> bool:
        """Whether passage `n` says the opposite of the answer `sentence`: a clause the answer
        asserts (`stated_clauses`) and the passage's clause closest to it in meaning disagree on
        "not". The passage's says "not" where the answer denies nothing (« la médiation n'est pas
        exigée en cas de violences » for "mediation is mandatory in cases of violence"), or the
        answer says "not" where the passage's clause denies nothing. Embeddings place a sentence
        and its negation side by side, so the closeness checks above cannot see this."""
        stated = stated_clauses(sentence, question, language)
        if not stated:
            return False
        theirs, vectors = self._clauses_of(n)
        texts = tuple(text for text, _, _ in stated)
        if texts not in self._stated:  # one claim is scored against each passage: embedded once
            self._stated[texts] = self.embed(list(texts))
        closest = (self._stated[texts] @ vectors.T).argmax(axis=1)
        return any(negated(theirs[k]) and not denial or says_not and not denies(theirs[k])
                   for (_, says_not, denial), k in zip(stated, closest, strict=True))

    def _clauses_of(self, n: int) -> tuple[list[str], np.ndarray]:
        """Passage `n`'s clauses (`qa.text.clauses`) and their vectors, embedded once."""
        if n not in self._clauses:
            text = self.passages[n].chunk.text
            pieces = [c for s, e in self._spans[n] for c in clauses(text[s:e])]
            self._clauses[n] = (pieces, self.embed(pieces))
        return self._clauses[n]

    def _anchored(self, sentence: str, n: int) -> bool:
        """Whether at least half of the answer `sentence`'s names (`answer_names`) are in passage
        `n`, a figure in any format ("14th" for « 14e »). A short answer is anchored on the
        question's names with its own instead (`score`): "DeepSeek [1]" alone is in the passage
        that names DeepSeek, whatever "Which Chinese universities…?" asked. Country names are
        read in the passage's language for short answers only: "China…" would otherwise anchor a
        long English claim in every passage of an article about China."""
        names = self.answer_names(sentence)
        have = folded_words(self.passages[n].chunk.text)
        found = [w in have or bool(numbers(w)) and numbers(w) <= self._numbers[n] for w in names]
        return bool(names) and sum(found) >= 0.5 * len(names)

    def _named(self, text: str, n: int, language: Language | None) -> str:
        """`text`, written in `language`, with its country names as passage `n`'s language writes
        them when that is another ("China" read as « Chine » in a French passage), so that they
        are matched across languages; as it is within one language (None: unknown)."""
        target = self.passages[n].chunk.language
        return text if language in (None, target) else with_country_names(text, target)

    def answer_names(self, sentence: str) -> set[str]:
        """The names, acronyms and figures of an answer sentence (folded), its first word among
        them when the passages write it as a name; not two-letter acronyms, which differ across
        languages ("AI" and « IA »)."""
        bare = strip_markers(sentence)
        first = folded_words(" ".join(bare.split()[:1]))
        return {w for w in anchors(bare) | (first & self._names) if len(w) > 2}

    def new_words_found(self, sentence: str, question: str, language: Language, n: int) -> bool:
        """Whether passage `n` holds at least `new_words` (NEW_WORDS_FOUND) of the content words (stems) that
        `sentence` adds to `question`; True when it adds none. A figure is found in whatever format
        the passage writes it ("4" for "quatre")."""
        new = set(tokenize(strip_markers(sentence), language)) - set(tokenize(f"{question} {_ANSWER_WORDS}", language))
        found = [w in self._stems[n] or bool(numbers(w)) and numbers(w) <= self._numbers[n] for w in new]
        return not new or sum(found) >= self.new_words * len(new)

    def _sentences_holding(self, n: int, sentence: str, question: str = "",
                           language: Language | None = None) -> list[int]:
        """Indices of passage `n`'s sentences that hold every name and figure of `sentence` found
        in the retrieved passages (names found nowhere, such as translations, don't count).

        A sentence that speaks of someone through a pronoun early on (`_PRONOUN`) and names
        nothing the answer doesn't ("Sa thèse portait sur Frantz Fanon.") may leave out the names
        the `question` gives ("Museveni a fait une thèse sur Frantz Fanon", asked "Sur qui Museveni
        a-t-il fait une thèse ?"). Any other sentence must hold them all: a fact is not moved from
        one name to another ("Qwen compte 100 000 modèles"), nor from one occasion to another ("The
        Broncos defeated the Steelers in the divisional round" does not say whom they beat to
        become the AFC champions). Country names of a `sentence` in another `language` count in
        the passage's (`_named`), or
        as the adjective's start ("China" is held by « modèles chinois », `same_name`).
        """
        named = self._named(sentence, n, language)
        countries = self.answer_names(named) - self.answer_names(sentence)  # renamed by `_named`
        sentence, question = named, self._named(question, n, language)
        text = self.passages[n].chunk.text
        spans = self._spans[n]
        words = [folded_words(text[s:e]) for s, e in spans]
        figures = [numbers(text[s:e]) for s, e in spans]
        bare = strip_markers(sentence)
        names = self.answer_names(sentence) & self._all_words  # names found nowhere don't count
        topic = names & {w for w in anchors(f"x {question}") if len(w) > 2}
        wanted = numbers(bare) & self._numbers[n]
        holding = []
        for k, (s, e) in enumerate(spans):
            own = {w for w in anchors(text[s:e]) if len(w) > 2 and not w.isdigit()}
            pronoun = bool(_PRONOUN.search(" ".join(fold(text[s:e]).split()[:PRONOUN_WORDS])))
            needed = names - topic if pronoun and own <= folded_words(bare) else names
            if needed - countries <= words[k] and wanted <= figures[k] \
                    and all(any(same_name(c, w) for w in words[k]) for c in needed & countries) \
                    and not misattributed(sentence, text[s:e]) \
                    and not compared_figure(sentence, text[s:e]):
                holding.append(k)
        return holding

    def claims(self, sentence: str, question: str) -> str:
        bare = strip_markers(sentence)
        if len(bare.split()) < SHORT_CLAIM_WORDS:
            return f"{question} {bare}"
        return bare

    def verify(self, sentences: list[str], question: str, language: Language
               ) -> list[tuple[str, list[Citation], list[int]]]:
        """For each sentence: (text without markers, supported citations, rejected numbers).

        A sentence with no supporting marker is matched against every passage, and cited
        with the best one when that one supports it (`support` >= 0.5). A sentence that no
        passage supports loses its closing relative clause when what is left holds up
        (`main_clause`): "…the 14th Five-Year Plan, which was published in July 2025" keeps the
        plan and drops the date, which belongs to another plan.
        """
        claims = [self.claims(s, question) for s in sentences]
        vectors = self.embed(claims) if claims else np.zeros((0, 1))
        results = []
        for sentence, claim, vector in zip(sentences, claims, vectors, strict=True):
            cited, out_of_range = parse_markers(sentence, max(self.passages, default=0))
            bare = strip_markers(sentence)
            if not bare.strip(" .;,:!?"):
                results.append(("", [], cited + out_of_range))  # markers and nothing to support
                continue
            kept, rejected = self._supported(bare, claim, vector, cited, question, language)
            main = main_clause(bare)
            if not kept and main:
                shorter = self.claims(main, question)
                kept, _ = self._supported(main, shorter, self.embed([shorter])[0], cited, question, language)
                if kept:
                    log.info("dropped the unsupported relative clause of %r", bare)
                    bare = main
            results.append((bare, kept, rejected + out_of_range))
        return results

    def _supported(self, bare: str, claim: str, vector: np.ndarray, cited: list[int], question: str,
                   language: Language) -> tuple[list[Citation], list[int]]:
        """(citations that support the answer sentence `bare`, cited numbers that don't): its
        `cited` passages, each alone or jointly, else the best of all passages."""
        kept: list[Citation] = []
        rejected: list[int] = []
        for n in cited:
            support = self.score(claim, language, vector, n, bare, question)
            if support.score >= 0.5:
                kept.append(self._citation(n, support))
            else:
                rejected.append(n)
        if not kept and len(cited) > 1:  # "A [1] et B [2]": each part supported by one of them
            kept = self._jointly(bare, question, language, cited)
        if not kept:
            scored = [(self.score(claim, language, vector, n, bare, question), n) for n in self.passages]
            if scored:
                support, n = max(scored, key=lambda pair: pair[0].score)
                if support.score >= 0.5:
                    kept.append(self._citation(n, support))
        return kept, rejected

    def _jointly(self, bare: str, question: str, language: Language, cited: list[int]) -> list[Citation]:
        """Citations for a sentence whose parts (split at "et", "and", ";") are each supported by
        one of the `cited` passages; [] when a part is supported by none."""
        parts = [p.strip(" ,;.") for p in re.split(r";|\s(?:et|and)\s", bare) if p.strip(" ,;.")]
        if len(parts) < 2:
            return []
        claims = [self.claims(p, question) for p in parts]
        kept: dict[int, Citation] = {}
        for part, vector in zip(parts, self.embed(claims), strict=True):
            claim = self.claims(part, question)
            support, n = max(((self.score(claim, language, vector, n, part, question), n) for n in cited),
                             key=lambda pair: pair[0].score)
            if support.score < 0.5:
                return []
            kept.setdefault(n, self._citation(n, support))
        return sorted(kept.values(), key=lambda c: c.n)

    def _citation(self, n: int, support: Support) -> Citation:
        chunk = self.passages[n].chunk
        return Citation(n=n, chunk=chunk, quote=chunk.text[support.start:support.end],
                        quote_start=chunk.start + support.start, quote_end=chunk.start + support.end,
                        support=round(support.score, 4))


def with_markers(sentence: str, ns: list[int]) -> str:
    """Put `[n]` markers at the end of a sentence, before its final punctuation.

    >>> with_markers("Plus de 100 000.", [2, 1])
    'Plus de 100 000 [1][2].'
    """
    if not ns:
        return sentence
    marks = "".join(f"[{n}]" for n in sorted(set(ns)))
    if sentence and sentence[-1] in ".!?":
        return f"{sentence[:-1].rstrip()} {marks}{sentence[-1]}"
    return f"{sentence} {marks}"


ABSTENTION_PATTERNS = [
    r"ne (?:le )?(?:disent|dit|pr[ée]cisent|pr[ée]cise|mentionnent|mentionne|contiennent|contient"
    r"|indiquent|indique|donnent|donne) pas",
    r"(?:aucune|pas d')\s*(?:information|source|mention|pr[ée]cision)",
    r"\b(?:do|does|did) not (?:say|mention|specify|state|contain|provide|give|include)",
    r"\b(?:don't|doesn't|didn't) (?:say|mention|specify|state|contain|provide|give|include)",
    r"\bno (?:information|mention|source|details?)\b",
    r"\bnot (?:mentioned|specified|stated|found|provided|given)\b",
    r"\bn'est pas (?:mentionn|pr[ée]cis|indiqu|donn)",
]
_ABSTAIN = re.compile("|".join(ABSTENTION_PATTERNS), re.IGNORECASE)


def is_abstention(text: str) -> bool:
    """Whether the model's reply says the sources don't answer.

    >>> is_abstention("Les sources ne le disent pas."), is_abstention("The sources do not say.")
    (True, True)
    >>> is_abstention("Plus de 100 000 modèles [1].")
    False
    """
    return bool(_ABSTAIN.search(fold(text)))


def location(chunk: Chunk, offset: int, language: Language) -> str:
    """Where `offset` of a passage's document is, as a reader cites it: the page and the
    section when the document has them, else the passage's characters.

    >>> c = Chunk("d#0", "d", "d.pdf", 0, 40, "x" * 40, "fr", page=2, section="Production")
    >>> location(c, 10, "fr"), location(Chunk("d#0", "d", "d.txt", 5, 9, "abcd", "en"), 5, "en")
    ('p. 2 · § Production', 'characters 5–9')
    """
    parts = []
    if chunk.page_at(offset):
        parts.append(f"p. {chunk.page_at(offset)}")
    if chunk.section_at(offset):
        parts.append(f"§ {chunk.section_at(offset)}")
    if parts:
        return " · ".join(parts)
    where = "caractères" if language == "fr" else "characters"
    return f"{where} {chunk.start}–{chunk.end}"
