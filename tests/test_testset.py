from __future__ import annotations

import json
from pathlib import Path

import pytest

from qa.chunking import chunk_documents
from qa.errors import InputError
from qa.loading import make_document
from qa.testset import document_texts, load_testset, select

# --- a small corpus and test set (the evaluation's tests run them too) ---------------------------

FRENCH = (
    "La famille Qwen d’Alibaba compte plus de 100\u202f000 modèles dérivés.\n"
    "Le gouvernement soutient l’open source par des subventions publiques.\n"
    "DeepSeek a publié son modèle de raisonnement R1 au début de l’année."
)
ENGLISH = (
    "The Qwen family overtook the Llama community of Meta on Hugging Face.\n"
    "Chinese laboratories publish their weights under permissive licences."
)

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


def write_jsonl(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def testset(tmp_path: Path) -> Path:
    return write_jsonl(tmp_path / "testset.jsonl",
                       [json.dumps(item, ensure_ascii=False) for item in ITEMS])


def test_load_testset_reads_items(testset: Path) -> None:
    items = load_testset(testset, [FRENCH, ENGLISH])
    assert [i.id for i in items] == ["fr-1", "fr-2", "en-1", "en-2"]
    assert items[0].answer_groups == (("100 000", "100000"),)
    assert items[0].evidence == ("plus de 100 000 modèles dérivés",)


def test_the_project_testset_is_valid_against_the_bundled_article() -> None:
    from qa.loading import bundled_document

    path = Path(__file__).parent / "data" / "testset.jsonl"
    items = load_testset(path, bundled_document().text)
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
        load_testset(path, [FRENCH])
    assert f"line 3: {expected}" in str(error.value)


def test_load_testset_lists_every_bad_line(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "t.jsonl", ["{", json.dumps(ITEMS[0]), bad(lang="it")])
    with pytest.raises(InputError, match=r"2 bad line\(s\): line 1: invalid JSON .*; line 3: "):
        load_testset(path, FRENCH)


@pytest.mark.parametrize(("content", "expected"), [
    (None, "does not exist"),
    ("\n\n", "holds no questions"),
])
def test_load_testset_rejects_missing_or_empty_files(tmp_path: Path, content, expected) -> None:
    path = tmp_path / "t.jsonl"
    if content is not None:
        path.write_text(content)
    with pytest.raises(InputError, match=expected):
        load_testset(path, FRENCH)


def test_document_texts_rebuilds_the_documents_from_overlapping_chunks() -> None:
    docs = [make_document("a.txt", FRENCH), make_document("b.txt", ENGLISH)]
    chunks = chunk_documents(docs, 120, 40)
    assert len(chunks) > 2
    assert document_texts(chunks) == [FRENCH.replace("\n", " "), ENGLISH.replace("\n", " ")]


@pytest.mark.parametrize(("limit", "expected"), [
    (None, ["fr-1", "fr-2", "en-1", "en-2"]),
    (1, ["fr-1"]),
    (3, ["fr-1", "en-1", "fr-2"]),
    (10, ["fr-1", "fr-2", "en-1", "en-2"]),
])
def test_select_alternates_languages(testset: Path, limit, expected) -> None:
    items = load_testset(testset, [FRENCH, ENGLISH])
    assert [i.id for i in select(items, limit)] == expected
