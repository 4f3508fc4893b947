"""Evaluation: the project's test set run through the pipeline, and its report assembled.

    test set (qa.testset) -> answers (rows) -> Outcomes (`judge`) -> metrics (qa.metrics)
    -> report dict -> report.json/.md/.png (qa.report)

Also the retrieval baselines (each retrieval mode alone, no generation), which the SQuAD-format
sets (`qa.squad`) share. `qa.measure` picks the set's format and writes the report.
"""

from __future__ import annotations

import logging
import math
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from qa.citations import strip_markers
from qa.embedding import Embedder, Kind, make_embedder
from qa.errors import InputError
from qa.index import Index
from qa.language import answer_language, detect_language
from qa.library import open_index
from qa.metrics import (
    RANKING_DEPTH,
    Outcome,
    answer_matches,
    evidence_hit,
    retrieval_summary,
    summarize,
    unquoted,
)
from qa.pipeline import Pipeline
from qa.retrieval import Retriever, Translations
from qa.settings import Settings
from qa.testset import LANGUAGES, TestItem, document_texts, load_testset, select
from qa.translations import TranslationMemory, translation_memory_path
from qa.types import Chunk, Language, Passage

log = logging.getLogger(__name__)

MODES = ("hybrid", "dense", "bm25")
TRANSLATION_MODES = ("prepared", "none")

# ---------------------------------------------------------------------------------------------
# Judging answers


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
        answer_language=None if abstained else answer_language(text, item.lang),
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
           evidence_embedder: str | None = None, **extra: object) -> dict:
    """The "config" part of a report: what was measured, with what, when (`evidence_embedder`:
    the one that scored the answers' evidence, None when nothing was answered)."""
    return {
        "kind": kind,
        "testset": str(path),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "git_commit": git_commit(),
        "models": {"embedder": embedder, "evidence_embedder": evidence_embedder, "llm": llm},
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


def judged(rows: Sequence[Mapping], items: Sequence[TestItem]) -> tuple[list[Outcome], list[dict]]:
    """Each answer row judged (`judge`), and the rows with their judgement added (language,
    expected answer, `failure_reason`, the judgement itself), as a report lists them."""
    by_id = {i.id: i for i in items}
    outcomes = [judge(row, by_id[row["id"]]) for row in rows]
    return outcomes, [{**row, "lang": o.lang, "answerable": o.answerable,
                       "expected": by_id[o.id].reference if o.answerable else "(abstain)",
                       "failure": failure_reason(o),
                       "judgement": {"correct": o.correct, "citation_hits": list(o.citation_hits),
                                     "answer_language": o.answer_language,
                                     "retrieval_hits": list(o.retrieval_hits)}}
                      for row, o in zip(rows, outcomes, strict=True)]


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
        outcomes, rows = judged(run_testset(pipeline, items, settings.top_k, limit, progress), items)
        results = by_language(outcomes, summarize)
    llm = getattr(pipeline.generator, "name", None) if answers else settings.llm
    evidence = getattr(pipeline.evidence_embedder, "name", None) if answers else None
    return {
        "config": config("testset", path, settings, embedder.name, llm, evidence, limit=limit,
                         answers=answers, questions=len(items), unreachable=unreachable,
                         translations=memory_note),
        "metrics": results,
        "baselines": baselines,
        "rows": rows,
    }
