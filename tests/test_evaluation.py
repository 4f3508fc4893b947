"""Evaluation: answers judged against their items, and whole runs on fakes."""

from __future__ import annotations

import doctest
import json
import math
from pathlib import Path

import numpy as np
import pytest

import qa.evaluation as ev
import qa.measure as measure
import qa.report
from qa.chunking import chunk_documents
from qa.errors import InputError
from qa.index import Index, build_index
from qa.loading import make_document
from qa.metrics import Outcome
from qa.pipeline import Pipeline
from qa.settings import Settings
from tests.fakes import BagOfWordsEmbedder as FakeEmbedder  # noqa: E402
from tests.fakes import ScriptedGenerator  # noqa: E402
from tests.test_testset import ENGLISH, FRENCH, ITEMS, write_jsonl


def fake_index(texts: dict[str, str], settings: Settings, embedder: FakeEmbedder) -> Index:
    docs = [make_document(source, text) for source, text in texts.items()]
    chunks = chunk_documents(docs, settings.chunk_size, settings.chunk_overlap)
    return build_index(chunks, embedder, chunk_size=settings.chunk_size,
                       chunk_overlap=settings.chunk_overlap, corpus_hash="fake",
                       sources=list(texts))


def fake_settings(tmp_path: Path) -> Settings:
    """Generative style: the scripted replies below are the answers being judged."""
    return Settings(index_dir=tmp_path / "index", cache_dir=tmp_path / "cache", top_k=2, embedder="fake",
                    evidence_embedder="fake",
                    chunk_size=120, chunk_overlap=40, threads=1, answer_style="generative")


CORPUS = {"article.txt": FRENCH, "summary.txt": ENGLISH}
REPLIES = {
    "Combien de modèles dérivés": "La famille Qwen compte plus de 100 000 modèles dérivés [1].",
    "Qui a fondé DeepSeek": "Les sources ne le disent pas.",
    "Which community did the Qwen": "The Qwen family overtook the Llama community of Meta [1].",
    "in 1990": "The Qwen family overtook the Llama community of Meta on Hugging Face [1].",
}


@pytest.fixture
def testset(tmp_path: Path) -> Path:
    return write_jsonl(tmp_path / "testset.jsonl",
                       [json.dumps(item, ensure_ascii=False) for item in ITEMS])


@pytest.fixture
def pipeline(tmp_path: Path) -> Pipeline:
    settings = fake_settings(tmp_path)
    embedder = FakeEmbedder()
    return Pipeline(settings=settings, embedder=embedder, generator=ScriptedGenerator(REPLIES),
                    index=fake_index(CORPUS, settings, embedder))


# --- worked examples -----------------------------------------------------------------------------


def test_docstring_examples_hold() -> None:
    result = doctest.testmod(ev)
    assert result.attempted > 0
    assert result.failed == 0


def outcome(id: str = "q", lang: str = "fr", answerable: bool = True, abstained: bool = False,
            **fields) -> Outcome:
    return Outcome(id, lang, answerable, abstained, **fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(("item", "expected"), [
    (outcome(answerable=False, abstained=True), None),
    (outcome(answerable=False), "answered a question the documents don't answer"),
    (outcome(abstained=True), "abstained, but the documents answer it"),
    (outcome(answer_language="fr"), "wrong or incomplete answer"),
    (outcome(correct=True, citation_hits=(False,)), "correct, but no citation holds the evidence"),
    (outcome(correct=True, citation_hits=(True,), answer_language="en"),
     "answered in en, asked in fr"),
    (outcome(correct=True, citation_hits=(False, True), answer_language="fr"), None),
])
def test_failure_reason(item, expected) -> None:
    assert ev.failure_reason(item) == expected


def test_metrics_split_by_language(testset: Path) -> None:
    items = ev.load_testset(testset, [FRENCH, ENGLISH])
    rows = [
        {"id": "fr-1", "answer": "Plus de 100 000 modèles dérivés [1].", "abstained": False,
         "citations": [{"text": FRENCH.splitlines()[0]}],
         "ranking": [{"text": "rien"}, {"text": FRENCH.splitlines()[0]}],
         "timings": {"total_s": 2.0, "first_token_s": 0.5}},
        {"id": "en-2", "answer": "It overtook Llama [1].", "abstained": False,
         "citations": [{"text": ENGLISH}], "ranking": [], "timings": {"total_s": 4.0}},
    ]
    result = ev.metrics(rows, items)
    assert set(result) == {"all", "fr", "en"}
    assert result["fr"]["answer_correct"] == 1.0
    assert result["fr"]["recall@1"] == 0.0 and result["fr"]["recall@3"] == 1.0
    assert result["fr"]["mrr"] == 0.5
    assert result["en"]["abstention_recall"] == 0.0
    assert math.isnan(result["en"]["answer_correct"])  # no answerable English row
    assert result["all"]["questions"] == 2
    assert result["all"]["total_s_median"] == 3.0
    assert result["all"]["first_token_s_median"] == 0.5


def test_metrics_rejects_rows_of_unknown_questions(testset: Path) -> None:
    items = ev.load_testset(testset, [FRENCH, ENGLISH])
    with pytest.raises(InputError, match="nope"):
        ev.metrics([{"id": "nope", "answer": "", "abstained": True, "citations": []}], items)


# --- runs on fakes -------------------------------------------------------------------------------


def test_run_testset_keeps_answer_json_id_and_top5_ranking(testset: Path, pipeline) -> None:
    items = ev.load_testset(testset, [FRENCH, ENGLISH])
    rows = ev.run_testset(pipeline, items, top_k=2, limit=2, progress=False)
    assert [r["id"] for r in rows] == ["fr-1", "en-1"]
    first = rows[0]
    assert {"question", "language", "answer", "abstained", "citations", "passages", "timings",
            "models", "ranking"} <= set(first)
    assert len(first["passages"]) == 2
    assert 2 < len(first["ranking"]) <= 5
    assert first["ranking"][0]["text"]


def test_retrieval_baselines_cover_each_mode_and_language(testset: Path, pipeline) -> None:
    items = ev.load_testset(testset, [FRENCH, ENGLISH])
    result = ev.retrieval_baselines(pipeline.index, pipeline.embedder, ev.testset_cases(items),
                                    progress=False)
    assert list(result) == ["hybrid", "dense", "bm25"]
    for by_group in result.values():
        assert list(by_group) == ["all", "fr", "en"]
        assert by_group["all"]["questions"] == 2  # the answerable ones
        recalls = [by_group["all"][f"recall@{k}"] for k in range(1, 6)]
        assert recalls == sorted(recalls)
    assert result["dense"]["all"]["recall@5"] == 1.0


def test_evaluate_writes_json_markdown_and_plots(tmp_path: Path, testset: Path, pipeline) -> None:
    out = tmp_path / "report"
    report = measure.evaluate(testset, out, pipeline.settings, pipeline=pipeline, progress=False)

    on_disk = json.loads((out / "report.json").read_text(), parse_constant=pytest.fail)
    assert on_disk == report
    assert report["config"]["kind"] == "testset"
    assert report["config"]["models"] == {"embedder": "fake-embedder", "evidence_embedder": "fake-embedder",
                                          "llm": "scripted-generator"}
    assert report["config"]["settings"]["top_k"] == 2
    assert "git_commit" in report["config"] and report["config"]["date"]
    assert set(report["metrics"]) == {"all", "fr", "en"}
    assert set(report["baselines"]) == {"hybrid", "dense", "bm25"}
    assert [r["id"] for r in report["rows"]] == ["fr-1", "fr-2", "en-1", "en-2"]

    metrics = report["metrics"]["all"]
    assert metrics["questions"] == 4
    assert metrics["answer_correct"] == 1.0
    assert metrics["correct_and_cited"] == 1.0
    assert metrics["abstention_recall"] == 0.5  # en-2 was answered
    assert metrics["false_abstention"] == 0.0
    assert report["metrics"]["fr"]["abstention_recall"] == 1.0
    assert [r["id"] for r in report["rows"] if r["failure"]] == ["en-2"]

    markdown = (out / "report.md").read_text()
    assert "## Metrics" in markdown and "## Retrieval baselines" in markdown
    assert "## Failures (1 of 4)" in markdown and "What did Qwen overtake in 1990?" in markdown
    assert report["config"]["translations"]["mode"] == "prepared"  # every sentence translated ahead
    assert "- translation memory: prepared (translated now " in markdown
    for name in qa.report.PLOT_FILES:
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_evaluate_retrieval_only_never_loads_a_generator(tmp_path: Path, testset: Path) -> None:
    settings = fake_settings(tmp_path)
    embedder = FakeEmbedder()
    no_llm = Pipeline(settings=settings, embedder=embedder,
                      index=fake_index(CORPUS, settings, embedder))
    report = measure.evaluate(testset, tmp_path / "out", settings, pipeline=no_llm, progress=False,
                         answers=False)
    assert no_llm.generator is None
    assert report["metrics"] == {} and report["rows"] == []
    assert report["baselines"]["hybrid"]["all"]["questions"] == 2
    assert (tmp_path / "out" / "recall_at_k.png").is_file()
    assert not (tmp_path / "out" / "latency.png").exists()
    table = qa.report.format_table(report["metrics"], report["baselines"])
    assert "retrieval only" in table and "hybrid" in table
    assert qa.report.format_table(report) == table


def test_the_prepared_memory_holds_every_sentence_and_is_never_written(pipeline) -> None:
    from qa.text import sentence_spans

    memory, note = ev.evaluation_memory(pipeline, pipeline.settings, "prepared", answers=True)
    wanted = {(c.text[s:e], "en" if c.language == "fr" else "fr")
              for c in pipeline.index.chunks for s, e in sentence_spans(c)}
    assert all(memory.get(text, target) for text, target in wanted)
    assert note == {"mode": "prepared", "translated_now": len(wanted), "remembered": 0}
    assert memory.path is None and len(pipeline.translations) == 0  # the machine's memory untouched
    assert not pipeline.translations.path.exists()


def test_a_first_time_evaluation_starts_from_an_empty_memory(pipeline) -> None:
    pipeline.load().translations.put("Un.", "en", "One.")
    memory, note = ev.evaluation_memory(pipeline, pipeline.settings, "none", answers=True)
    assert len(memory) == 0 and note == {"mode": "none"}
    with pytest.raises(InputError, match="translations must be one of prepared, none"):
        ev.evaluation_memory(pipeline, pipeline.settings, "some", answers=True)


def test_a_retrieval_only_evaluation_reads_the_memory_as_it_is(tmp_path: Path) -> None:
    from qa.translations import TranslationMemory, translation_memory_path

    settings = fake_settings(tmp_path)
    TranslationMemory(translation_memory_path(settings.cache_dir, settings.llm)).put("Un.", "en", "One.")
    embedder = FakeEmbedder()
    no_llm = Pipeline(settings=settings, embedder=embedder, index=fake_index(CORPUS, settings, embedder))
    memory, note = ev.evaluation_memory(no_llm, settings, "prepared", answers=False)
    assert no_llm.generator is None and note == {"mode": "prepared", "remembered": 1}
    assert memory.get("Un.", "en") == "One." and memory.path is None


def test_evaluate_rejects_a_testset_whose_evidence_is_not_indexed(tmp_path: Path,
                                                                  testset: Path) -> None:
    settings = fake_settings(tmp_path)
    embedder = FakeEmbedder()
    other = Pipeline(settings=settings, embedder=embedder,
                     index=fake_index({"other.txt": "Un tout autre texte, sans rapport."},
                                      settings, embedder))
    with pytest.raises(InputError, match="line 1: evidence .* not found in the corpus"):
        measure.evaluate(testset, tmp_path / "out", settings, pipeline=other, progress=False)


def test_query_cache_embeds_each_question_once_and_gives_the_same_vectors() -> None:
    calls: list[tuple[int, str]] = []

    class Counting(FakeEmbedder):
        def embed_batch(self, texts: list[str], kind: str) -> np.ndarray:
            calls.append((len(texts), kind))
            return super().embed_batch(texts, kind)

    questions = ["Qui ?", "Quoi ?", "Qui ?", "Where?"]
    cache = ev.QueryCache(Counting(), questions, batch=2)
    assert calls == [(2, "query"), (1, "query")]
    assert cache.name == "fake-embedder"
    assert np.array_equal(cache.embed_batch(["Where?", "Qui ?"], "query"),
                          FakeEmbedder().embed_batch(["Where?", "Qui ?"], "query"))
    assert len(calls) == 2
    cache.embed_batch(["Qui ?"], "passage")  # passages and unknown questions go through
    cache.embed_batch(["Autre ?"], "query")
    assert calls[2:] == [(1, "passage"), (1, "query")]


@pytest.mark.parametrize("answer,lang,expected", [
    ("DeepSeek [2].", "fr", "fr"),  # a bare name is in either language: the question's
    ("ERNIE [1].", "en", "en"),
    ("Les tensions géopolitiques pourraient entraver la participation [1].", "en", "fr"),
    ("OpenAI, Google et Microsoft [1].", "en", "fr"),
])
def test_an_answer_s_language_is_judged_on_its_words_not_its_names(answer, lang, expected):
    from qa.testset import TestItem

    item = TestItem("x", lang, "?", True, (("a",),), ("a",), "a")
    row = {"abstained": False, "answer": answer, "citations": []}
    assert ev.judge(row, item).answer_language == expected
