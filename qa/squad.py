"""SQuAD-format benchmarks: public QA sets (PIAF, XQuAD, SQuAD 2.0) measured with our pipeline.

Every paragraph of a file becomes a Document (source "<title>#<i>"); together they form one
corpus, indexed in its own folder and reused while its manifest matches (embedder, chunk
settings, corpus hash). Questions are sampled with a seed so runs compare, and each question
is asked over the whole corpus, not just its own paragraph.

A retrieved passage is a hit when it comes from the question's own paragraph AND contains one
of its gold answers (normalised). Either condition alone is too lenient: a gold answer such as
"1990" or "France" turns up in many unrelated paragraphs, and a long paragraph is cut into
several passages, some without the answer.

Answers are scored with SQuAD exact match and token F1 (best over the gold answers) on the
answerable questions, an abstention counting as an empty answer; since our answers are whole
sentences, "answer contains a gold answer" is reported too, and the fixed lead-in the pipeline
starts answers with ("According to the sources,") is not scored. On SQuAD 2.0, abstention recall is
measured on the impossible questions, false abstention on the others.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from qa.chunking import chunk_document
from qa.citations import strip_markers
from qa.embedding import Embedder, make_embedder
from qa.errors import CorpusError, IndexCorruptError, IndexNotFoundError, InputError
from qa.evaluation import RetrievalCase, config, retrieval_baselines
from qa.index import Index, build_index, load_index, read_manifest, save_index
from qa.language import answer_language
from qa.loading import corpus_hash, make_document
from qa.metrics import (
    Outcome,
    abstention_recall,
    answer_matches,
    false_abstention_rate,
    language_match_rate,
    latency_summary,
    mean,
    median,
    own_words_rate,
    squad_exact_match,
    token_f1,
    unquoted,
)
from qa.pipeline import DOUBTFUL, QUOTE_LEAD, TRANSLATED_LEAD, Pipeline
from qa.prompting import ANSWER_PREFIX
from qa.settings import Settings
from qa.text import fold, normalize
from qa.translations import TranslationMemory
from qa.types import Chunk, Document, Language

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SquadQuestion:
    id: str
    question: str
    answers: tuple[str, ...]  # gold answer texts; empty for an impossible question
    impossible: bool
    doc_id: str  # the paragraph the question was written on
    language: Language  # that paragraph's


@dataclass(frozen=True)
class SquadSet:
    name: str  # the file's stem, e.g. "piaf-v1.0"
    path: Path
    documents: tuple[Document, ...]
    questions: tuple[SquadQuestion, ...]

    @property
    def has_impossible(self) -> bool:
        return any(q.impossible for q in self.questions)


def is_squad_file(path: str | Path) -> bool:
    """Whether `path` is a SQuAD-format file: a `.json` whose top level has a "data" list."""
    path = Path(path)
    if path.suffix.lower() != ".json" or not path.is_file():
        return False
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(raw, dict) and isinstance(raw.get("data"), list)


def read_squad(path: str | Path) -> SquadSet:
    """Read a SQuAD-format file: one Document per paragraph, its questions with their gold answers.

    Empty paragraphs and answerable questions without an answer are skipped (logged).
    """
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"SQuAD file {path} does not exist") from None
    except (OSError, ValueError) as error:
        raise InputError(f"SQuAD file {path} can't be read as JSON: {error}") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("data"), list):
        raise InputError(f"{path} is not a SQuAD-format file (no top-level \"data\" list): "
                         "give a SQuAD JSON file or a JSONL test set")
    documents: list[Document] = []
    questions: list[SquadQuestion] = []
    skipped = 0
    try:
        articles = [(a.get("title") or f"article{n}", a["paragraphs"])
                    for n, a in enumerate(raw["data"])]
        paragraphs = [(title, i, p) for title, ps in articles for i, p in enumerate(ps)]
        for title, i, paragraph in paragraphs:
            try:
                doc = make_document(f"{title}#{i}", paragraph["context"])
            except CorpusError:
                skipped += len(paragraph.get("qas", []))
                continue
            documents.append(doc)
            for qa in paragraph["qas"]:
                impossible = bool(qa.get("is_impossible", False))
                answers = tuple(a["text"] for a in qa.get("answers", []) if a["text"].strip())
                if not impossible and not answers:
                    skipped += 1
                    continue
                questions.append(SquadQuestion(str(qa["id"]), qa["question"], answers,
                                               impossible, doc.doc_id, doc.language))
    except (KeyError, TypeError, AttributeError) as error:
        raise InputError(f"{path} is not a valid SQuAD file ({type(error).__name__}: {error}): "
                         "each article needs paragraphs, each paragraph a context and qas"
                         ) from None
    if skipped:
        log.warning("%s: skipped %d question(s) without a context or an answer", path, skipped)
    if not questions:
        raise InputError(f"{path} holds no usable question")
    return SquadSet(path.stem, path, tuple(documents), tuple(questions))


def sample_questions(questions: Sequence[SquadQuestion], limit: int | None,
                     seed: int = 0) -> list[SquadQuestion]:
    """`limit` questions drawn with `random.Random(seed)`, kept in file order; all when no limit."""
    if limit is None or limit >= len(questions):
        return list(questions)
    positions = sorted(random.Random(seed).sample(range(len(questions)), limit))
    return [questions[i] for i in positions]


PARTS = ("tuning", "held-out")
SPLIT_SEED = 0  # the split weights and thresholds were chosen on; it doesn't move with the sampling seed


def question_part(doc_id: str, seed: int = 0) -> str:
    """The part of a set a paragraph's questions belong to: "tuning" (weights and thresholds are
    chosen there) or "held-out" (only reported). Decided by a hash of the paragraph, so every
    question of a paragraph lands in the same part and a part doesn't move when the file grows.

    >>> question_part("piaf#0"), question_part("piaf#1"), question_part("piaf#1", seed=1)
    ('tuning', 'held-out', 'tuning')
    """
    digest = hashlib.sha256(f"{seed}\0{doc_id}".encode()).digest()
    return PARTS[digest[0] & 1]


def split_questions(questions: Sequence[SquadQuestion], part: str, seed: int = 0) -> list[SquadQuestion]:
    """The questions of one part (`question_part`), in file order."""
    if part not in PARTS:
        raise InputError(f"part must be one of {', '.join(PARTS)}, got {part!r}")
    return [q for q in questions if question_part(q.doc_id, seed) == part]


def default_bench_dir(settings: Settings, name: str) -> Path:
    """Where a benchmark's index lives: `<index_dir>-bench/<name>`, e.g. index-bench/piaf-v1.0."""
    index_dir = Path(settings.index_dir)
    return index_dir.parent / f"{index_dir.name}-bench" / name


def open_bench_index(squad: SquadSet, embedder: Embedder, settings: Settings, index_dir: Path,
                     progress: bool = True) -> Index:
    """The index of the set's paragraphs in `index_dir`: reused when its manifest matches,
    else built (the project's chunker, the settings' chunk sizes) and saved."""
    from tqdm import tqdm

    expected = corpus_hash(squad.documents)
    try:
        manifest = read_manifest(index_dir)
        reasons = manifest.mismatches(embedder.name, settings.chunk_size, settings.chunk_overlap)
        if manifest.corpus_hash != expected:
            reasons.append("the contexts changed")
        if not reasons:
            return load_index(index_dir)
        log.info("rebuilding the benchmark index in %s: %s", index_dir, "; ".join(reasons))
    except (IndexNotFoundError, IndexCorruptError) as error:
        log.info("building the benchmark index in %s (%s)", index_dir, error)
    chunks = [c for doc in tqdm(squad.documents, desc="Chunking contexts", unit="paragraph",
                                disable=not progress)
              for c in chunk_document(doc, settings.chunk_size, settings.chunk_overlap)]
    index = build_index(chunks, embedder, chunk_size=settings.chunk_size,
                        chunk_overlap=settings.chunk_overlap, corpus_hash=expected,
                        sources=[f"squad:{squad.path.resolve()}"], progress=progress)
    save_index(index, index_dir)
    return index


def own_passage_hit(question: SquadQuestion, chunk: Chunk) -> bool:
    """A hit: the passage is from the question's own paragraph and holds a gold answer.

    >>> q = SquadQuestion("q", "Where?", ("Paris",), False, "d1", "en")
    >>> own_passage_hit(q, Chunk("d1#0", "d1", "T#0", 0, 15, "It is in Paris.", "en"))
    True
    >>> own_passage_hit(q, Chunk("d2#0", "d2", "T#1", 0, 15, "It is in Paris.", "en"))
    False
    """
    if chunk.doc_id != question.doc_id:
        return False
    text = normalize(chunk.text)
    return any(normalize(a) in text for a in question.answers)


def retrieval_cases(questions: Sequence[SquadQuestion]) -> list[RetrievalCase]:
    """Retrieval cases: the answerable questions (impossible ones have no gold answer)."""
    return [RetrievalCase(q.question, partial(own_passage_hit, q))
            for q in questions if not q.impossible]


def run_squad(pipeline: Pipeline, questions: Sequence[SquadQuestion], top_k: int | None = None,
              progress: bool = True) -> list[dict]:
    """Ask each question; one row each: `Answer.to_json()` plus id, gold, impossible."""
    from tqdm import tqdm

    rows = []
    for q in tqdm(questions, desc="Answering", unit="question", disable=not progress):
        answer = pipeline.ask(q.question, top_k=top_k)
        rows.append({"id": q.id, **answer.to_json(), "gold": list(q.answers),
                     "impossible": q.impossible})
    return rows


@dataclass(frozen=True)
class SquadScore:
    outcome: Outcome
    exact_match: float  # NaN on an impossible question
    f1: float


def strip_lead_in(answer: str) -> str:
    """The answer without the lead-in the pipeline starts every reply with ("According to the
    sources,"), without the note after a rough translation and without quotation marks: SQuAD
    scores compare content, and the formulas would cost every answer F1.

    >>> strip_lead_in("D'après les sources, le Louvre.")
    'le Louvre.'
    >>> strip_lead_in("According to the sources (translated from French): “The Louvre.” "
    ...               "(rough translation: see the original in the source)")
    'The Louvre.'
    >>> strip_lead_in("Le Louvre.")
    'Le Louvre.'
    """
    for lead_in in (*TRANSLATED_LEAD.values(), *QUOTE_LEAD.values(), *ANSWER_PREFIX.values()):
        if fold(answer[: len(lead_in)]) == fold(lead_in):
            answer = answer[len(lead_in) :]
            break
    for note in DOUBTFUL.values():
        answer = answer.replace(note, " ")
    return re.sub(r"[«»“”\u00a0]", " ", answer).strip()


def score_row(row: dict, question: SquadQuestion) -> SquadScore:
    """Judge one answer row against its question's gold answers (best over them)."""
    abstained = bool(row["abstained"])
    prediction = "" if abstained else strip_lead_in(strip_markers(row["answer"]))
    if question.impossible:
        em = f1 = math.nan
    else:
        em = _best(squad_exact_match(prediction, g) for g in question.answers)
        f1 = _best(token_f1(prediction, g) for g in question.answers)
    timings = row.get("timings", {})
    outcome = Outcome(
        id=question.id, lang=question.language, answerable=not question.impossible,
        abstained=abstained,
        correct=not abstained and answer_matches(prediction, [question.answers]),
        answer_language=None if abstained else answer_language(prediction, question.language),
        total_s=float(timings.get("total_s", math.nan)),
        first_token_s=float(timings.get("first_token_s", math.nan)),
        own_words=not abstained and answer_matches(strip_lead_in(strip_markers(unquoted(row["answer"]))),
                                                   [question.answers]),
        words=len(row["answer"].split()),
    )
    return SquadScore(outcome, em, f1)


def _best(values) -> float:
    kept = [v for v in values if not math.isnan(v)]
    return max(kept) if kept else math.nan


def squad_summary(scores: Sequence[SquadScore]) -> dict[str, float]:
    """The metrics of a SQuAD-format set over scored answers."""
    outcomes = [s.outcome for s in scores]
    answerable = [s for s in scores if s.outcome.answerable]
    return {
        "questions": len(scores),
        "answerable": len(answerable),
        "unanswerable": len(scores) - len(answerable),
        "exact_match": mean(s.exact_match for s in answerable),
        "f1": mean(s.f1 for s in answerable),
        "answer_contains_gold": mean(float(s.outcome.correct) for s in answerable),
        "own_words": own_words_rate(outcomes),
        "answer_words_median": median(o.words for o in outcomes if o.answerable and not o.abstained),
        "abstention_recall": abstention_recall(outcomes),
        "false_abstention": false_abstention_rate(outcomes),
        "language_match": language_match_rate(outcomes),
        **latency_summary(outcomes),
    }


def squad_failure(score: SquadScore) -> str | None:
    o = score.outcome
    if not o.answerable:
        return None if o.abstained else "answered an impossible question"
    if o.abstained:
        return "abstained, but its paragraph answers it"
    if not o.correct and not score.f1 >= 0.5:
        return "no gold answer in the answer"
    return None


def scored(rows: Sequence[dict], questions: Sequence[SquadQuestion]) -> tuple[list[SquadScore], list[dict]]:
    """Each answer row scored (`score_row`), and the rows with their scores added (language,
    expected answers, `squad_failure`, EM and F1), as a report lists them."""
    by_id = {q.id: q for q in questions}
    scores = [score_row(row, by_id[row["id"]]) for row in rows]
    return scores, [{**row, "lang": s.outcome.lang, "answerable": s.outcome.answerable,
                     "expected": " | ".join(dict.fromkeys(row["gold"])) or "(abstain)",
                     "failure": squad_failure(s), "exact_match": s.exact_match, "f1": s.f1}
                    for row, s in zip(rows, scores, strict=True)]


def part_questions(questions: Sequence[SquadQuestion], part: str = "all") -> list[SquadQuestion]:
    """All the questions, or those of one part ("tuning", "held-out") of the split by paragraph
    (`question_part` with SPLIT_SEED), in file order."""
    if part == "all":
        return list(questions)
    return split_questions(questions, part, SPLIT_SEED)


def evaluate_squad(path: str | Path, settings: Settings, limit: int | None = None, seed: int = 0,
                   pipeline: Pipeline | None = None, answers: bool = True,
                   index_dir: str | Path | None = None, progress: bool = True,
                   part: str = "all") -> dict:
    """The report of a SQuAD-format set (not written).

    Indexes all its paragraphs (or reuses the index in `index_dir`: the corpus is always the
    whole file), samples `limit` questions with `seed` among those of `part` ("all", "tuning"
    or "held-out", `part_questions`), measures retrieval for each mode on them and, with
    `answers`, answers them with the pipeline's generator over that index.
    """
    if part != "all" and part not in PARTS:
        raise InputError(f"part must be all, {' or '.join(PARTS)}, got {part!r}")
    squad = read_squad(path)
    index_dir = Path(index_dir) if index_dir else default_bench_dir(settings, squad.name)
    embedder = (pipeline.embedder if pipeline is not None and pipeline.embedder is not None
                else make_embedder(settings.embedder, threads=settings.threads))
    index = open_bench_index(squad, embedder, settings, index_dir, progress=progress)
    questions = sample_questions(part_questions(squad.questions, part), limit, seed)
    baselines = retrieval_baselines(index, embedder, retrieval_cases(questions), progress=progress)
    rows: list[dict] = []
    results: dict = {}
    llm, evidence = settings.llm, None
    if answers:
        bench = Pipeline(settings=settings, embedder=embedder, index=index, progress=progress,
                         translations=TranslationMemory(None),  # measured as if asked first
                         evidence_embedder=pipeline.evidence_embedder if pipeline is not None else None,
                         generator=pipeline.generator if pipeline is not None else None).load()
        llm, evidence = getattr(bench.generator, "name", llm), getattr(bench.evidence_embedder, "name", None)
        scores, rows = scored(run_squad(bench, questions, settings.top_k, progress), questions)
        results = {"all": squad_summary(scores)}
    return {
        "config": config("squad", squad.path, settings, embedder.name, llm, evidence, limit=limit, seed=seed,
                         part=part, answers=answers, questions=len(questions),
                         corpus={"paragraphs": len(squad.documents),
                                 "passages": len(index.chunks),
                                 "questions_in_file": len(squad.questions),
                                 "index_dir": str(index_dir)}),
        "metrics": results,
        "baselines": baselines,
        "rows": rows,
    }
