import json

import numpy as np
import pytest

import qa.index as index_module
from qa.chunking import DENSE_HEADERS, indexed_text
from qa.errors import IndexCorruptError, IndexMismatchError, IndexNotFoundError
from qa.index import extend_index, load_index, read_manifest, save_index
from qa.library import build_from_sources, index_sources, open_index
from qa.loading import BUNDLED
from tests.fakes import FakeEmbedder


def test_save_then_load_round_trips(settings, embedder):
    built = index_sources([BUNDLED], embedder, settings)
    loaded = load_index(settings.index_dir)
    assert loaded.manifest == built.manifest
    assert loaded.chunks == built.chunks
    assert loaded.manifest.embedder == "fake" and loaded.manifest.dimension == 256
    assert loaded.vectors.ntotal == len(built.chunks)


def test_missing_index_says_how_to_build_one(tmp_path):
    with pytest.raises(IndexNotFoundError, match="run `qa index` first"):
        load_index(tmp_path / "nothing")


def test_open_index_builds_over_the_bundled_article_when_missing(settings, embedder):
    index = open_index(settings, embedder)
    assert index.manifest.sources == (BUNDLED,)
    assert read_manifest(settings.index_dir).n_chunks == len(index.chunks)


def test_crash_while_saving_leaves_the_previous_index_usable(settings, embedder, monkeypatch):
    first = index_sources([BUNDLED], embedder, settings)
    new = build_from_sources([BUNDLED], embedder, settings.with_(chunk_size=300))

    def crash(*args, **kwargs):
        raise KeyboardInterrupt("power cut")

    monkeypatch.setattr("faiss.write_index", crash)
    with pytest.raises(KeyboardInterrupt):
        save_index(new, settings.index_dir)
    monkeypatch.undo()
    assert load_index(settings.index_dir).chunks == first.chunks
    leftovers = [p.name for p in (settings.index_dir / "builds").iterdir()]
    assert len(leftovers) == 1 and not leftovers[0].endswith(".partial")


@pytest.mark.parametrize("victim", ["vectors.faiss", "chunks.jsonl", "manifest.json"])
def test_corrupt_index_files_are_reported(settings, embedder, victim):
    index_sources([BUNDLED], embedder, settings)
    build = index_module.current_build(settings.index_dir)
    (build / victim).write_bytes(b"\x00garbage{")
    with pytest.raises(IndexCorruptError, match="rebuild it with `qa index`"):
        load_index(settings.index_dir)


def test_inconsistent_counts_are_reported(settings, embedder):
    index_sources([BUNDLED], embedder, settings)
    build = index_module.current_build(settings.index_dir)
    lines = (build / "chunks.jsonl").read_text().splitlines()
    (build / "chunks.jsonl").write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(IndexCorruptError, match="inconsistent"):
        load_index(settings.index_dir)


def test_pointer_to_a_missing_build_is_reported(settings, embedder):
    index_sources([BUNDLED], embedder, settings)
    (settings.index_dir / "CURRENT").write_text("gone\n")
    with pytest.raises(IndexCorruptError, match="missing build"):
        load_index(settings.index_dir)


@pytest.mark.parametrize("change", [{"chunk_size": 300}, {"chunk_overlap": 20}])
def test_changed_chunk_settings_trigger_a_rebuild(settings, embedder, change):
    before = index_sources([BUNDLED], embedder, settings)
    after = open_index(settings.with_(**change), embedder)
    assert after.manifest.created >= before.manifest.created
    assert (after.manifest.chunk_size, after.manifest.chunk_overlap) != (
        before.manifest.chunk_size, before.manifest.chunk_overlap)
    assert read_manifest(settings.index_dir) == after.manifest


def test_other_embedder_triggers_a_rebuild(settings):
    index_sources([BUNDLED], FakeEmbedder(), settings)
    other = FakeEmbedder(dimension=64)
    other.name = "fake-64"
    rebuilt = open_index(settings, other)
    assert rebuilt.manifest.embedder == "fake-64" and rebuilt.vectors.d == 64


def test_another_embedder_of_the_same_dimension_rebuilds_never_mixes(settings):
    first = index_sources([BUNDLED], FakeEmbedder(), settings)
    other = FakeEmbedder(synonyms={"modeles": "qwen"})  # 256 dimensions too, another space
    other.name = "multilingual-e5-small"
    rebuilt = open_index(settings, other)
    assert rebuilt.manifest.embedder == "multilingual-e5-small"
    assert rebuilt.vectors.ntotal == len(rebuilt.chunks) == len(first.chunks)
    expected = other.embed_batch([indexed_text(c, DENSE_HEADERS) for c in rebuilt.chunks], "passage")
    stored = rebuilt.vectors.reconstruct_n(0, rebuilt.vectors.ntotal)
    assert np.allclose(stored, expected)  # every vector from the new embedder
    assert read_manifest(settings.index_dir).embedder == "multilingual-e5-small"
    with pytest.raises(IndexMismatchError, match="built with embedder 'multilingual-e5-small'"):
        extend_index(rebuilt, list(first.chunks[:1]), FakeEmbedder())  # nor by adding to it


def test_changed_document_triggers_a_rebuild(settings, embedder, tmp_path):
    doc = tmp_path / "notes.txt"
    doc.write_text("Le chat dort sur le canapé.", encoding="utf-8")
    index_sources([str(doc)], embedder, settings)
    doc.write_text("Le chien aboie dans le jardin.", encoding="utf-8")
    index = open_index(settings, embedder)
    assert "chien" in index.chunks[0].text


def test_unchanged_index_is_loaded_not_rebuilt(settings, embedder):
    index_sources([BUNDLED], embedder, settings)
    calls = embedder.calls
    open_index(settings, embedder)
    assert embedder.calls == calls


def test_unchanged_files_are_not_read_again(settings, embedder, tmp_path, monkeypatch):
    doc = tmp_path / "notes.txt"
    doc.write_text("Le chat dort sur le canapé.", encoding="utf-8")
    index_sources([str(doc)], embedder, settings)

    def no_reading(sources):
        raise AssertionError("the documents were read again")

    monkeypatch.setattr("qa.library.read_sources", no_reading)
    assert "chat" in open_index(settings, embedder).chunks[0].text  # names, sizes, times suffice
    doc.write_text("Le chien aboie dans le jardin.", encoding="utf-8")
    with pytest.raises(AssertionError, match="read again"):  # a changed file is read
        open_index(settings, embedder)


def test_a_touched_but_unchanged_file_is_read_once_then_remembered(settings, embedder, tmp_path, monkeypatch):
    import os

    import qa.library

    doc = tmp_path / "notes.txt"
    doc.write_text("Le chat dort sur le canapé.", encoding="utf-8")
    index_sources([str(doc)], embedder, settings)
    os.utime(doc, ns=(1_000_000_000, 1_000_000_000))  # a checkout or a copy: same text, new time
    reads = []
    real = qa.library.read_sources
    monkeypatch.setattr("qa.library.read_sources", lambda sources: reads.append(1) or real(sources))
    calls = embedder.calls
    open_index(settings, embedder)
    open_index(settings, embedder)
    assert reads == [1] and embedder.calls == calls  # read once to compare, not rebuilt


def rewrite_manifest(index_dir, change) -> None:
    """Edit the current build's manifest.json in place, as an older version would have written it."""
    path = index_module.current_build(index_dir) / "manifest.json"
    manifest = json.loads(path.read_text())
    change(manifest)
    path.write_text(json.dumps(manifest))


def test_an_index_without_a_files_stamp_is_checked_by_reading(settings, embedder, tmp_path):
    doc = tmp_path / "notes.txt"
    doc.write_text("Le chat dort sur le canapé.", encoding="utf-8")
    index_sources([str(doc)], embedder, settings)
    rewrite_manifest(settings.index_dir, lambda m: m.pop("files_stamp"))  # as before the stamp existed
    assert read_manifest(settings.index_dir).files_stamp == ""
    doc.write_text("Le chien aboie dans le jardin.", encoding="utf-8")
    assert "chien" in open_index(settings, embedder).chunks[0].text


def test_a_library_whose_files_are_gone_is_re_embedded_from_its_own_texts(settings, embedder, tmp_path):
    doc = tmp_path / "gone.txt"
    doc.write_text("Un texte qui va disparaître.", encoding="utf-8")
    index_sources([str(doc)], embedder, settings)
    doc.unlink()
    other = FakeEmbedder()
    other.name = "other"
    rebuilt = open_index(settings, other)
    assert rebuilt.manifest.embedder == "other"
    assert "disparaître" in rebuilt.chunks[0].text and rebuilt.documents[0].text.startswith("Un texte")
    assert read_manifest(settings.index_dir).embedder == "other"


def test_an_older_index_whose_files_are_gone_names_the_fix(settings, embedder, tmp_path):
    doc = tmp_path / "gone.txt"
    doc.write_text("Un texte qui va disparaître.", encoding="utf-8")
    index_sources([str(doc)], embedder, settings)
    rewrite_manifest(settings.index_dir, lambda m: m.update(format_version=1))  # as before the library
    doc.unlink()
    with pytest.raises(IndexMismatchError, match="older format.*qa index"):
        open_index(settings, embedder)


def test_an_index_embedded_with_other_headers_is_re_embedded_from_its_own_texts(settings, embedder, tmp_path):
    doc = tmp_path / "mediation-familiale.txt"
    doc.write_text("Une séance coûte entre 2 et 131 euros.", encoding="utf-8")
    before = index_sources([str(doc)], embedder, settings)
    assert before.manifest.dense_headers == DENSE_HEADERS
    rewrite_manifest(settings.index_dir, lambda m: m.update(dense_headers="title"))  # as if titles were embedded
    old = read_manifest(settings.index_dir)
    assert old.mismatches(embedder.name, settings.chunk_size, settings.chunk_overlap) == [
        f"passages embedded with headers 'title', this version embeds them with {DENSE_HEADERS or 'none'!r}"]
    with pytest.raises(IndexMismatchError, match="embedded with headers 'title'"):  # never mixed
        extend_index(load_index(settings.index_dir), list(before.chunks), embedder)
    doc.unlink()  # re-embedded from the library's own text: the file need not be there
    calls = embedder.calls
    after = open_index(settings, embedder)
    assert embedder.calls > calls and read_manifest(settings.index_dir).dense_headers == DENSE_HEADERS
    assert after.chunks == before.chunks  # the same passages, offsets and ids
    expected = embedder.embed_batch([indexed_text(c, DENSE_HEADERS) for c in after.chunks], "passage")
    assert np.allclose(after.vectors.reconstruct_n(0, len(after.chunks)), expected)


def test_an_index_from_before_the_headers_field_is_re_embedded_only_if_headers_are_embedded(settings, embedder):
    index_sources([BUNDLED], embedder, settings)
    rewrite_manifest(settings.index_dir, lambda m: m.pop("dense_headers"))  # as written before the field
    assert read_manifest(settings.index_dir).dense_headers == ""
    calls = embedder.calls
    open_index(settings, embedder)
    assert (embedder.calls > calls) == (DENSE_HEADERS != "")


def test_manifest_records_what_the_issue_names(settings, embedder):
    index_sources([BUNDLED], embedder, settings)
    build = index_module.current_build(settings.index_dir)
    manifest = json.loads((build / "manifest.json").read_text())
    for key in ("format_version", "embedder", "dimension", "chunk_size", "chunk_overlap", "corpus_hash"):
        assert key in manifest


def clustered_unit_vectors(n: int, dimension: int = 48, clusters: int = 40, seed: int = 0) -> np.ndarray:
    """Unit vectors around a few centres, like embeddings of passages on a few subjects."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dimension))
    vectors = centres[rng.integers(0, clusters, n)] + 0.6 * rng.normal(size=(n, dimension))
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def test_approximate_index_finds_what_exact_search_finds():
    vectors = clustered_unit_vectors(3000)
    queries = clustered_unit_vectors(100, seed=1)
    exact = index_module.vector_store(vectors)
    approximate = index_module.vector_store(vectors, approximate_from=1000)
    assert not hasattr(exact, "hnsw") and hasattr(approximate, "hnsw")
    chunks = tuple(range(len(vectors)))  # only counted by Index.search
    truth = [{i for i, _ in index_module.Index(None, chunks, exact).search(q, 10)} for q in queries]
    found = [{i for i, _ in index_module.Index(None, chunks, approximate).search(q, 10)} for q in queries]
    recall = np.mean([len(f & t) / 10 for f, t in zip(found, truth, strict=True)])
    assert recall >= 0.98
    # asked for more than it keeps while searching, it still returns as many
    assert len(index_module.Index(None, chunks, approximate).search(queries[0], 500)) == 500


def test_an_approximate_index_is_saved_and_loaded(settings, embedder, monkeypatch):
    monkeypatch.setattr(index_module, "APPROXIMATE_FROM", 1)
    monkeypatch.setattr(index_module.vector_store, "__defaults__", (1,))
    built = index_sources([BUNDLED], embedder, settings)
    loaded = load_index(settings.index_dir)
    assert hasattr(loaded.vectors, "hnsw") and loaded.vectors.ntotal == len(built.chunks)
    query = embedder.embed_batch([built.chunks[3].text], "query")[0]
    assert loaded.search(query, 1)[0][0] == 3
