"""Evaluation: metrics on worked examples, test-set validation, and a whole run on fakes."""

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
from qa.pipeline import Pipeline
from qa.settings import Settings
from tests.fakes import BagOfWordsEmbedder as FakeEmbedder  # noqa: E402
from tests.fakes import ScriptedGenerator  # noqa: E402


def fake_index(texts: dict[str, str], settings: Settings, embedder: FakeEmbedder) -> Index:
    docs = [make_document(source, text) for source, text in texts.items()]
    chunks = chunk_documents(docs, settings.chunk_size, settings.chunk_overlap)
    return build_index(chunks, embedder, chunk_size=settings.chunk_size,
                       chunk_overlap=settings.chunk_overlap, corpus_hash="fake",
                       sources=list(texts))


def fake_settings(tmp_path: Path) -> Settings:
    """Generative style: the scripted replies below are the answers being judged."""
    return Settings(index_dir=tmp_path / "index", cache_dir=tmp_path / "cache", top_k=2,
                    chunk_size=120, chunk_overlap=40, threads=1, answer_style="generative")


# --- the test corpus and test set used below -----------------------------------------------------

FRENCH = (
    "La famille Qwen d’Alibaba compte plus de 100\u202f000 modèles dérivés.\n"
    "Le gouvernement soutient l’open source par des subventions publiques.\n"
    "DeepSeek a publié son modèle de raisonnement R1 au début de l’année."
)
ENGLISH = (
    "The Qwen family overtook the Llama community of Meta on Hugging Face.\n"
    "Chinese laboratories publish their weights under permissive licences."
)
CORPUS = {"article.txt": FRENCH, "summary.txt": ENGLISH}

ITEMS = [
    {"id": "fr-1", "lang": "fr", "question": "Combien de modèles dérivés compte la famille Qwen ?",
     "answerable": True, "answer_groups": [["100 000", "100000"]],
     "evidence": ["plus de 100 000 modèles dérivés"], "reference": "Plus de 100 000."},
    {"id": "fr-2", "lang": "fr", "question": "Qui a fondé DeepSeek ?", "answerable": False,
     "answer_groups": [], "evidence": [], "reference": ""},
    {"id": "en-1", "lang": "en", "question": "Which community did the Qwen family overtake?",
     "answerable": True, "answer_groups": [["Llama"]],
     "evidence": ["overtook the Llama community of Meta"], "reference": "Meta's Llama."},
    {"id": "en-2", "lang": "en", "question": "What did Qwen overtake in 1990?",
     "answerable": False, "answer_groups": [], "evidence": [], "reference": ""},
]
REPLIES = {
    "Combien de modèles dérivés": "La famille Qwen compte plus de 100 000 modèles dérivés [1].",
    "Qui a fondé DeepSeek": "Les sources ne le disent pas.",
    "Which community did the Qwen": "The Qwen family overtook the Llama community of Meta [1].",
    "in 1990": "The Qwen family overtook the Llama community of Meta on Hugging Face [1].",
}


def write_jsonl(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


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


@pytest.mark.parametrize("module", [ev, qa.report])
def test_docstring_examples_hold(module) -> None:
    result = doctest.testmod(module)
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
    assert ev.evidence_hit(passage, evidence) is expected


@pytest.mark.parametrize(("answer", "groups", "expected"), [
    ("Kimi K2, MiniMax M1 et Qwen 3 [1].", [["Kimi"], ["MiniMax"], ["Qwen"]], True),
    ("Kimi K2 et Qwen 3 [1].", [["Kimi"], ["MiniMax"], ["Qwen"]], False),
    ("La désinformation.", [["disinformation", "désinformation"]], True),
    ("Plus de 100 000 modèles.", [["100,000", "100000"]], True),
    ("anything", [], False),
])
def test_answer_matches_needs_every_group(answer, groups, expected) -> None:
    assert ev.answer_matches(answer, groups) is expected


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
    assert same(ev.recall_at_k(rankings, k), expected)


@pytest.mark.parametrize(("rankings", "expected"), [
    (RANKINGS, (1 / 2 + 1 + 0) / 3),
    ([[False, False, True]], 1 / 3),
    ([], math.nan),
])
def test_mrr(rankings, expected) -> None:
    assert same(ev.mrr(rankings), expected)


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
    assert same(ev.token_f1(prediction, reference), f1)
    assert same(ev.squad_exact_match(prediction, reference), em)


def outcome(id: str = "q", lang: str = "fr", answerable: bool = True, abstained: bool = False,
            **fields) -> ev.Outcome:
    return ev.Outcome(id, lang, answerable, abstained, **fields)  # type: ignore[arg-type]


CORRECT_CITED = outcome("a", correct=True, citation_hits=(True, False), answer_language="fr")
CORRECT_UNCITED = outcome("b", correct=True, citation_hits=(False,), answer_language="en")
WRONG = outcome("c", "en", citation_hits=(True,), answer_language="en")
FALSE_ABSTAIN = outcome("d", "en", abstained=True)
GOOD_ABSTAIN = outcome("e", answerable=False, abstained=True)
BAD_ANSWER = outcome("f", "en", answerable=False, citation_hits=(False,), answer_language="fr")
MIXED = [CORRECT_CITED, CORRECT_UNCITED, WRONG, FALSE_ABSTAIN, GOOD_ABSTAIN, BAD_ANSWER]


@pytest.mark.parametrize(("metric", "outcomes", "expected"), [
    (ev.answer_correct_rate, MIXED, 2 / 4),
    (ev.answer_correct_rate, [GOOD_ABSTAIN], math.nan),
    (ev.citation_precision, MIXED, 2 / 4),  # BAD_ANSWER's citation is on an unanswerable one
    (ev.citation_precision, [FALSE_ABSTAIN, GOOD_ABSTAIN], math.nan),
    (ev.correct_and_cited_rate, MIXED, 1 / 4),
    (ev.correct_and_cited_rate, [], math.nan),
    (ev.abstention_recall, MIXED, 1 / 2),
    (ev.abstention_recall, [CORRECT_CITED], math.nan),
    (ev.false_abstention_rate, MIXED, 1 / 4),
    (ev.false_abstention_rate, [GOOD_ABSTAIN], math.nan),
    (ev.language_match_rate, MIXED, 2 / 4),  # abstentions left out
    (ev.language_match_rate, [FALSE_ABSTAIN, GOOD_ABSTAIN], math.nan),
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
    assert same(ev.median(values), expected_median)
    assert same(ev.p95(values), expected_p95)


@pytest.mark.parametrize(("item", "expected"), [
    (outcome(answerable=False, abstained=True), None),
    (outcome(answerable=False), "answered a question the documents don't answer"),
    (outcome(abstained=True), "abstained, but the documents answer it"),
    (outcome(answer_language="fr"), "wrong or incomplete answer"),
    (outcome(correct=True, citation_hits=(False,)), "correct, but no citation holds the evidence"),
    (outcome(correct=True, citation_hits=(True,), answer_language="en"),
     "answered in en, asked in fr"),
    (CORRECT_CITED, None),
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


# --- test-set validation -------------------------------------------------------------------------


def test_load_testset_reads_items(testset: Path) -> None:
    items = ev.load_testset(testset, [FRENCH, ENGLISH])
    assert [i.id for i in items] == ["fr-1", "fr-2", "en-1", "en-2"]
    assert items[0].answer_groups == (("100 000", "100000"),)
    assert items[0].evidence == ("plus de 100 000 modèles dérivés",)


def test_the_project_testset_is_valid_against_the_bundled_article() -> None:
    from qa.loading import bundled_document

    path = Path(__file__).parent / "data" / "testset.jsonl"
    items = ev.load_testset(path, bundled_document().text)
    assert len(items) == len({i.id for i in items}) >= 80
    assert {i.lang for i in items} == {"fr", "en"}


def bad(**changes) -> str:
    item = {**ITEMS[0], "id": "x-1", **changes}
    return json.dumps({k: v for k, v in item.items() if v is not ...}, ensure_ascii=False)


@pytest.mark.parametrize(("line", "expected"), [
    ('{"id": "x-1", "lang": ', "invalid JSON"),
    ("[1, 2]", "not a JSON object"),
    (bad(lang=...), "missing field 'lang'"),
    (bad(evidence=..., reference=...), "missing field 'evidence', missing field 'reference'"),
    (bad(lang="de"), "unknown lang 'de'"),
    (bad(answerable="yes"), "answerable must be true or false"),
    (bad(answer_groups=[[]]), "answer_groups must be a list of non-empty lists"),
    (bad(question=" "), "question must be a non-empty string"),
    (bad(evidence=["un passage absent"]), "evidence 'un passage absent' not found in the corpus"),
    (bad(answer_groups=[]), "answerable, so answer_groups and evidence must not be empty"),
    (bad(answerable=False), "unanswerable, so evidence must be empty"),
    (json.dumps(ITEMS[0]), "duplicate id 'fr-1' (first on line 1)"),
])
def test_load_testset_names_the_bad_line(tmp_path: Path, line: str, expected: str) -> None:
    path = write_jsonl(tmp_path / "t.jsonl", [json.dumps(ITEMS[0], ensure_ascii=False), "", line])
    with pytest.raises(InputError) as error:
        ev.load_testset(path, [FRENCH])
    assert f"line 3: {expected}" in str(error.value)


def test_load_testset_lists_every_bad_line(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "t.jsonl", ["{", json.dumps(ITEMS[0]), bad(lang="it")])
    with pytest.raises(InputError, match=r"2 bad line\(s\): line 1: invalid JSON .*; line 3: "):
        ev.load_testset(path, FRENCH)


@pytest.mark.parametrize(("content", "expected"), [
    (None, "does not exist"),
    ("\n\n", "holds no questions"),
])
def test_load_testset_rejects_missing_or_empty_files(tmp_path: Path, content, expected) -> None:
    path = tmp_path / "t.jsonl"
    if content is not None:
        path.write_text(content)
    with pytest.raises(InputError, match=expected):
        ev.load_testset(path, FRENCH)


def test_document_texts_rebuilds_the_documents_from_overlapping_chunks() -> None:
    docs = [make_document("a.txt", FRENCH), make_document("b.txt", ENGLISH)]
    chunks = chunk_documents(docs, 120, 40)
    assert len(chunks) > 2
    assert ev.document_texts(chunks) == [FRENCH.replace("\n", " "), ENGLISH.replace("\n", " ")]


@pytest.mark.parametrize(("limit", "expected"), [
    (None, ["fr-1", "fr-2", "en-1", "en-2"]),
    (1, ["fr-1"]),
    (3, ["fr-1", "en-1", "fr-2"]),
    (10, ["fr-1", "fr-2", "en-1", "en-2"]),
])
def test_select_alternates_languages(testset: Path, limit, expected) -> None:
    items = ev.load_testset(testset, [FRENCH, ENGLISH])
    assert [i.id for i in ev.select(items, limit)] == expected


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
    assert report["config"]["models"] == {"embedder": "fake-embedder", "llm": "scripted-generator"}
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
    table = ev.format_table(report["metrics"], report["baselines"])
    assert "retrieval only" in table and "hybrid" in table
    assert ev.format_table(report) == table


def test_the_prepared_memory_holds_every_sentence_and_is_never_written(pipeline) -> None:
    from qa.chunking import sentence_spans

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
    from qa.pipeline import TranslationMemory, translation_memory_path

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


def test_format_table_prints_groups_as_columns() -> None:
    table = ev.format_table({"all": {"questions": 4, "recall@1": 0.5, "abstention_recall": None},
                             "fr": {"questions": 2, "recall@1": 1.0,
                                    "abstention_recall": math.nan}})
    lines = table.splitlines()
    assert lines[0].split() == ["metric", "all", "fr"]
    assert lines[1].split() == ["questions", "4", "2"]
    assert lines[2].split() == ["recall@1", "0.500", "1.000"]
    assert lines[3].split() == ["abstention", "recall", "–", "–"]


def test_jsonable_makes_strict_json() -> None:
    text = json.dumps(ev.jsonable({"x": [math.nan, math.inf, 1.5]}))
    assert json.loads(text, parse_constant=pytest.fail) == {"x": [None, None, 1.5]}


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
