from __future__ import annotations

import doctest
import math

import pytest

import qa.metrics as metrics


def test_docstring_examples_hold() -> None:
    result = doctest.testmod(metrics)
    assert result.attempted > 0
    assert result.failed == 0


@pytest.mark.parametrize(("passage", "evidence", "expected"), [
    ("Elle a dépassé la communauté Llama.", ["la communaute  llama"], True),
    ("L'État finance 100 000 projets.", ["l’état finance 100\u202f000"], True),
    ("Qwen domine.", ["Llama"], False),
    ("Qwen domine.", [], False),
    ("Qwen domine.", ["Llama", "qwen"], True),
])
def test_evidence_hit_matches_whole_normalised_spans(passage, evidence, expected) -> None:
    assert metrics.evidence_hit(passage, evidence) is expected


@pytest.mark.parametrize(("answer", "groups", "expected"), [
    ("Kimi K2, MiniMax M1 et Qwen 3 [1].", [["Kimi"], ["MiniMax"], ["Qwen"]], True),
    ("Kimi K2 et Qwen 3 [1].", [["Kimi"], ["MiniMax"], ["Qwen"]], False),
    ("La désinformation.", [["disinformation", "désinformation"]], True),
    ("Plus de 100 000 modèles.", [["100,000", "100000"]], True),
    ("anything", [], False),
])
def test_answer_matches_needs_every_group(answer, groups, expected) -> None:
    assert metrics.answer_matches(answer, groups) is expected


def same(actual: float, expected: float) -> bool:
    return (math.isnan(actual) and math.isnan(expected)) or actual == pytest.approx(expected)


RANKINGS = [[False, True, False], [True, False, False], [False, False, False]]


@pytest.mark.parametrize(("rankings", "k", "expected"), [
    (RANKINGS, 1, 1 / 3),
    (RANKINGS, 2, 2 / 3),
    (RANKINGS, 5, 2 / 3),
    ([], 1, math.nan),
    ([[]], 3, 0.0),
])
def test_recall_at_k(rankings, k, expected) -> None:
    assert same(metrics.recall_at_k(rankings, k), expected)


@pytest.mark.parametrize(("rankings", "expected"), [
    (RANKINGS, (1 / 2 + 1 + 0) / 3),
    ([[False, False, True]], 1 / 3),
    ([], math.nan),
])
def test_mrr(rankings, expected) -> None:
    assert same(metrics.mrr(rankings), expected)


@pytest.mark.parametrize(("prediction", "reference", "f1", "em"), [
    ("la communauté Llama", "communauté Llama", 1.0, 1.0),
    ("la famille Qwen", "Qwen", 2 / 3, 0.0),
    ("The Llama community.", "llama community", 1.0, 1.0),
    ("Qwen", "Llama", 0.0, 0.0),
    ("", "Llama", 0.0, 0.0),
    ("100,000 models", "100 000 models", 1.0, 1.0),
    ("Llama", "", math.nan, math.nan),
    ("Llama", "the", math.nan, math.nan),
])
def test_token_f1_and_exact_match(prediction, reference, f1, em) -> None:
    assert same(metrics.token_f1(prediction, reference), f1)
    assert same(metrics.squad_exact_match(prediction, reference), em)


def outcome(id: str = "q", lang: str = "fr", answerable: bool = True, abstained: bool = False,
            **fields) -> metrics.Outcome:
    return metrics.Outcome(id, lang, answerable, abstained, **fields)  # type: ignore[arg-type]


CORRECT_CITED = outcome("a", correct=True, citation_hits=(True, False), answer_language="fr")
CORRECT_UNCITED = outcome("b", correct=True, citation_hits=(False,), answer_language="en")
WRONG = outcome("c", "en", citation_hits=(True,), answer_language="en")
FALSE_ABSTAIN = outcome("d", "en", abstained=True)
GOOD_ABSTAIN = outcome("e", answerable=False, abstained=True)
BAD_ANSWER = outcome("f", "en", answerable=False, citation_hits=(False,), answer_language="fr")
MIXED = [CORRECT_CITED, CORRECT_UNCITED, WRONG, FALSE_ABSTAIN, GOOD_ABSTAIN, BAD_ANSWER]


@pytest.mark.parametrize(("metric", "outcomes", "expected"), [
    (metrics.answer_correct_rate, MIXED, 2 / 4),
    (metrics.answer_correct_rate, [GOOD_ABSTAIN], math.nan),
    (metrics.citation_precision, MIXED, 2 / 4),  # BAD_ANSWER's citation is on an unanswerable one
    (metrics.citation_precision, [FALSE_ABSTAIN, GOOD_ABSTAIN], math.nan),
    (metrics.correct_and_cited_rate, MIXED, 1 / 4),
    (metrics.correct_and_cited_rate, [], math.nan),
    (metrics.abstention_recall, MIXED, 1 / 2),
    (metrics.abstention_recall, [CORRECT_CITED], math.nan),
    (metrics.false_abstention_rate, MIXED, 1 / 4),
    (metrics.false_abstention_rate, [GOOD_ABSTAIN], math.nan),
    (metrics.language_match_rate, MIXED, 2 / 4),  # abstentions left out
    (metrics.language_match_rate, [FALSE_ABSTAIN, GOOD_ABSTAIN], math.nan),
])
def test_outcome_metrics(metric, outcomes, expected) -> None:
    assert same(metric(outcomes), expected)


@pytest.mark.parametrize(("values", "expected_median", "expected_p95"), [
    ([2.0], 2.0, 2.0),
    ([1.0, 3.0], 2.0, 2.9),
    ([4.0, 1.0, 3.0, 2.0, math.nan], 2.5, 3.85),
    ([], math.nan, math.nan),
])
def test_latency_percentiles(values, expected_median, expected_p95) -> None:
    assert same(metrics.median(values), expected_median)
    assert same(metrics.p95(values), expected_p95)
