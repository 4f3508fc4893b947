"""Metrics: how an answer or a ranking is judged, and the figures over a set of questions.

    answer, passages -> matched against answer groups and evidence (normalised) -> Outcome per
    question -> metrics

A metric is a small pure function returning a float in [0, 1], or NaN where it is undefined
(abstention recall with no unanswerable question, citation precision with no citation).
`summarize` gathers the project test set's metrics (`qa.evaluation`); `qa.squad` gathers a
SQuAD-format set's from the same functions.

Retrieval is judged on answerable questions only: a passage is a hit when it contains one of
the question's evidence spans (`qa.text.normalize`: case, accents, apostrophes, number
separators, whitespace).
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from qa.text import normalize
from qa.types import Language

RANKING_DEPTH = 5  # passages kept per question for recall@1..5

# ---------------------------------------------------------------------------------------------
# Matching an answer or a passage

_ARTICLES = frozenset({"a", "an", "the", "le", "la", "les", "l", "un", "une", "des", "du",
                       "au", "aux"})


def evidence_hit(passage_text: str, evidence: Sequence[str]) -> bool:
    """Whether the passage contains one of the evidence spans, whole (normalised).

    >>> evidence_hit("Qwen dépasse la communauté Llama de Meta.", ["communaute llama"])
    True
    >>> evidence_hit("Qwen domine.", ["communauté Llama"]), evidence_hit("Qwen domine.", [])
    (False, False)
    """
    text = normalize(passage_text)
    return any(normalize(span) in text for span in evidence)


def answer_matches(answer: str, answer_groups: Sequence[Sequence[str]]) -> bool:
    """Whether every group is matched by at least one of its alternatives (normalised substring).

    No group at all: False (there is nothing the answer could be right about).

    >>> answer_matches("Kimi K2 et Qwen 3 [1].", [["Kimi"], ["Qwen", "Tongyi"]])
    True
    >>> answer_matches("Kimi K2 [1].", [["Kimi"], ["Qwen"]]), answer_matches("Kimi", [])
    (False, False)
    """
    text = normalize(answer)
    return bool(answer_groups) and all(
        any(normalize(alt) in text for alt in group) for group in answer_groups)


_QUOTED = re.compile(r"«[^»]*»|“[^”]*”|\"[^\"]*\"")


def unquoted(text: str) -> str:
    """`text` without the material it quotes.

    >>> unquoted('D’après les sources : « Qwen compte 100 000 modèles. » [1] Soit 100 000 [1].')
    'D’après les sources :  [1] Soit 100 000 [1].'
    """
    return _QUOTED.sub("", text)


def squad_tokens(text: str) -> list[str]:
    """SQuAD-style tokens: normalised, punctuation dropped, French and English articles removed.

    Apostrophes split words first, so the elided article of "l'État" goes too.

    >>> squad_tokens("L’État a investi 100 000 yuans dans the start-up.")
    ['etat', 'investi', '100000', 'yuans', 'dans', 'startup']
    """
    text = normalize(text).replace("'", " ")
    text = "".join(ch for ch in text if not unicodedata.category(ch).startswith("P"))
    return [w for w in text.split() if w not in _ARTICLES]


def token_f1(prediction: str, reference: str) -> float:
    """SQuAD token F1 between a prediction and one reference; NaN when the reference is empty.

    >>> token_f1("la famille Qwen", "Qwen")
    0.6666666666666666
    >>> token_f1("", "Qwen"), token_f1("Llama", "Qwen")
    (0.0, 0.0)
    >>> token_f1("Qwen", "the")
    nan
    """
    gold = squad_tokens(reference)
    if not gold:
        return math.nan
    pred = squad_tokens(prediction)
    common = sum((Counter(pred) & Counter(gold)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(gold)
    return 2 * precision * recall / (precision + recall)


def squad_exact_match(prediction: str, reference: str) -> float:
    """1.0 when the SQuAD tokens are identical, else 0.0; NaN when the reference is empty.

    >>> squad_exact_match("La communauté Llama.", "communauté llama")
    1.0
    >>> squad_exact_match("Llama de Meta", "Llama"), squad_exact_match("Llama", "")
    (0.0, nan)
    """
    gold = squad_tokens(reference)
    if not gold:
        return math.nan
    return float(squad_tokens(prediction) == gold)


# ---------------------------------------------------------------------------------------------
# Metrics over questions


@dataclass(frozen=True)
class Outcome:
    """One answered question judged against its item: what the metrics count."""

    id: str
    lang: Language
    answerable: bool
    abstained: bool
    correct: bool = False  # not abstained, and the answer matches every answer group
    citation_hits: tuple[bool, ...] = ()  # per citation: its passage holds an evidence span
    answer_language: str | None = None  # detected, for answers that are not abstentions
    retrieval_hits: tuple[bool, ...] = ()  # per retrieved passage, best first
    total_s: float = math.nan
    first_token_s: float = math.nan
    own_words: bool = False  # correct with the quoted material removed: the answer says it itself
    words: int = 0  # the answer's length in words, markers and quotes included

    @property
    def cited_evidence(self) -> bool:
        return any(self.citation_hits)


def mean(values: Iterable[float]) -> float:
    """Mean of the values that are not NaN; NaN when there is none.

    >>> mean([1.0, 0.0, float("nan")]), mean([])
    (0.5, nan)
    """
    kept = [float(v) for v in values if not math.isnan(v)]
    return sum(kept) / len(kept) if kept else math.nan


def recall_at_k(rankings: Sequence[Sequence[bool]], k: int) -> float:
    """Share of questions with a hit among their first `k` passages; NaN with no question.

    Each ranking is one question's retrieved passages, best first, as hit flags.

    >>> recall_at_k([[False, True], [True], [False, False]], 1)
    0.3333333333333333
    >>> recall_at_k([[False, True], [True], [False, False]], 2), recall_at_k([], 5)
    (0.6666666666666666, nan)
    """
    return mean(float(any(r[:k])) for r in rankings)


def mrr(rankings: Sequence[Sequence[bool]]) -> float:
    """Mean reciprocal rank of the first hit (0 when none); NaN with no question.

    >>> mrr([[False, True], [True], [False, False]])
    0.5
    """
    return mean(next((1 / n for n, hit in enumerate(r, start=1) if hit), 0.0) for r in rankings)


def answer_correct_rate(outcomes: Sequence[Outcome]) -> float:
    """Share of answerable questions answered correctly (an abstention is not correct).

    >>> answer_correct_rate([Outcome("a", "fr", True, False, correct=True),
    ...                      Outcome("b", "fr", True, True), Outcome("c", "fr", False, True)])
    0.5
    """
    return mean(float(o.correct) for o in outcomes if o.answerable)


def citation_precision(outcomes: Sequence[Outcome]) -> float:
    """Of all citations given on answerable questions, the share whose passage holds evidence.

    NaN when no citation was given.

    >>> citation_precision([Outcome("a", "fr", True, False, citation_hits=(True, False)),
    ...                     Outcome("b", "en", True, False, citation_hits=(True,))])
    0.6666666666666666
    >>> citation_precision([Outcome("a", "fr", True, True)])
    nan
    """
    return mean(float(hit) for o in outcomes if o.answerable for hit in o.citation_hits)


def correct_and_cited_rate(outcomes: Sequence[Outcome]) -> float:
    """Share of answerable questions answered correctly AND with a citation holding evidence.

    >>> correct_and_cited_rate([
    ...     Outcome("a", "fr", True, False, correct=True, citation_hits=(False, True)),
    ...     Outcome("b", "fr", True, False, correct=True, citation_hits=(False,))])
    0.5
    """
    return mean(float(o.correct and o.cited_evidence) for o in outcomes if o.answerable)


def abstention_recall(outcomes: Sequence[Outcome]) -> float:
    """Share of unanswerable questions on which the system abstained; NaN with none.

    >>> abstention_recall([Outcome("a", "fr", False, True), Outcome("b", "en", False, False)])
    0.5
    >>> abstention_recall([Outcome("a", "fr", True, True)])
    nan
    """
    return mean(float(o.abstained) for o in outcomes if not o.answerable)


def false_abstention_rate(outcomes: Sequence[Outcome]) -> float:
    """Share of answerable questions on which the system abstained; NaN with none.

    >>> false_abstention_rate([Outcome("a", "fr", True, True), Outcome("b", "fr", True, False),
    ...                        Outcome("c", "fr", True, False), Outcome("d", "fr", False, True)])
    0.3333333333333333
    """
    return mean(float(o.abstained) for o in outcomes if o.answerable)


def language_match_rate(outcomes: Sequence[Outcome]) -> float:
    """Share of answers written in the question's language; abstentions are left out.

    The system writes abstentions itself, from a template in the question's language, so
    counting them would only measure the language detector on the question. NaN when every
    answer is an abstention.

    >>> language_match_rate([Outcome("a", "fr", True, False, answer_language="fr"),
    ...                      Outcome("b", "en", True, False, answer_language="fr"),
    ...                      Outcome("c", "en", False, True)])
    0.5
    """
    return mean(float(o.answer_language == o.lang) for o in outcomes if not o.abstained)


def median(values: Iterable[float]) -> float:
    """Median of the values that are not NaN; NaN when there is none.

    >>> median([3.0, 1.0, 2.0, 10.0]), median([])
    (2.5, nan)
    """
    return _percentile(values, 50)


def p95(values: Iterable[float]) -> float:
    """95th percentile (linear interpolation) of the values that are not NaN; NaN when none.

    >>> p95([float(v) for v in range(1, 21)])
    19.05
    """
    return _percentile(values, 95)


def _percentile(values: Iterable[float], q: float) -> float:
    kept = sorted(float(v) for v in values if not math.isnan(v))
    if not kept:
        return math.nan
    position = (len(kept) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(kept) - 1)
    return kept[low] + (kept[high] - kept[low]) * (position - low)


def retrieval_summary(rankings: Sequence[Sequence[bool]]) -> dict[str, float]:
    """questions, recall@1..5 and MRR of a list of rankings (hit flags, best first)."""
    summary: dict[str, float] = {"questions": len(rankings)}
    for k in range(1, RANKING_DEPTH + 1):
        summary[f"recall@{k}"] = recall_at_k(rankings, k)
    summary["mrr"] = mrr(rankings)
    return summary


def own_words_rate(outcomes: Sequence[Outcome]) -> float:
    """Share of answerable questions whose answer states the gold outside quoted material.

    >>> own_words_rate([Outcome("a", "fr", True, False, own_words=True), Outcome("b", "fr", True, False)])
    0.5
    """
    return mean(float(o.own_words) for o in outcomes if o.answerable)


def summarize(outcomes: Sequence[Outcome]) -> dict[str, float]:
    """Every metric of the test set over a group of outcomes."""
    rankings = [o.retrieval_hits for o in outcomes if o.answerable]
    return {
        "questions": len(outcomes),
        "answerable": sum(o.answerable for o in outcomes),
        "unanswerable": sum(not o.answerable for o in outcomes),
        "recall@1": recall_at_k(rankings, 1),
        "recall@3": recall_at_k(rankings, 3),
        "recall@5": recall_at_k(rankings, 5),
        "mrr": mrr(rankings),
        "answer_correct": answer_correct_rate(outcomes),
        "correct_and_cited": correct_and_cited_rate(outcomes),
        "citation_precision": citation_precision(outcomes),
        "abstention_recall": abstention_recall(outcomes),
        "false_abstention": false_abstention_rate(outcomes),
        "language_match": language_match_rate(outcomes),
        "own_words": own_words_rate(outcomes),
        "answer_words_median": median(o.words for o in outcomes if o.answerable and not o.abstained),
        **latency_summary(outcomes),
    }


def latency_summary(outcomes: Sequence[Outcome]) -> dict[str, float]:
    """Median and p95 of the total and first-token times."""
    return {
        "total_s_median": median(o.total_s for o in outcomes),
        "total_s_p95": p95(o.total_s for o in outcomes),
        "first_token_s_median": median(o.first_token_s for o in outcomes),
        "first_token_s_p95": p95(o.first_token_s for o in outcomes),
    }
