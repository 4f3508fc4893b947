"""The library in a real PostgreSQL with pgvector (pgserver's bundled server, on a unix socket in
a temporary folder): the same library operations as the folder store, shared by processes."""

from __future__ import annotations

import json
import tempfile
import uuid

import numpy as np
import pytest

import qa.pipeline
from qa import library
from qa.cli import main
from qa.errors import IndexMismatchError, IndexNotFoundError
from qa.index import extend_index
from qa.library import add_paths, index_sources, open_index, remove_names
from qa.loading import BUNDLED, BUNDLED_NAME
from qa.pgstore import SCHEMA_VERSION, PostgresStore, Vectors
from qa.pipeline import Pipeline
from qa.settings import Settings
from qa.stores import make_store
from tests.fakes import FakeEmbedder, FakeGenerator

pytestmark = pytest.mark.scaleout


@pytest.fixture(scope="session")
def postgres():
    """A PostgreSQL server with pgvector for the session: its data and socket in a fresh folder
    under /tmp (as root, pgserver runs it as its own `pgserver` user, created if missing)."""
    import pgserver

    server = pgserver.get_server(tempfile.mkdtemp(prefix="qa-pgserver-"), cleanup_mode="delete")
    yield server
    server.cleanup()


@pytest.fixture
def store_url(postgres) -> str:
    """A new, empty database of that server: each test has its own library."""
    import psycopg

    name = f"qa_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres.get_uri(), autocommit=True) as connection:
        connection.execute(f"CREATE DATABASE {name}")
    return postgres.get_uri(name)


@pytest.fixture
def pg_settings(settings, store_url) -> Settings:
    return settings.with_(store=store_url)


def fresh_store(url: str) -> PostgresStore:
    """The store as another process opens it: its own connections."""
    return PostgresStore(url)


def test_a_library_is_built_saved_and_read_back_from_postgresql(pg_settings, embedder):
    built = index_sources([BUNDLED], embedder, pg_settings)
    loaded = fresh_store(pg_settings.store).load()
    assert loaded.manifest == built.manifest
    assert loaded.chunks == built.chunks and loaded.documents == built.documents
    assert isinstance(loaded.vectors, Vectors) and loaded.vectors.ntotal == len(loaded.chunks)
    assert loaded.manifest.embedder == "fake" and loaded.manifest.dimension == 256


def test_search_through_pgvector_finds_what_faiss_finds(pg_settings, settings, embedder):
    in_postgres = index_sources([BUNDLED], embedder, pg_settings)
    in_folder = index_sources([BUNDLED], embedder, settings)
    for question in ("Combien de modèles dérivés de Qwen ?", "Plan d'action américain sur l'IA"):
        query = embedder.embed_batch([question], "query")[0]
        ours, theirs = in_postgres.search(query, 10), in_folder.search(query, 10)
        assert [i for i, _ in ours] == [i for i, _ in theirs]
        assert np.allclose([s for _, s in ours], [s for _, s in theirs], atol=1e-5)
    stored = in_postgres.vectors.reconstruct_n(0, in_postgres.vectors.ntotal)
    assert np.allclose(stored, in_folder.vectors.reconstruct_n(0, in_folder.vectors.ntotal), atol=1e-6)


def test_adding_and_removing_documents_change_only_those_rows(pg_settings, tmp_path):
    embedder = FakeEmbedder()
    before = index_sources([BUNDLED], embedder, pg_settings)
    note = tmp_path / "note.txt"
    note.write_text("Zorglub garde son coffre. Le code est 4321.", encoding="utf-8")
    query = embedder.embed_batch(["Quel est le code du coffre de Zorglub ?"], "query")[0]
    calls = embedder.calls
    change = add_paths([str(note)], embedder, pg_settings)
    assert change.added == ("note.txt",) and embedder.calls == calls + 1  # the note alone
    assert [e.name for e in make_store(pg_settings).read_manifest().documents] == [BUNDLED_NAME, "note.txt"]
    ids = change.index.vectors.ids
    assert ids[: len(before.chunks)] == before.vectors.ids  # the article's rows are the ones it had
    best, _ = change.index.search(query, 1)[0]
    assert change.index.chunks[best].source == "note.txt"
    smaller = remove_names(["note.txt"], pg_settings)
    assert embedder.calls == calls + 1 and smaller.chunks == before.chunks
    assert smaller.vectors.ids == before.vectors.ids


def test_the_cli_keeps_its_library_in_postgresql(pg_settings, monkeypatch, tmp_path, capsys):
    embedder = FakeEmbedder()
    monkeypatch.setenv("QA_STORE", pg_settings.store)
    monkeypatch.setenv("QA_INDEX_DIR", str(tmp_path / "never"))
    monkeypatch.setenv("QA_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(qa.pipeline, "make_embedder", lambda name, threads: embedder)
    monkeypatch.setattr(qa.pipeline, "make_generator", lambda *a, **k: FakeGenerator(" Le code est 4321 [1]."))
    monkeypatch.setattr("qa.embedding.make_embedder", lambda name, threads: embedder)
    note = tmp_path / "coffre.md"
    note.write_text("# Coffre\n\nLe code du coffre de Zorglub est 4321.", encoding="utf-8")
    assert main(["docs", "add", str(note)]) == 0
    assert main(["docs", "list", "--json"]) == 0
    capsys.readouterr()
    assert main(["docs", "list", "--json"]) == 0
    assert [e["name"] for e in json.loads(capsys.readouterr().out)] == [BUNDLED_NAME, "coffre.md"]
    assert main(["ask", "Quel est le code du coffre de Zorglub ?", "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["citations"][0]["source"] == "coffre.md"
    assert main(["docs", "remove", "coffre.md"]) == 0
    assert "coffre.md" not in capsys.readouterr().out.split("Removed")[0]
    assert not (tmp_path / "never").exists()  # nothing went to the folder store


def test_another_embedder_rebuilds_the_library_and_never_mixes_vectors(pg_settings):
    first = index_sources([BUNDLED], FakeEmbedder(), pg_settings)
    other = FakeEmbedder(dimension=64)
    other.name = "fake-64"
    rebuilt = open_index(pg_settings, other)
    assert rebuilt.manifest.embedder == "fake-64" and rebuilt.vectors.d == 64
    assert len(rebuilt.chunks) == len(first.chunks)
    expected = other.embed_batch([c.text for c in rebuilt.chunks], "passage")
    assert np.allclose(rebuilt.vectors.reconstruct_n(0, rebuilt.vectors.ntotal), expected, atol=1e-6)
    assert fresh_store(pg_settings.store).read_manifest().embedder == "fake-64"
    with pytest.raises(IndexMismatchError, match="built with embedder 'fake-64'"):
        extend_index(rebuilt, list(first.chunks[:1]), FakeEmbedder())  # nor by adding to it


def test_a_crash_mid_add_leaves_the_previous_library(pg_settings, tmp_path, monkeypatch):
    embedder = FakeEmbedder()
    before = index_sources([BUNDLED], embedder, pg_settings)
    real = PostgresStore._insert_passages

    def crash(self, connection, index, ours):
        real(self, connection, index, ours)  # the rows are written, the transaction not committed
        raise KeyboardInterrupt("power cut")

    monkeypatch.setattr(PostgresStore, "_insert_passages", crash)
    note = tmp_path / "note.txt"
    note.write_text("Le chat dort.", encoding="utf-8")
    with pytest.raises(KeyboardInterrupt):
        add_paths([str(note)], embedder, pg_settings)
    monkeypatch.undo()
    after = fresh_store(pg_settings.store).load()
    assert after.manifest == before.manifest and after.chunks == before.chunks
    assert after.vectors.version == before.vectors.version


def test_a_change_computed_from_a_stale_library_is_refused(pg_settings, tmp_path):
    embedder = FakeEmbedder()
    index_sources([BUNDLED], embedder, pg_settings)
    stale = make_store(pg_settings).load()
    note = tmp_path / "note.txt"
    note.write_text("Le chat dort.", encoding="utf-8")
    add_paths([str(note)], embedder, pg_settings)
    with pytest.raises(IndexMismatchError, match="changed by another process"):
        make_store(pg_settings).save(library.remove(stale, [BUNDLED_NAME]))  # would drop note.txt
    assert [e.name for e in make_store(pg_settings).read_manifest().documents] == [BUNDLED_NAME, "note.txt"]


def test_a_newer_schema_is_refused_with_the_fix(store_url):
    import psycopg

    fresh_store(store_url)  # migrated
    with psycopg.connect(store_url, autocommit=True) as connection:
        assert connection.execute("SELECT version FROM schema_version").fetchone() == (SCHEMA_VERSION,)
        connection.execute("UPDATE schema_version SET version = %s", (SCHEMA_VERSION + 1,))
    with pytest.raises(IndexMismatchError, match=f"schema version {SCHEMA_VERSION + 1}.*upgrade qa-sources"):
        fresh_store(store_url)


def test_an_empty_database_has_no_library_and_an_unreachable_one_says_so(store_url, tmp_path):
    with pytest.raises(IndexNotFoundError, match="no library in"):
        fresh_store(store_url).read_manifest()
    with pytest.raises(IndexNotFoundError, match="can't reach the library's database"):
        PostgresStore(f"postgresql://postgres@/nowhere?host={tmp_path}")


def test_two_processes_sharing_one_library_see_each_other_s_additions(pg_settings, tmp_path, monkeypatch):
    index_sources([BUNDLED], FakeEmbedder(), pg_settings)
    pipelines = []
    for _ in range(2):  # each with its own store object and connections, as two app processes
        monkeypatch.setattr(PostgresStore, "_open", {})
        pipelines.append(Pipeline(pg_settings, embedder=FakeEmbedder(),
                                  generator=FakeGenerator(" Le code est 4321 [1].")).load())
    first, second = pipelines
    assert first.store is not second.store
    note = tmp_path / "coffre.txt"
    note.write_text("Le code du coffre de Zorglub est 4321.", encoding="utf-8")
    change = add_paths([str(note)], first.embedder, pg_settings)
    assert change.added == ("coffre.txt",)
    answer = second.ask("Quel est le code du coffre de Zorglub ?")  # the second reloads first
    assert "coffre.txt" in {p.chunk.source for p in answer.passages}
    assert second.index.manifest.documents[-1].name == "coffre.txt"
    second_index = second.index
    second.ask("Quel est le code du coffre de Zorglub ?")
    assert second.index is second_index  # unchanged library: not reloaded


@pytest.mark.slow
@pytest.mark.parametrize("question", [
    "Combien de modèles dérivés ont été construits sur Qwen ?",  # fr-answerable, the README's
    "When was the US AI Action Plan published?",  # English, over the French article
    "Quel salaire exact DeepSeek propose-t-il ?",  # not in the article: declined
])
def test_the_real_stack_answers_the_same_from_postgresql(real_pipeline, store_url, question):
    settings = real_pipeline.settings.with_(store=store_url)
    index_sources([BUNDLED], real_pipeline.embedder, settings)
    # The same models, translations and remembered sentence vectors: a vector embedded in
    # another batch may differ in its last bits, and a tie between two sentences then breaks
    # the other way; the stores, not the batching, are compared here.
    in_postgres = Pipeline(settings, embedder=real_pipeline.embedder, generator=real_pipeline.generator,
                           evidence_embedder=real_pipeline.evidence_embedder,
                           translations=real_pipeline.translations,
                           _sentence_vectors=real_pipeline._sentence_vectors).load()
    assert isinstance(in_postgres.index.vectors, Vectors)
    expected, answer = real_pipeline.ask(question), in_postgres.ask(question)
    assert answer.text == expected.text and answer.abstained == expected.abstained
    assert [(c.n, c.chunk.chunk_id, c.quote) for c in answer.citations] == \
        [(c.n, c.chunk.chunk_id, c.quote) for c in expected.citations]
    assert [p.chunk.chunk_id for p in answer.passages] == [p.chunk.chunk_id for p in expected.passages]


@pytest.mark.usefixtures("model_always_drafts")
def test_a_document_added_through_one_web_page_is_answered_from_through_another(pg_settings, tmp_path, monkeypatch):
    import app
    from tests.files import minimal_pdf

    index_sources([BUNDLED], FakeEmbedder(), pg_settings)
    engines = []
    for _ in range(2):  # two app processes: their own store objects and connections, both loaded
        monkeypatch.setattr(PostgresStore, "_open", {})
        engine = app.Engine(pg_settings, embedder=FakeEmbedder(), shared_library=True,
                            generator=FakeGenerator(replies=[" le code du coffre de Zorglub est 4321 [1]."]))
        engine.base()
        engines.append(engine)
    first, second = engines
    assert first.base().store is not second.base().store
    pdf = tmp_path / "rapport.pdf"
    pdf.write_bytes(minimal_pdf("Introduction du rapport.", "Le coffre de Zorglub s'ouvre avec le code 4321."))
    app.upload(first, [str(pdf)], None)

    assert "rapport.pdf" in app.removable(second, None)
    chat, sources, _, _ = list(app.chat(second, "Quel est le code du coffre de Zorglub ?", [], None, 4, 64))[-1]
    assert "4321" in chat[-1]["content"] and "rapport.pdf" in sources.split("<details")[0]

    app.remove_documents(second, ["rapport.pdf"], None)  # and back: removed through the second
    assert "rapport.pdf" not in app.removable(first, None)
    assert [e.name for e in first.base().index.manifest.documents] == [BUNDLED_NAME]
