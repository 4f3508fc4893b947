"""Evaluation: the project's test set, its metrics, retrieval baselines and the report.

    test set (JSONL) -> TestItems -> answers (rows) -> Outcomes -> metrics -> report.json/.md/.png

A metric is a small pure function returning a float in [0, 1], or NaN where it is undefined
(abstention recall with no unanswerable question, citation precision with no citation). A
SQuAD-format file (`.json` with a top-level "data" list) is measured by `qa.squad` instead.

Retrieval is judged on answerable questions only: a passage is a hit when it contains one of
the question's evidence spans (normalised: case, accents, apostrophes, number separators,
whitespace). Unanswerable questions have no evidence, so they count for abstention only.
"""

from __future__ import annotations

import json
import logging
import math
import re
import subprocess
import time
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from qa.citations import strip_markers
from qa.embedding import Embedder, Kind, make_embedder
from qa.errors import InputError
from qa.index import Index
from qa.language import detect_language
from qa.pipeline import Pipeline, TranslationMemory, open_index, translation_memory_path
from qa.report import baselines_grid, metrics_grid, text_table, write_markdown, write_plots
from qa.retrieval import Retriever, Translations
from qa.settings import Settings
from qa.text import normalize
from qa.types import Chunk, Language, Passage

log = logging.getLogger(__name__)

LANGUAGES: tuple[Language, ...] = ("fr", "en")
MODES = ("hybrid", "dense", "bm25")
TRANSLATION_MODES = ("prepared", "none")
RANKING_DEPTH = 5  # passages kept per question for recall@1..5
FIELDS = ("id", "lang", "question", "answerable", "answer_groups", "evidence", "reference")
MAX_PROBLEMS_SHOWN = 10

# ---------------------------------------------------------------------------------------------
# The test set


@dataclass(frozen=True)
class TestItem:
    """One question of the test set. `evidence`: spans of the corpus that answer it."""

    __test__ = False  # a dataclass, not a pytest test class

    id: str
    lang: Language
    question: str
    answerable: bool
    answer_groups: tuple[tuple[str, ...], ...]  # each group must be matched by one alternative
    evidence: tuple[str, ...]
    reference: str


def load_testset(path: str | Path, corpus: str | Iterable[str]) -> list[TestItem]:
    """Read and validate a JSONL test set; `corpus` is the text(s) evidence must be found in.

    Raise InputError listing every bad line by number: invalid JSON, missing or mistyped
    field, unknown lang, evidence not in the corpus, duplicate id.
    """
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise InputError(f"test set {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"test set {path} can't be read as UTF-8 text: {error}") from None
    haystacks = [normalize(t) for t in ([corpus] if isinstance(corpus, str) else corpus)]
    items: list[TestItem] = []
    problems: list[str] = []
    first_line: dict[str, int] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        item, errors = _parse_item(line, haystacks)
        if item is not None and item.id in first_line:
            errors.append(f"duplicate id {item.id!r} (first on line {first_line[item.id]})")
        if errors:
            problems.append(f"line {number}: {', '.join(errors)}")
        elif item is not None:
            first_line[item.id] = number
            items.append(item)
    if problems:
        shown = "; ".join(problems[:MAX_PROBLEMS_SHOWN])
        more = (f"; and {len(problems) - MAX_PROBLEMS_SHOWN} more"
                if len(problems) > MAX_PROBLEMS_SHOWN else "")
        raise InputError(f"test set {path} has {len(problems)} bad line(s): {shown}{more}")
    if not items:
        raise InputError(f"test set {path} holds no questions: one JSON object per line")
    return items


def _parse_item(line: str, haystacks: list[str]) -> tuple[TestItem | None, list[str]]:
    """The item on one line, or None, with what is wrong with it."""
    try:
        raw = json.loads(line)
    except json.JSONDecodeError as error:
        return None, [f"invalid JSON ({error.msg} at column {error.colno})"]
    if not isinstance(raw, dict):
        return None, ["not a JSON object"]
    errors = [f"missing field {name!r}" for name in FIELDS if name not in raw]
    if errors:
        return None, errors

    def strings(value: object) -> bool:
        return isinstance(value, list) and all(isinstance(s, str) and s.strip() for s in value)

    if not isinstance(raw["id"], str) or not raw["id"].strip():
        errors.append("id must be a non-empty string")
    if raw["lang"] not in LANGUAGES:
        errors.append(f"unknown lang {raw['lang']!r} (use 'fr' or 'en')")
    if not isinstance(raw["question"], str) or not raw["question"].strip():
        errors.append("question must be a non-empty string")
    if not isinstance(raw["answerable"], bool):
        errors.append("answerable must be true or false")
    groups = raw["answer_groups"]
    if not isinstance(groups, list) or not all(strings(g) and g for g in groups):
        errors.append("answer_groups must be a list of non-empty lists of strings")
    if not strings(raw["evidence"]):
        errors.append("evidence must be a list of non-empty strings")
    if not isinstance(raw["reference"], str):
        errors.append("reference must be a string")
    if errors:
        return None, errors
    if raw["answerable"] and not (groups and raw["evidence"]):
        errors.append("answerable, so answer_groups and evidence must not be empty")
    if not raw["answerable"] and raw["evidence"]:
        errors.append("unanswerable, so evidence must be empty")
    for span in raw["evidence"]:
        needle = normalize(span)
        if not any(needle in hay for hay in haystacks):
            errors.append(f"evidence {_short(span)!r} not found in the corpus")
    item = TestItem(raw["id"], raw["lang"], raw["question"], raw["answerable"],
                    tuple(tuple(g) for g in groups), tuple(raw["evidence"]), raw["reference"])
    return item, errors


def _short(text: str, limit: int = 50) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def document_texts(chunks: Iterable[Chunk]) -> list[str]:
    """The documents' texts rebuilt from their passages' offsets (gaps between sentences as spaces).

    Lets the test set be checked against whatever an index holds, without re-reading files.

    >>> from qa.types import Chunk
    >>> document_texts([Chunk("a#1", "a", "a.txt", 4, 9, "Deux.", "fr"),
    ...                 Chunk("a#0", "a", "a.txt", 0, 3, "Un.", "fr")])
    ['Un. Deux.']
    """
    docs: dict[str, list[Chunk]] = {}
    for chunk in chunks:
        docs.setdefault(chunk.doc_id, []).append(chunk)
    texts = []
    for parts in docs.values():
        buffer = [" "] * max(c.end for c in parts)
        for c in parts:
            buffer[c.start : c.end] = c.text
        texts.append("".join(buffer))
    return texts


def select(items: Sequence[TestItem], limit: int | None) -> list[TestItem]:
    """The first `limit` items, taking the languages in turn so a small limit covers both.

    Order within a language is kept. No limit: all items, in file order.
    """
    if limit is None or limit >= len(items):
        return list(items)
    by_lang: dict[str, list[TestItem]] = {}
    for item in items:
        by_lang.setdefault(item.lang, []).append(item)
    queues = list(by_lang.values())
    chosen: list[TestItem] = []
    depth = 0
    while len(chosen) < limit:
        for queue in queues:
            if depth < len(queue) and len(chosen) < limit:
                chosen.append(queue[depth])
        depth += 1
    return chosen


# ---------------------------------------------------------------------------------------------
# Normalisation and matching

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


_QUOTED = re.compile(r"«[^»]*»|“[^”]*”|\"[^\"]*\"")


def unquoted(text: str) -> str:
    """`text` without the material it quotes.

    >>> unquoted('D’après les sources : « Qwen compte 100 000 modèles. » [1] Soit 100 000 [1].')
    'D’après les sources :  [1] Soit 100 000 [1].'
    """
    return _QUOTED.sub("", text)


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


def by_language(outcomes: Sequence[Outcome], summary: Callable[[Sequence[Outcome]], dict]
                ) -> dict[str, dict[str, float]]:
    """`summary` over all outcomes, then over each language: {"all": ..., "fr": ..., "en": ...}."""
    groups = {"all": list(outcomes)}
    for lang in LANGUAGES:
        groups[lang] = [o for o in outcomes if o.lang == lang]
    return {name: summary(group) for name, group in groups.items()}


def judge(row: Mapping, item: TestItem) -> Outcome:
    """Judge one answer row (`Answer.to_json()` + "id" + "ranking") against its test item."""
    abstained = bool(row["abstained"])
    text = strip_markers(row["answer"])
    timings = row.get("timings", {})
    return Outcome(
        id=item.id,
        lang=item.lang,
        answerable=item.answerable,
        abstained=abstained,
        correct=not abstained and answer_matches(text, item.answer_groups),
        citation_hits=tuple(evidence_hit(c["text"], item.evidence) for c in row["citations"]),
        # too short to tell (a bare name): counted as the question's language
        answer_language=None if abstained else detect_language(text, default=item.lang),
        retrieval_hits=tuple(evidence_hit(p["text"], item.evidence)
                             for p in row.get("ranking", [])),
        total_s=float(timings.get("total_s", math.nan)),
        first_token_s=float(timings.get("first_token_s", math.nan)),
        own_words=not abstained and answer_matches(strip_markers(unquoted(row["answer"])), item.answer_groups),
        words=len(row["answer"].split()),
    )


def failure_reason(outcome: Outcome) -> str | None:
    """What went wrong on a question, in a few words; None when it went right.

    >>> failure_reason(Outcome("a", "fr", False, False))
    "answered a question the documents don't answer"
    >>> failure_reason(Outcome("a", "fr", True, False, correct=True, citation_hits=(True,),
    ...                        answer_language="fr")) is None
    True
    """
    if not outcome.answerable:
        return None if outcome.abstained else "answered a question the documents don't answer"
    if outcome.abstained:
        return "abstained, but the documents answer it"
    if not outcome.correct:
        return "wrong or incomplete answer"
    if not outcome.cited_evidence:
        return "correct, but no citation holds the evidence"
    if outcome.answer_language not in (None, outcome.lang):
        return f"answered in {outcome.answer_language}, asked in {outcome.lang}"
    return None


def metrics(rows: Sequence[Mapping], items: Sequence[TestItem]) -> dict[str, dict[str, float]]:
    """Every metric, overall and per language: {"all": {...}, "fr": {...}, "en": {...}}."""
    by_id = {item.id: item for item in items}
    missing = [row["id"] for row in rows if row["id"] not in by_id]
    if missing:
        raise InputError(f"answers for ids not in the test set: {', '.join(missing[:5])}")
    return by_language([judge(row, by_id[row["id"]]) for row in rows], summarize)


# ---------------------------------------------------------------------------------------------
# Running


def _passage_json(p: Passage) -> dict:
    return {"n": p.n, "chunk_id": p.chunk.chunk_id, "source": p.chunk.source, "text": p.chunk.text,
            "score": round(p.score, 6)}


def run_testset(pipeline: Pipeline, items: Sequence[TestItem], top_k: int | None = None,
                limit: int | None = None, progress: bool = True) -> list[dict]:
    """Ask every selected question; one row per question: `Answer.to_json()`, "id", "ranking".

    "ranking" holds the top 5 passages retrieved for the question (whatever `top_k` the
    answer used), for recall@1..5.
    """
    from tqdm import tqdm

    rows = []
    for item in tqdm(select(items, limit), desc="Answering", unit="question",
                     disable=not progress):
        answer = pipeline.ask(item.question, top_k=top_k)
        ranking = pipeline.retriever.retrieve(answer.question, answer.language, RANKING_DEPTH)
        rows.append({"id": item.id, **answer.to_json(),
                     "ranking": [_passage_json(p) for p in ranking]})
    return rows


class QueryCache:
    """An Embedder that embeds known questions once, in batches, and reuses their vectors.

    One question at a time costs the default embedder ~0.15 s, against ~0.01 s in a batch;
    the baselines ask each question once per mode.
    """

    def __init__(self, embedder: Embedder, questions: Sequence[str], batch: int = 64) -> None:
        self.embedder = embedder
        self.name = embedder.name
        unique = list(dict.fromkeys(questions))
        self._vectors: dict[str, np.ndarray] = {}
        for start in range(0, len(unique), batch):
            part = unique[start : start + batch]
            self._vectors.update(zip(part, embedder.embed_batch(part, "query"), strict=True))

    def embed_batch(self, texts: list[str], kind: Kind) -> np.ndarray:
        if kind == "query" and texts and all(t in self._vectors for t in texts):
            return np.stack([self._vectors[t] for t in texts])
        return self.embedder.embed_batch(texts, kind)


@dataclass(frozen=True)
class RetrievalCase:
    """A question for the retrieval baselines, and how to tell a passage that answers it."""

    question: str
    is_hit: Callable[[Chunk], bool]
    group: str | None = None  # the breakdown it also counts in ("fr", "en"), besides "all"
    language: Language | None = None  # as given to the retriever; None: detected, as `ask` does


def retrieval_baselines(index: Index, embedder: Embedder, cases: Sequence[RetrievalCase],
                        modes: Sequence[str] = MODES, progress: bool = True,
                        translations: Translations | None = None
                        ) -> dict[str, dict[str, dict[str, float]]]:
    """Recall@1..5 and MRR of each retrieval mode, no generation: {mode: {group: summary}}.

    Every mode searches the same index with the same embedder (and BM25 reads foreign passages
    through the same `translations`, if any).
    """
    from tqdm import tqdm

    languages = [c.language or detect_language(c.question, default="fr") for c in cases]
    groups = ["all", *dict.fromkeys(c.group for c in cases if c.group is not None)]
    queries = QueryCache(embedder, [c.question for c in cases])
    results: dict[str, dict[str, dict[str, float]]] = {}
    for mode in modes:
        retriever = Retriever(index, queries, mode=mode, translations=translations)
        rankings: dict[str, list[tuple[bool, ...]]] = {g: [] for g in groups}
        for case, language in tqdm(list(zip(cases, languages, strict=True)),
                                   desc=f"Retrieval ({mode})", unit="question",
                                   disable=not progress):
            passages = retriever.retrieve(case.question, language, RANKING_DEPTH)
            flags = tuple(case.is_hit(p.chunk) for p in passages)
            rankings["all"].append(flags)
            if case.group is not None:
                rankings[case.group].append(flags)
        results[mode] = {g: retrieval_summary(r) for g, r in rankings.items()}
    return results


def testset_cases(items: Sequence[TestItem]) -> list[RetrievalCase]:
    """Retrieval cases for the answerable items: a hit is a passage holding an evidence span."""
    def hit(evidence: tuple[str, ...]) -> Callable[[Chunk], bool]:
        return lambda chunk: evidence_hit(chunk.text, evidence)

    return [RetrievalCase(i.question, hit(i.evidence), group=i.lang)
            for i in items if i.answerable]


def git_commit() -> str | None:
    """The commit of the code being evaluated; None outside a git checkout (or before the first)."""
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                              timeout=10, cwd=Path(__file__).resolve().parent, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    commit = done.stdout.strip()
    return commit if done.returncode == 0 and commit else None


def config(kind: str, path: Path, settings: Settings, embedder: str, llm: str | None,
           **extra: object) -> dict:
    """The "config" part of a report: what was measured, with what, when."""
    return {
        "kind": kind,
        "testset": str(path),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "git_commit": git_commit(),
        "models": {"embedder": embedder, "llm": llm},
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(settings).items()},
        **extra,
    }


def prepare_retrieval(pipeline: Pipeline, settings: Settings,
                      progress: bool) -> tuple[Embedder, Index]:
    """The pipeline's embedder and index, loaded without loading the language model."""
    if pipeline.embedder is None:
        pipeline.embedder = make_embedder(settings.embedder, threads=settings.threads)
    if pipeline.index is None:
        pipeline.index = open_index(settings, pipeline.embedder, progress=progress)
    return pipeline.embedder, pipeline.index


def evaluation_memory(pipeline: Pipeline, settings: Settings, translations: str,
                      answers: bool, progress: bool = False) -> tuple[TranslationMemory, dict]:
    """The translation memory a test set is measured with, and what it holds.

    "none": empty, so every answer is measured as if asked first (translating as it goes).
    "prepared": a copy of this machine's memory for the model (never written back), with every
    sentence of the index translated, as `qa translate` (run by setup) leaves it; the model
    translates what is missing when answers are measured, not in a retrieval-only run.
    """
    if translations not in TRANSLATION_MODES:
        raise InputError(f"translations must be one of {', '.join(TRANSLATION_MODES)}, not {translations!r}")
    if translations == "none":
        return TranslationMemory(None), {"mode": "none"}
    if answers:
        pipeline.load()
        memory = pipeline.translations.detached()
        added, known = replace(pipeline, translations=memory).prepare_translations(progress=progress)
        return memory, {"mode": "prepared", "translated_now": added, "remembered": known}
    memory = pipeline.translations  # an empty memory is falsy: test for None
    if memory is None:
        memory = TranslationMemory(translation_memory_path(settings.cache_dir, settings.llm))
    return memory.detached(), {"mode": "prepared", "remembered": len(memory)}


def evaluate_testset(path: Path, settings: Settings, limit: int | None = None,
                     pipeline: Pipeline | None = None, answers: bool = True,
                     progress: bool = True, translations: str = "prepared") -> dict:
    """The report of a JSONL test set (not written): baselines on all items, answers on `limit`,
    with the translation memory `evaluation_memory` gives for `translations`."""
    pipeline = pipeline or Pipeline(settings=settings, progress=progress)
    embedder, index = prepare_retrieval(pipeline, settings, progress)
    items = load_testset(path, document_texts(index.chunks))
    memory, memory_note = evaluation_memory(pipeline, settings, translations, answers, progress)
    pipeline = replace(pipeline, translations=memory)
    unreachable = [i.id for i in items if i.answerable
                   and not any(evidence_hit(c.text, i.evidence) for c in index.chunks)]
    if unreachable:
        log.warning("no passage holds the whole evidence of %s: recall can't reach 1",
                    ", ".join(unreachable))
    baselines = retrieval_baselines(index, embedder, testset_cases(items), progress=progress,
                                    translations=memory)
    rows: list[dict] = []
    results: dict = {}
    if answers:
        pipeline.load()
        rows = run_testset(pipeline, items, settings.top_k, limit, progress)
        by_id = {i.id: i for i in items}
        outcomes = [judge(row, by_id[row["id"]]) for row in rows]
        results = by_language(outcomes, summarize)
        rows = [{**row, "lang": o.lang, "answerable": o.answerable,
                 "expected": by_id[o.id].reference if o.answerable else "(abstain)",
                 "failure": failure_reason(o),
                 "judgement": {"correct": o.correct, "citation_hits": list(o.citation_hits),
                               "answer_language": o.answer_language,
                               "retrieval_hits": list(o.retrieval_hits)}}
                for row, o in zip(rows, outcomes, strict=True)]
    llm = getattr(pipeline.generator, "name", None) if answers else settings.llm
    return {
        "config": config("testset", path, settings, embedder.name, llm, limit=limit,
                         answers=answers, questions=len(items), unreachable=unreachable,
                         translations=memory_note),
        "metrics": results,
        "baselines": baselines,
        "rows": rows,
    }


def jsonable(value: object) -> object:
    """`value` with NaN and infinities replaced by None, so the JSON is strict.

    >>> jsonable({"a": [1.0, float("nan")], "b": (2, "x")})
    {'a': [1.0, None], 'b': [2, 'x']}
    """
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, Mapping):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


def write_report(report: Mapping, out_dir: str | Path) -> dict:
    """Write report.json, report.md and the plots; return the report as written."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    clean = jsonable(report)
    tmp = out_dir / ".report.json.partial"
    tmp.write_text(json.dumps(clean, ensure_ascii=False, indent=1), encoding="utf-8")
    tmp.replace(out_dir / "report.json")
    write_markdown(clean, out_dir / "report.md")
    write_plots(clean, out_dir)
    return clean  # type: ignore[return-value]


def format_table(metrics: Mapping, baselines: Mapping | None = None) -> str:
    """The metrics (rows) by group (columns) for a terminal, then the baselines if given.

    `metrics` is {group: {metric: value}}, or a whole report (then its baselines are shown too).
    """
    if "metrics" in metrics and "config" in metrics:  # a whole report
        metrics, baselines = metrics["metrics"], baselines or metrics.get("baselines")
    parts = [text_table(*metrics_grid(metrics))] if metrics else ["no answers (retrieval only)"]
    if baselines:
        parts.append(text_table(*baselines_grid(baselines, "all")))
    return "\n\n".join(parts)

