"""The document library: `qa docs add/list/remove`, kept on disk, changed one document at a time."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

import qa.pipeline
from qa import library
from qa.cli import main
from qa.documents import read_upload
from qa.errors import CorpusError
from qa.index import load_index, read_manifest
from qa.library import add_paths, index_sources, open_index, remove_names
from qa.loading import BUNDLED, BUNDLED_NAME
from tests.fakes import FakeEmbedder, FakeGenerator
from tests.files import minimal_docx, minimal_pdf


class CountingEmbedder(FakeEmbedder):
    """Remembers every text it embedded."""

    def __init__(self) -> None:
        super().__init__()
        self.texts: list[str] = []

    def embed_batch(self, texts, kind):
        self.texts.extend(texts)
        return super().embed_batch(texts, kind)


@pytest.fixture
def docs_cli(monkeypatch, tmp_path):
    """The CLI with fake models and its index in tmp_path; returns the embedder it uses."""
    monkeypatch.setenv("QA_INDEX_DIR", str(tmp_path / "index"))
    monkeypatch.setenv("QA_CACHE_DIR", str(tmp_path / "cache"))
    embedder = CountingEmbedder()
    generator = FakeGenerator(" Le code est 4321 [1].")
    monkeypatch.setattr(qa.pipeline, "make_embedder", lambda name, threads: embedder)
    monkeypatch.setattr(qa.pipeline, "make_generator", lambda *a, **k: generator)
    monkeypatch.setattr("qa.embedding.make_embedder", lambda name, threads: embedder)
    return embedder


def listed(capsys) -> list[dict]:
    capsys.readouterr()
    assert main(["docs", "list", "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_documents_added_from_the_cli_are_kept_listed_and_removed(docs_cli, tmp_path, capsys):
    pdf = tmp_path / "rapport.pdf"
    pdf.write_bytes(minimal_pdf("Introduction du rapport Zorglub.", "Le code du coffre est 4321."))
    assert main(["docs", "add", str(pdf)]) == 0
    assert "Added: rapport.pdf" in capsys.readouterr().out
    entries = listed(capsys)  # a new command reads the library from disk: it survived
    assert [e["name"] for e in entries] == [BUNDLED_NAME, "rapport.pdf"]
    pdf_entry = entries[1]
    assert pdf_entry["type"] == "pdf" and pdf_entry["pages"] == 2 and pdf_entry["passages"] >= 1
    assert pdf_entry["size"] == pdf.stat().st_size and pdf_entry["added"]
    assert main(["docs", "list"]) == 0
    table = capsys.readouterr().out
    assert "rapport.pdf" in table and "pages" in table.splitlines()[0]

    assert main(["ask", "Quel est le code du coffre ?", "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    cited = answer["citations"][0]
    assert cited["source"] == "rapport.pdf" and cited["page"] == 2

    assert main(["docs", "remove", "rapport.pdf"]) == 0
    assert [e["name"] for e in listed(capsys)] == [BUNDLED_NAME]
    assert "rapport.pdf" not in {c.source for c in load_index(tmp_path / "index").chunks}


def test_adding_embeds_only_the_new_document_and_removing_embeds_nothing(settings, tmp_path):
    embedder = CountingEmbedder()
    before = index_sources([BUNDLED], embedder, settings)
    note = tmp_path / "note.txt"
    note.write_text("Zorglub garde son coffre. Le code est 4321.", encoding="utf-8")
    embedder.texts.clear()
    change = add_paths([str(note)], embedder, settings)
    assert change.added == ("note.txt",)
    new = [c for c in change.index.chunks if c.source == "note.txt"]
    assert embedder.texts == [c.text for c in new]  # the article was not embedded again
    saved = load_index(settings.index_dir)
    # the article's vectors are the ones it had
    assert np.allclose(saved.vectors.reconstruct_n(0, len(before.chunks)),
                       before.vectors.reconstruct_n(0, len(before.chunks)))
    embedder.texts.clear()
    smaller = remove_names(["note.txt"], settings)
    assert embedder.texts == []
    assert smaller.chunks == before.chunks
    assert np.allclose(smaller.vectors.reconstruct_n(0, smaller.vectors.ntotal),
                       before.vectors.reconstruct_n(0, before.vectors.ntotal))


def test_the_same_file_twice_is_recognised_and_a_changed_one_replaces_it(settings, embedder, tmp_path):
    index_sources([BUNDLED], embedder, settings)
    note = tmp_path / "note.txt"
    note.write_text("Le chat dort.", encoding="utf-8")
    assert add_paths([str(note)], embedder, settings).added == ("note.txt",)
    again = add_paths([str(note)], embedder, settings)
    assert again.added == () and again.skipped == ("note.txt",)
    note.write_text("Le chien aboie.", encoding="utf-8")
    changed = add_paths([str(note)], embedder, settings)
    assert changed.replaced == ("note.txt",) and changed.added == ()
    names = [e.name for e in read_manifest(settings.index_dir).documents]
    assert names == [BUNDLED_NAME, "note.txt"]
    texts = " ".join(c.text for c in load_index(settings.index_dir).chunks)
    assert "chien" in texts and "chat" not in texts


def test_the_bundled_article_can_be_removed_and_restored(docs_cli, capsys):
    assert main(["index"]) == 0
    assert main(["docs", "remove", BUNDLED_NAME]) == 0
    assert listed(capsys) == []
    assert main(["ask", "Qu'est-ce que Qwen ?"]) == 1
    err = capsys.readouterr().err
    assert "library is empty" in err and "qa docs add --bundled" in err
    assert main(["docs", "add", "--bundled"]) == 0
    assert [e["name"] for e in listed(capsys)] == [BUNDLED_NAME]


def test_unknown_names_and_unusable_files_are_refused_and_nothing_is_lost(docs_cli, tmp_path, capsys):
    assert main(["docs", "list", "--json"]) == 0  # no index yet: an empty list
    assert json.loads(capsys.readouterr().out) == []
    good = tmp_path / "good.txt"
    good.write_text("Un bon texte.", encoding="utf-8")
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"caf\xe9")
    assert main(["docs", "add", str(good), str(bad)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "bad.txt is not UTF-8" in err
    assert [e["name"] for e in listed(capsys)] == [BUNDLED_NAME]  # nothing of the batch added
    assert main(["docs", "remove", "nope.txt"]) == 1
    err = capsys.readouterr().err
    assert "no document called 'nope.txt'" in err and BUNDLED_NAME in err
    assert [e["name"] for e in listed(capsys)] == [BUNDLED_NAME]
    assert main(["docs", "add"]) == 2


def test_a_document_removed_from_a_watched_folder_does_not_come_back(settings, embedder, tmp_path):
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "a.txt").write_text("Texte A sur Zorglub.", encoding="utf-8")
    (folder / "b.txt").write_text("Texte B sur Zorglub.", encoding="utf-8")
    index_sources([str(folder)], embedder, settings)
    remove_names(["a.txt"], settings)
    (folder / "c.txt").write_text("Texte C sur Zorglub.", encoding="utf-8")  # the folder changes
    names = [e.name for e in open_index(settings, embedder).manifest.documents]
    assert names == ["b.txt"]  # b is still watched by name; a stays removed


def test_a_file_gone_from_disk_stays_in_the_library(settings, embedder, tmp_path):
    note = tmp_path / "note.txt"
    note.write_text("Le chat dort.", encoding="utf-8")
    index_sources([str(note)], embedder, settings)
    note.unlink()
    index = open_index(settings, embedder)
    assert [e.name for e in index.manifest.documents] == ["note.txt"]
    assert read_manifest(settings.index_dir).sources == ()  # no longer watched


def test_pdf_pages_and_headings_are_carried_to_the_passages(tmp_path):
    pdf = tmp_path / "r.pdf"
    pdf.write_bytes(minimal_pdf("Page one text.", "", "Page three text."))
    doc = read_upload(pdf)
    assert doc.pages == (0, 16, 16) and doc.text[16:] == "Page three text."
    [chunk] = library.chunk_documents([doc], 600, 0)
    assert chunk.page == 1 and chunk.page_at(doc.text.index("three")) == 3

    md = tmp_path / "m.md"
    md.write_text("Intro.\n\n# Qui est concerné ?\n\nLes parents.\n", encoding="utf-8")
    doc = read_upload(md)
    [chunk] = library.chunk_documents([doc], 600, 0)
    assert chunk.section == "" and chunk.section_at(doc.text.index("parents")) == "Qui est concerné ?"
    [late] = library.chunk_documents([doc], 600, 0)[-1:]
    assert late.section_at(late.end - 1) == "Qui est concerné ?"


@pytest.mark.parametrize("kind", ["md", "html", "docx"])
def test_each_structured_type_gives_sections(tmp_path, kind):
    path = tmp_path / f"doc.{kind}"
    if kind == "md":
        path.write_text("# Production\n\nLe code est 4321.", encoding="utf-8")
    elif kind == "html":
        path.write_text("<h2>Production</h2><p>Le code est 4321.</p>", encoding="utf-8")
    else:
        minimal_docx(path, ["Le code est 4321."], headings={0: "Production"})
    doc = read_upload(path)
    chunks = library.chunk_documents([doc], 600, 0)
    offset = doc.text.index("4321")
    [chunk] = [c for c in chunks if c.start <= offset < c.end]
    assert chunk.section_at(offset) == "Production"


def test_an_empty_batch_of_sources_is_an_error_not_the_article(settings, embedder):
    index_sources([BUNDLED], embedder, settings)
    with pytest.raises(CorpusError):
        add_paths([str(settings.index_dir / "missing.txt")], embedder, settings)


def test_odt_and_epub_are_read_with_their_headings(tmp_path):
    from tests.files import minimal_epub, minimal_odt

    odt = minimal_odt(tmp_path / "note.odt", ["Intro.", "Le code est 4321."], headings={1: "Accès"})
    doc = read_upload(odt)
    assert doc.text == "Intro.\nAccès\nLe code est 4321." and doc.sections == ((7, "Accès"),)
    book = minimal_epub(tmp_path / "livre.epub", [("Début", "Il était une fois."),
                                                   ("Le coffre", "Le code est 4321.")])
    doc = read_upload(book)
    assert "Il était une fois." in doc.text and "Le code est 4321." in doc.text
    offset = doc.text.index("4321")
    [chunk] = [c for c in library.chunk_documents([doc], 600, 0) if c.start <= offset < c.end]
    assert chunk.section_at(offset) == "Le coffre"


@pytest.mark.parametrize("name, content, message", [
    ("fake.odt", b"not a zip", "not an .odt file"),
    ("fake.epub", b"not a zip", "not an .epub file"),
    ("broken.odt", b"PK\x03\x04broken", "not a readable .odt file"),
    ("broken.epub", b"PK\x03\x04broken", "not a readable .epub file"),
])
def test_unreadable_odt_and_epub_are_refused_in_one_line(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(CorpusError, match=message) as raised:
        read_upload(path)
    assert "\n" not in str(raised.value)


def test_a_scanned_pdf_without_ocr_says_what_to_install(tmp_path, monkeypatch):
    from tests.files import scanned_pdf

    pdf = scanned_pdf(tmp_path / "scan.pdf", ["Le code du coffre est 4321."])
    monkeypatch.setattr("shutil.which", lambda name: None)
    with pytest.raises(CorpusError, match="scanned PDF.*apt-get install tesseract-ocr tesseract-ocr-fra"):
        read_upload(pdf)


def test_a_pdf_over_the_page_limit_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr("qa.documents.MAX_PAGES", 2)
    pdf = tmp_path / "long.pdf"
    pdf.write_bytes(minimal_pdf("Un.", "Deux.", "Trois."))
    with pytest.raises(CorpusError, match="long.pdf has 3 pages; the limit is 2"):
        read_upload(pdf)


@pytest.mark.skipif(shutil.which("tesseract") is None, reason="tesseract-ocr is not installed (CI installs it)")
def test_a_scanned_pdf_is_read_by_ocr(tmp_path):
    from tests.files import scanned_pdf

    pdf = scanned_pdf(tmp_path / "scan.pdf", ["Le code du coffre est 4321.", "Zorglub le garde."])
    doc = read_upload(pdf)
    assert "4321" in doc.text and "Zorglub" in doc.text and doc.pages == (0,)
