"""The CLI turns every error into one line on stderr and a non-zero exit; never a traceback."""

import json

import pytest

import qa.pipeline
from qa.cli import main
from qa.translations import translation_memory_path
from tests.fakes import FakeEmbedder, FakeGenerator


@pytest.fixture
def fakes(monkeypatch, tmp_path):
    """The CLI with fake models, an index folder in tmp_path."""
    monkeypatch.setenv("QA_INDEX_DIR", str(tmp_path / "index"))
    monkeypatch.setenv("QA_CACHE_DIR", str(tmp_path / "cache"))
    generator = FakeGenerator(" la famille Qwen compte plus de 100 000 modèles dérivés [1].")
    monkeypatch.setattr(qa.pipeline, "make_embedder", lambda name, threads: FakeEmbedder())
    monkeypatch.setattr(qa.pipeline, "make_generator", lambda *a, **k: generator)
    monkeypatch.setattr("qa.embedding.make_embedder", lambda name, threads: FakeEmbedder())
    return tmp_path


def one_line_error(capsys, code, expected_code, fragment):
    out, err = capsys.readouterr()
    assert code == expected_code
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("qa: error: ") and fragment in lines[0]
    assert "Traceback" not in err


def test_ask_streams_the_answer_and_lists_cited_sources(fakes, capsys):
    assert main(["ask", "Combien de modèles dérivés ont été construits sur Qwen ?"]) == 0
    out = capsys.readouterr().out
    assert "100 000" in out and "Sources:" in out and "[[" in out  # the quote is marked


def test_ask_in_the_direct_style_prints_the_best_evidence_before_the_answer(fakes, capsys, monkeypatch):
    monkeypatch.setattr(qa.pipeline, "make_generator",
                        lambda *a, **k: FakeGenerator("Plus de 100 000 modèles dérivés [1]."))
    assert main(["ask", "Combien de modèles dérivés ont été construits sur Qwen ?", "--answer-style", "direct"]) == 0
    out = capsys.readouterr().out
    evidence, answer = out.index("Meilleur passage [1]"), out.index("Plus de 100 000 modèles dérivés [1].")
    assert evidence < answer and "«\u00a0" in out[evidence:answer]


def test_ask_json_prints_exactly_one_object(fakes, capsys):
    assert main(["ask", "Combien de modèles dérivés ont été construits sur Qwen ?", "--json"]) == 0
    out = capsys.readouterr().out
    data = json.loads(out)
    assert data["abstained"] is False and data["citations"][0]["quote"]
    assert out.count("\n") == 1


def test_translate_prepares_the_other_language_once(fakes, capsys):
    assert main(["translate", "--to", "en"]) == 0
    first = capsys.readouterr().out
    assert main(["translate"]) == 0
    second = capsys.readouterr().out
    translated = int(first.split()[1])
    assert translated > 0 and "0 already remembered" in first
    assert second.startswith("Translated 0 sentence(s) now, " + f"{translated} already remembered")
    assert translation_memory_path(fakes / "cache", "fake-llm").is_file()


@pytest.mark.parametrize("question,fragment", [("", "empty"), ("   ", "empty"), ("q" * 5000, "limit is 1000")])
def test_bad_questions(fakes, capsys, question, fragment):
    one_line_error(capsys, main(["ask", question]), 2, fragment)


@pytest.mark.parametrize("name,content,fragment", [
    ("latin1.txt", "Café".encode("latin-1"), "not UTF-8"),
    ("empty.txt", b"", "empty"),
    ("image.png", b"\x89PNG", "unsupported file type"),
])
def test_index_rejects_bad_files_and_keeps_the_previous_index(fakes, capsys, name, content, fragment):
    assert main(["index"]) == 0
    before = (fakes / "index" / "CURRENT").read_text()
    capsys.readouterr()
    bad = fakes / name
    bad.write_bytes(content)
    one_line_error(capsys, main(["index", str(bad)]), 1, fragment)
    assert (fakes / "index" / "CURRENT").read_text() == before
    assert main(["ask", "Combien de modèles dérivés ont été construits sur Qwen ?", "--json"]) == 0


def test_index_missing_path(fakes, capsys):
    one_line_error(capsys, main(["index", str(fakes / "nope.md")]), 1, "does not exist")


def test_corrupt_index(fakes, capsys):
    assert main(["index"]) == 0
    name = (fakes / "index" / "CURRENT").read_text().strip()
    (fakes / "index" / "builds" / name / "vectors.faiss").write_bytes(b"junk")
    capsys.readouterr()
    one_line_error(capsys, main(["ask", "Qu'est-ce que Qwen ?"]), 1, "rebuild it with `qa index`")


def test_index_built_with_another_embedder_whose_documents_are_gone(fakes, capsys, monkeypatch):
    doc = fakes / "notes.txt"
    doc.write_text("Une note sur Qwen.", encoding="utf-8")
    assert main(["index", str(doc)]) == 0
    doc.unlink()
    other = FakeEmbedder()
    other.name = "other"
    monkeypatch.setattr(qa.pipeline, "make_embedder", lambda name, threads: other)
    capsys.readouterr()
    assert main(["ask", "Qu'est-ce que Qwen ?", "--json"]) == 0  # re-embedded from the library's copy
    answer = json.loads(capsys.readouterr().out)
    assert answer["passages"][0]["source"] == "notes.txt"


def test_bad_setting_from_the_environment(fakes, capsys, monkeypatch):
    monkeypatch.setenv("QA_TOP_K", "zero")
    one_line_error(capsys, main(["ask", "Qu'est-ce que Qwen ?"]), 2, "QA_TOP_K must be an integer")


def test_unknown_model_name_offline(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("QA_INDEX_DIR", str(tmp_path / "index"))
    monkeypatch.setattr(qa.pipeline, "make_embedder", lambda name, threads: FakeEmbedder())
    one_line_error(capsys, main(["ask", "Qu'est-ce que Qwen ?", "--llm", "nonexistent-model"]), 1,
                   "unknown language model 'nonexistent-model'")
    one_line_error(capsys, main(["ask", "Qu'est-ce que Qwen ?", "--llm", "someone/missing-model"]), 1,
                   "could not be loaded from the model hub")


def test_unknown_embedder_offline(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("QA_INDEX_DIR", str(tmp_path / "index"))
    one_line_error(capsys, main(["index", "--embedder", "someone/missing-embedder"]), 1,
                   "embedder 'someone/missing-embedder' could not be loaded")


def test_models_lists_what_is_packaged(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("QA_CACHE_DIR", str(tmp_path))
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "use-multilingual" in out and "qwen2.5-coder-0.5b" in out and "not prepared yet" in out


def test_when_only_citation_numbers_moved_the_answer_is_not_repeated(fakes, capsys, monkeypatch):
    monkeypatch.setenv("QA_ANSWER_STYLE", "generative")  # the streamed draft is then the answer
    generator = FakeGenerator(" la famille Qwen compte plus de 100 000 modèles dérivés [4].")
    monkeypatch.setattr(qa.pipeline, "make_generator", lambda *a, **k: generator)
    assert main(["ask", "Combien de modèles dérivés ont été construits sur Qwen ?"]) == 0
    out = capsys.readouterr().out
    assert out.count("100 000 modèles dérivés") == 2  # the streamed answer and the quoted source
    assert "Citations vérifiées: [1]" in out and "caractères" in out


def test_eval_part_is_a_usage_error_on_the_jsonl_test_set(fakes, capsys):
    code = main(["eval", "--testset", "tests/data/testset.jsonl", "--part", "held-out", "--retrieval-only",
                 "--out", str(fakes / "out")])
    one_line_error(capsys, code, 2, "only a SQuAD-format file")


def test_the_evidence_embedder_flag_reaches_the_answer_and_the_index_keeps_its_own(fakes, capsys, monkeypatch):
    def named(name, threads):
        embedder = FakeEmbedder()
        embedder.name = name
        return embedder

    monkeypatch.setattr(qa.pipeline, "make_embedder", named)
    code = main(["ask", "Qu'est-ce que Qwen ?", "--json", "--embedder", "fake", "--evidence-embedder", "other"])
    assert code == 0
    models = json.loads(capsys.readouterr().out)["models"]
    assert (models["embedder"], models["evidence_embedder"]) == ("fake", "other")
    assert json.loads((fakes / "index" / "builds" / (fakes / "index" / "CURRENT").read_text().strip()
                       / "manifest.json").read_text())["embedder"] == "fake"
