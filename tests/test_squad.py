"""SQuAD-format benchmarks: reading, seeded sampling, the reused index, and whole runs on fakes."""

from __future__ import annotations

import doctest
import json
from pathlib import Path

import pytest

import qa.squad as squad
from qa.errors import InputError
from qa.index import current_build
from qa.measure import evaluate
from qa.pipeline import Pipeline
from qa.settings import Settings

# --- fakes (the same as in test_evaluation.py) ---------------------------------------------------
from tests.fakes import BagOfWordsEmbedder as FakeEmbedder  # noqa: E402
from tests.fakes import ScriptedGenerator  # noqa: E402

# --- a tiny SQuAD 2.0 file -----------------------------------------------------------------------

PARIS = ("Paris is the capital of France. The city hosted the Olympic Games in 1900 and 1924. "
         "The Seine river crosses the city from east to west.")
LYON = ("Lyon is the third largest city of France. It lies where the Rhone meets the Saone. "
        "The city is known for its silk industry.")
WARSAW = ("Warsaw is the capital of Poland. The Vistula river flows through Warsaw. "
          "Its old town was rebuilt after 1945.")


def qa_item(id: str, question: str, *answers: str, impossible: bool = False) -> dict:
    item: dict = {"id": id, "question": question,
                  "answers": [{"text": a, "answer_start": 0} for a in answers]}
    if impossible:
        item["is_impossible"] = True
    return item


SQUAD = {"version": "v2.0", "data": [
    {"title": "France", "paragraphs": [
        {"context": PARIS, "qas": [
            qa_item("p1", "What is the capital of France?", "Paris", "Paris"),
            qa_item("p2", "Which river crosses Paris?", "The Seine", "Seine"),
            qa_item("p3", "Who was mayor of Paris in 1900?", impossible=True),
        ]},
        {"context": LYON, "qas": [
            qa_item("l1", "Which rivers meet at Lyon?", "the Rhone meets the Saone"),
            qa_item("l2", "What industry is Lyon known for?", "silk industry", "silk"),
        ]},
    ]},
    {"title": "Poland", "paragraphs": [
        {"context": WARSAW, "qas": [
            qa_item("w1", "Which river flows through Warsaw?", "Vistula", "The Vistula river"),
            qa_item("w2", "When was the old town of Warsaw rebuilt?", "after 1945"),
        ]},
    ]},
]}
REPLIES = {
    "capital of France": "Paris is the capital of France [1].",
    "Which river crosses Paris": "The Seine river crosses the city from east to west [1].",
    "mayor of Paris": "The city hosted the Olympic Games in 1900 and 1924 [1].",
}


@pytest.fixture
def squad_file(tmp_path: Path) -> Path:
    path = tmp_path / "tiny-squad.json"
    path.write_text(json.dumps(SQUAD), encoding="utf-8")
    return path


def settings_in(tmp_path: Path, **changes) -> Settings:
    return Settings(index_dir=tmp_path / "index", cache_dir=tmp_path / "cache", top_k=2, embedder="fake",
                    evidence_embedder="fake", chunk_size=100, chunk_overlap=30, threads=1).with_(**changes)


# --- reading and sampling ------------------------------------------------------------------------


def test_docstring_examples_hold() -> None:
    result = doctest.testmod(squad)
    assert result.attempted > 0 and result.failed == 0


def test_read_squad_makes_one_document_per_paragraph(squad_file: Path) -> None:
    data = squad.read_squad(squad_file)
    assert data.name == "tiny-squad"
    assert [d.source for d in data.documents] == ["France#0", "France#1", "Poland#0"]
    assert [d.text for d in data.documents] == [PARIS, LYON, WARSAW]
    assert [q.id for q in data.questions] == ["p1", "p2", "p3", "l1", "l2", "w1", "w2"]
    p1, p3 = data.questions[0], data.questions[2]
    assert p1.answers == ("Paris", "Paris") and not p1.impossible
    assert p1.doc_id == data.documents[0].doc_id and p1.language == "en"
    assert p3.impossible and p3.answers == ()
    assert data.has_impossible


@pytest.mark.parametrize(("content", "name", "expected"), [
    (None, "missing.json", "does not exist"),
    ("{not json", "bad.json", "can't be read as JSON"),
    ('{"version": "1"}', "nodata.json", 'no top-level "data" list'),
    ('{"data": [{"title": "T"}]}', "noparas.json", "not a valid SQuAD file"),
    ('{"data": [{"title": "T", "paragraphs": []}]}', "empty.json", "no usable question"),
])
def test_read_squad_rejects_bad_files(tmp_path: Path, content, name, expected) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    with pytest.raises(InputError, match=expected):
        squad.read_squad(path)


@pytest.mark.parametrize(("name", "content", "expected"), [
    ("s.json", json.dumps(SQUAD), True),
    ("s.json", '{"version": "1"}', False),
    ("s.json", "[1, 2]", False),
    ("s.jsonl", json.dumps(SQUAD), False),
])
def test_is_squad_file_needs_json_suffix_and_data(tmp_path: Path, name, content, expected) -> None:
    path = tmp_path / name
    path.write_text(content)
    assert squad.is_squad_file(path) is expected


def test_sample_is_seeded_sized_and_in_file_order(squad_file: Path) -> None:
    questions = squad.read_squad(squad_file).questions
    first = squad.sample_questions(questions, 4, seed=7)
    again = squad.sample_questions(questions, 4, seed=7)
    assert [q.id for q in first] == [q.id for q in again]
    assert len(first) == 4 == len({q.id for q in first})
    order = [q.id for q in questions]
    assert [q.id for q in first] == sorted((q.id for q in first), key=order.index)
    seeds = {tuple(q.id for q in squad.sample_questions(questions, 4, seed=s)) for s in range(10)}
    assert len(seeds) > 1  # the seed matters
    assert squad.sample_questions(questions, None) == list(questions)
    assert squad.sample_questions(questions, 100) == list(questions)


# --- the benchmark index -------------------------------------------------------------------------


def test_bench_index_is_reused_while_its_manifest_matches(tmp_path: Path, squad_file: Path) -> None:
    data = squad.read_squad(squad_file)
    embedder = FakeEmbedder()
    where = tmp_path / "bench"
    built = squad.open_bench_index(data, embedder, settings_in(tmp_path), where, progress=False)
    build = current_build(where)
    assert built.manifest.sources == (f"squad:{squad_file.resolve()}",)
    assert {c.source for c in built.chunks} == {"France#0", "France#1", "Poland#0"}

    calls = embedder.calls
    again = squad.open_bench_index(data, embedder, settings_in(tmp_path), where, progress=False)
    assert current_build(where) == build and embedder.calls == calls
    assert [c.chunk_id for c in again.chunks] == [c.chunk_id for c in built.chunks]

    squad.open_bench_index(data, embedder, settings_in(tmp_path, chunk_size=200), where,
                           progress=False)
    assert current_build(where) != build


def test_default_bench_dir_sits_beside_the_index(tmp_path: Path) -> None:
    settings = settings_in(tmp_path)
    assert squad.default_bench_dir(settings, "piaf") == tmp_path / "index-bench" / "piaf"


def test_a_hit_needs_the_own_paragraph_and_a_gold_answer(squad_file: Path) -> None:
    data = squad.read_squad(squad_file)
    p1 = data.questions[0]
    from qa.chunking import chunk_documents

    chunks = chunk_documents(list(data.documents), 100, 30)
    hits = {c.text for c in chunks if squad.own_passage_hit(p1, c)}
    assert hits and all("Paris" in text for text in hits)
    assert not any(squad.own_passage_hit(p1, c) for c in chunks if c.doc_id != p1.doc_id)
    assert not any(squad.own_passage_hit(p1, c) for c in chunks
                   if c.doc_id == p1.doc_id and "Paris" not in c.text)


# --- whole runs ----------------------------------------------------------------------------------


def test_evaluate_squad_retrieval_only(tmp_path: Path, squad_file: Path) -> None:
    settings = settings_in(tmp_path)
    pipeline = Pipeline(settings=settings, embedder=FakeEmbedder())
    report = evaluate(squad_file, tmp_path / "out", settings, limit=5, seed=3, pipeline=pipeline,
                      progress=False, answers=False)
    assert pipeline.generator is None
    config = report["config"]
    assert config["kind"] == "squad" and config["questions"] == 5 and config["seed"] == 3
    assert config["corpus"]["paragraphs"] == 3
    assert config["corpus"]["index_dir"] == str(tmp_path / "index-bench" / "tiny-squad")
    assert report["metrics"] == {} and report["rows"] == []
    sampled = squad.sample_questions(squad.read_squad(squad_file).questions, 5, seed=3)
    answerable = sum(not q.impossible for q in sampled)
    for mode in ("hybrid", "dense", "bm25"):
        summary = report["baselines"][mode]["all"]
        assert summary["questions"] == answerable
        assert 0.0 <= summary["recall@1"] <= summary["recall@3"] <= summary["recall@5"] <= 1.0
    assert (tmp_path / "out" / "report.md").is_file()
    assert (tmp_path / "out" / "recall_at_k.png").is_file()


def test_evaluate_squad_with_answers(tmp_path: Path, squad_file: Path) -> None:
    settings = settings_in(tmp_path).with_(answer_style="generative")  # the scripted replies are judged
    pipeline = Pipeline(settings=settings, embedder=FakeEmbedder(),
                        generator=ScriptedGenerator(REPLIES))
    report = evaluate(squad_file, tmp_path / "out", settings, pipeline=pipeline, progress=False,
                      bench_dir=tmp_path / "bench")
    assert report["config"]["corpus"]["index_dir"] == str(tmp_path / "bench")
    assert report["config"]["models"]["llm"] == "scripted-generator"
    rows = {r["id"]: r for r in report["rows"]}
    assert set(rows) == {"p1", "p2", "p3", "l1", "l2", "w1", "w2"}
    # "Paris is the capital of France [1]." vs "Paris": 5 tokens ("the" dropped), 1 in common
    assert rows["p1"]["f1"] == pytest.approx(1 / 3)
    assert rows["p1"]["failure"] is None and rows["p1"]["exact_match"] == 0.0
    assert rows["p3"]["failure"] == "answered an impossible question"
    assert rows["w1"]["failure"] == "abstained, but its paragraph answers it"

    metrics = report["metrics"]["all"]
    assert metrics["questions"] == 7 and metrics["unanswerable"] == 1
    assert metrics["answer_contains_gold"] == pytest.approx(2 / 6)
    assert metrics["own_words"] == pytest.approx(2 / 6)  # nothing quoted: as contains-gold
    assert metrics["answer_words_median"] > 0
    assert metrics["abstention_recall"] == 0.0
    assert metrics["false_abstention"] == pytest.approx(4 / 6)
    assert metrics["exact_match"] == 0.0
    assert 0.0 < metrics["f1"] < 1.0
    for name in ("report.json", "report.md", "metrics_by_language.png", "latency.png",
                 "recall_at_k.png"):
        assert (tmp_path / "out" / name).is_file()


@pytest.mark.parametrize(("prediction", "abstained", "em", "f1", "correct"), [
    ("Vistula [1].", False, 1.0, 1.0, True),
    # best gold "The Vistula river": P = 2/5, R = 2/2
    ("The Vistula river flows through Warsaw [2].", False, 0.0, 4 / 7, True),
    ("According to the sources, the Vistula [1].", False, 1.0, 1.0, True),
    ("The Oder.", False, 0.0, 0.0, False),
    ("The documents don't say.", True, 0.0, 0.0, False),
])
def test_score_row_takes_the_best_gold_answer(squad_file, prediction, abstained, em, f1,
                                              correct) -> None:
    w1 = squad.read_squad(squad_file).questions[5]
    score = squad.score_row({"answer": prediction, "abstained": abstained,
                             "timings": {"total_s": 1.0}}, w1)
    assert score.exact_match == em
    assert score.f1 == pytest.approx(f1)
    assert score.outcome.correct is correct
    assert score.outcome.total_s == 1.0
    assert score.outcome.own_words is correct  # nothing quoted


@pytest.mark.parametrize("prediction,expected", [("Vistula [1].", "en"), ("Warszawa [1].", "en"),
                                                 ("La Vistule traverse Varsovie [1].", "fr")])
def test_a_bare_name_is_in_the_question_s_language(squad_file, prediction, expected) -> None:
    w1 = squad.read_squad(squad_file).questions[5]  # an English question
    assert squad.score_row({"answer": prediction, "abstained": False}, w1).outcome.answer_language == expected


def test_own_words_do_not_count_the_quoted_sentence(squad_file) -> None:
    w1 = squad.read_squad(squad_file).questions[5]
    quoted = squad.score_row({"answer": "D'après les sources : « The Vistula river flows through Warsaw. » [2]",
                              "abstained": False}, w1)
    assert quoted.outcome.correct and not quoted.outcome.own_words


def test_evaluate_takes_any_json_file_for_squad_and_says_what_is_missing(tmp_path: Path) -> None:
    path = tmp_path / "items.json"
    path.write_text('{"id": "x", "question": "?"}')
    with pytest.raises(InputError, match='not a SQuAD-format file .*JSONL test set'):
        evaluate(path, tmp_path / "out", settings_in(tmp_path), progress=False)


def test_tuning_and_held_out_parts_split_by_paragraph(squad_file: Path) -> None:
    data = squad.read_squad(squad_file)
    tuning = squad.split_questions(data.questions, "tuning")
    held_out = squad.split_questions(data.questions, "held-out")
    assert sorted(q.id for q in tuning + held_out) == sorted(q.id for q in data.questions)
    assert not {q.doc_id for q in tuning} & {q.doc_id for q in held_out}
    with pytest.raises(InputError, match="part must be one of"):
        squad.split_questions(data.questions, "test")


@pytest.mark.parametrize("part", ["tuning", "held-out"])
def test_evaluate_asks_only_the_questions_of_one_part_over_the_whole_corpus(tmp_path: Path, squad_file: Path,
                                                                           part: str) -> None:
    settings = settings_in(tmp_path)
    pipeline = Pipeline(settings=settings, embedder=FakeEmbedder())
    report = evaluate(squad_file, tmp_path / "out", settings, pipeline=pipeline, progress=False,
                      answers=False, part=part)
    expected = squad.split_questions(squad.read_squad(squad_file).questions, part, squad.SPLIT_SEED)
    assert report["config"]["part"] == part
    assert report["config"]["questions"] == len(expected)
    assert report["baselines"]["hybrid"]["all"]["questions"] == sum(not q.impossible for q in expected)
    assert report["config"]["corpus"]["paragraphs"] == 3  # the corpus is still the whole file


def test_part_is_for_squad_files_only(tmp_path: Path, squad_file: Path) -> None:
    testset = tmp_path / "testset.jsonl"
    testset.write_text("", encoding="utf-8")
    with pytest.raises(InputError, match="only a SQuAD-format file"):
        evaluate(testset, tmp_path / "out", settings_in(tmp_path), progress=False, part="held-out")
    with pytest.raises(InputError, match="part must be"):
        evaluate(squad_file, tmp_path / "out", settings_in(tmp_path), progress=False, part="test")
