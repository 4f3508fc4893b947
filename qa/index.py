"""The saved index: a versioned folder with a manifest, vectors in FAISS, passages in JSONL.

Layout of `index_dir`:

    CURRENT                 name of the active build (replaced atomically)
    builds/<build>/manifest.json, vectors.faiss, chunks.jsonl, documents.jsonl

The index is also the library: `documents.jsonl` keeps each document's extracted text (with its
pages and headings) and the manifest lists them (`Entry`), so documents survive restarts, can be
shown whole, and can be re-embedded without their files (qa.library adds and removes them).

A build is written completely in its own folder before CURRENT is switched to it, so a crash
mid-build leaves the previous index in use. Cosine similarity is an inner product over
L2-normalised vectors: searched exactly (`IndexFlatIP`) up to `APPROXIMATE_FROM` passages, past
that through an HNSW graph (`IndexHNSWFlat`), whose recall@10 against exact search is measured
in docs/retrieval.md.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from qa.chunking import DENSE_HEADERS, indexed_text
from qa.embedding import TORCH_MIN_PASSAGES, Embedder
from qa.errors import IndexCorruptError, IndexMismatchError, IndexNotFoundError
from qa.loading import ids_hash
from qa.types import Chunk, Document

log = logging.getLogger(__name__)
# Bump when the saved files or the way passages are cut change: older indexes are then rebuilt.
# 2: the library (documents.jsonl, the manifest's entries, passages' pages and sections).
FORMAT_VERSION = 2
POINTER = "CURRENT"


@dataclass(frozen=True)
class Entry:
    """One document of the library, as `qa docs list` shows it."""

    name: str  # the document's name (its file name); unique in a library
    doc_id: str
    origin: str  # "bundled:<name>", the absolute path it was added from, or "upload"
    kind: str  # the file type: "pdf", "md", "txt"...
    size: int  # bytes of the file as added (of its text for the bundled article)
    pages: int  # 0 when the type has no pages
    passages: int
    added: str  # ISO 8601 time it was added


@dataclass(frozen=True)
class Manifest:
    format_version: int
    embedder: str
    dimension: int
    chunk_size: int
    chunk_overlap: int
    corpus_hash: str
    sources: tuple[str, ...]  # what to re-read to rebuild: "bundled:..." or absolute paths
    n_chunks: int
    created: str
    files_stamp: str = ""  # the sources' names, sizes and mtimes when indexed ("" : unknown)
    documents: tuple[Entry, ...] = ()  # the library, in the order documents were added
    # what each passage was embedded with besides its text (qa.chunking.DENSE_HEADERS; "": the
    # text alone, as in every index made before the field)
    dense_headers: str = ""

    def mismatches(self, embedder: str, chunk_size: int, chunk_overlap: int) -> list[str]:
        """Why this index can't serve these settings; empty when it can."""
        reasons = []
        if self.format_version != FORMAT_VERSION:
            reasons.append(f"index format {self.format_version}, this version reads {FORMAT_VERSION}")
        if self.embedder != embedder:
            reasons.append(f"built with embedder {self.embedder!r}, asked for {embedder!r}")
        if self.dense_headers != DENSE_HEADERS:
            reasons.append(f"passages embedded with headers {self.dense_headers or 'none'!r}, this "
                           f"version embeds them with {DENSE_HEADERS or 'none'!r}")
        if (self.chunk_size, self.chunk_overlap) != (chunk_size, chunk_overlap):
            reasons.append(f"built with chunks {self.chunk_size}/{self.chunk_overlap}, "
                           f"asked for {chunk_size}/{chunk_overlap}")
        return reasons


@runtime_checkable
class VectorTable(Protocol):
    """Vectors kept outside the process (qa.pgstore), by position in `Index.chunks`; in-process
    vectors are a FAISS index. Changing one gives a new table; the store writes it on save."""

    ntotal: int
    d: int

    def nearest(self, query: np.ndarray, k: int) -> list[tuple[int, float]]: ...

    def reconstruct(self, position: int) -> np.ndarray: ...

    def reconstruct_n(self, start: int, n: int) -> np.ndarray: ...

    def added(self, vectors: np.ndarray) -> VectorTable: ...

    def kept(self, positions: Sequence[int]) -> VectorTable: ...


@dataclass(frozen=True)
class Index:
    manifest: Manifest
    chunks: tuple[Chunk, ...]
    vectors: object  # a faiss.Index, or a VectorTable
    documents: tuple[Document, ...] = ()  # the library's texts, in the manifest's order

    def document(self, doc_id: str) -> Document | None:
        return next((d for d in self.documents if d.doc_id == doc_id), None)

    def search(self, query_vector: np.ndarray, k: int) -> list[tuple[int, float]]:
        """(chunk position, cosine) pairs, best first."""
        k = min(k, len(self.chunks))
        if k <= 0:
            return []
        if isinstance(self.vectors, VectorTable):
            return self.vectors.nearest(query_vector, k)
        import faiss

        query = np.asarray(query_vector, dtype=np.float32).reshape(1, -1)
        # One query on one thread: with the cores busy, a second OpenMP thread only makes both
        # wait (exact search over 10,000 passages: 16 ms on two threads, 0.4 ms on one, here).
        threads = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(1)
        try:
            if hasattr(self.vectors, "hnsw"):  # the graph search keeps at least k candidates
                params = faiss.SearchParametersHNSW(efSearch=max(HNSW_EF_SEARCH, k))
                scores, ids = self.vectors.search(query, k, params=params)
            else:
                scores, ids = self.vectors.search(query, k)
        finally:
            faiss.omp_set_num_threads(threads)
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if i >= 0]


# Passages embedded per call (and per step of the progress bar). Never fewer than the e5
# embedder's TORCH_MIN_PASSAGES: a document worth PyTorch's load gets it from its first batch.
EMBED_BATCH = max(32, TORCH_MIN_PASSAGES)
# Exact search while it is fast enough; an approximate graph past this size: at 50,000 passages
# exact search took 12 ms a query (one thread), HNSW 1 ms for the fusion's 200 candidates with
# recall@10 0.999 against it; at 100,000, 22 ms against 0.9 ms and 0.988 (docs/retrieval.md).
APPROXIMATE_FROM = 50_000
HNSW_M = 32  # links per vector: about 260 bytes per passage on top of the vector itself
HNSW_EF_CONSTRUCTION = 80
HNSW_EF_SEARCH = 128  # candidates kept while searching; raised to k when more are asked for


def vector_store(vectors: np.ndarray, approximate_from: int = APPROXIMATE_FROM):
    """A FAISS store holding `vectors` (inner product = cosine): exact below `approximate_from`
    vectors, HNSW from there on."""
    import faiss

    dimension = vectors.shape[1]
    if len(vectors) < approximate_from:
        store = faiss.IndexFlatIP(dimension)
    else:
        store = faiss.IndexHNSWFlat(dimension, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        store.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        store.hnsw.efSearch = HNSW_EF_SEARCH
    store.add(vectors)
    return store


def embed_passages(texts: Sequence[str], embedder: Embedder,
                   on_batch: Callable[[int, int], None] | None = None) -> np.ndarray:
    """The passages' vectors, embedded EMBED_BATCH at a time; `on_batch(done, total)` after each."""
    parts = []
    for i in range(0, len(texts), EMBED_BATCH):
        parts.append(embedder.embed_batch(list(texts[i : i + EMBED_BATCH]), "passage"))
        if on_batch is not None:
            on_batch(min(i + EMBED_BATCH, len(texts)), len(texts))
    return np.concatenate(parts, axis=0).astype(np.float32)


def extend_index(index: Index, chunks: Sequence[Chunk], embedder: Embedder,
                 on_batch: Callable[[int, int], None] | None = None,
                 documents: Sequence[Document] = (), entries: Sequence[Entry] = ()) -> Index:
    """A new `Index` with `chunks` appended (and the `documents` they come from, listed as
    `entries`); `index` itself (and its saved copy) is untouched: the vectors are added to a
    copy of its FAISS store. Not saved here (qa.library saves; the web app's per-visitor indexes
    live in memory)."""
    import faiss

    if not chunks:
        return index
    if embedder.name != index.manifest.embedder:  # same dimension or not, never mix two spaces
        raise IndexMismatchError(f"the index was built with embedder {index.manifest.embedder!r}, "
                                 f"not {embedder.name!r}: use the index's embedder or rebuild it")
    if index.manifest.dense_headers != DENSE_HEADERS:  # nor passages embedded with and without headers
        raise IndexMismatchError(f"the index's passages were embedded with headers "
                                 f"{index.manifest.dense_headers or 'none'!r}, not "
                                 f"{DENSE_HEADERS or 'none'!r}: rebuild it")
    vectors = embed_passages([indexed_text(c, DENSE_HEADERS) for c in chunks], embedder, on_batch)
    if vectors.shape[1] != index.manifest.dimension:
        raise IndexMismatchError(
            f"the embedder gives {vectors.shape[1]} dimensions but the index has "
            f"{index.manifest.dimension}: use the index's embedder ({index.manifest.embedder})"
        )
    if isinstance(index.vectors, VectorTable):
        store = index.vectors.added(vectors)
    else:
        store = faiss.clone_index(index.vectors)
        store.add(vectors)
    all_chunks = index.chunks + tuple(chunks)
    manifest = replace(index.manifest, n_chunks=len(all_chunks),
                       corpus_hash=ids_hash(c.doc_id for c in all_chunks),
                       documents=index.manifest.documents + tuple(entries))
    return Index(manifest, all_chunks, store, index.documents + tuple(documents))


def without_documents(index: Index, doc_ids: set[str]) -> Index:
    """A new `Index` without the passages, texts and entries of `doc_ids`; nothing is
    re-embedded: the kept vectors are read back from the store into a new one."""
    keep = [i for i, c in enumerate(index.chunks) if c.doc_id not in doc_ids]
    if isinstance(index.vectors, VectorTable):
        store = index.vectors.kept(keep)
    else:
        if index.vectors.ntotal:
            vectors = index.vectors.reconstruct_n(0, index.vectors.ntotal)[keep]
        else:
            vectors = np.zeros((0, index.manifest.dimension), dtype=np.float32)
        store = vector_store(vectors.reshape(-1, index.manifest.dimension))
    chunks = tuple(index.chunks[i] for i in keep)
    manifest = replace(index.manifest, n_chunks=len(chunks),
                       corpus_hash=ids_hash(c.doc_id for c in chunks),
                       documents=tuple(e for e in index.manifest.documents if e.doc_id not in doc_ids))
    return Index(manifest, chunks, store, tuple(d for d in index.documents if d.doc_id not in doc_ids))


def build_index(chunks: list[Chunk], embedder: Embedder, *, chunk_size: int, chunk_overlap: int,
                corpus_hash: str, sources: list[str], files_stamp: str = "",
                progress: bool = False, documents: Sequence[Document] = (),
                entries: Sequence[Entry] = ()) -> Index:
    from tqdm import tqdm

    if not chunks:
        from qa.errors import CorpusError

        raise CorpusError("the documents gave no passages to index")
    with tqdm(total=len(chunks), desc="Embedding passages", unit="passage",
              disable=not progress or len(chunks) <= EMBED_BATCH) as bar:
        vectors = embed_passages([indexed_text(c, DENSE_HEADERS) for c in chunks], embedder,
                                 lambda done, total: bar.update(done - bar.n))
    store = vector_store(vectors)
    manifest = Manifest(FORMAT_VERSION, embedder.name, int(vectors.shape[1]), chunk_size,
                        chunk_overlap, corpus_hash, tuple(sources), len(chunks),
                        time.strftime("%Y-%m-%dT%H:%M:%S%z"), files_stamp, tuple(entries), DENSE_HEADERS)
    return Index(manifest, tuple(chunks), store, tuple(documents))


def save_index(index: Index, index_dir: Path) -> Path:
    """Write `index` as a new build and make it current; older builds are removed after."""
    import faiss

    index_dir = Path(index_dir)
    builds = index_dir / "builds"
    builds.mkdir(parents=True, exist_ok=True)
    name = time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
    staging = builds / f".{name}.partial"
    staging.mkdir()
    try:
        faiss.write_index(index.vectors, str(staging / "vectors.faiss"))
        with open(staging / "chunks.jsonl", "w", encoding="utf-8") as f:
            for chunk in index.chunks:
                f.write(json.dumps(asdict(chunk), ensure_ascii=False) + "\n")
        with open(staging / "documents.jsonl", "w", encoding="utf-8") as f:
            for document in index.documents:
                f.write(json.dumps(asdict(document), ensure_ascii=False) + "\n")
        (staging / "manifest.json").write_text(_manifest_json(index.manifest), encoding="utf-8")
        for path in staging.iterdir():
            with open(path, "rb") as f:
                os.fsync(f.fileno())
        os.replace(staging, builds / name)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if (index_dir / POINTER).is_dir():  # a damaged library: the switch below can't replace it
        shutil.rmtree(index_dir / POINTER)
    pointer_tmp = index_dir / f".{POINTER}.{name}"
    pointer_tmp.write_text(name + "\n")
    os.replace(pointer_tmp, index_dir / POINTER)  # the switch: atomic
    for old in builds.iterdir():  # older builds, and `.partial` ones a killed save left
        if old.name != name:
            shutil.rmtree(old, ignore_errors=True)
    for stale in index_dir.glob(f".{POINTER}.*"):  # pointers a save killed before its switch left
        stale.unlink(missing_ok=True)
    return builds / name


def current_build(index_dir: Path) -> Path:
    index_dir = Path(index_dir)
    try:
        name = (index_dir / POINTER).read_text().strip()
    except FileNotFoundError:
        raise IndexNotFoundError(f"no index in {index_dir}/: run `qa index` first") from None
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or type(error).__name__
        raise IndexCorruptError(f"index pointer {index_dir / POINTER} can't be read ({reason}): "
                                "rebuild it with `qa index`") from None
    build = index_dir / "builds" / name
    if not name or "/" in name or not build.is_dir():
        raise IndexCorruptError(f"index in {index_dir}/ points at a missing build {name!r}: "
                                "rebuild it with `qa index`")
    return build


def _manifest_json(manifest: Manifest) -> str:
    return json.dumps(asdict(manifest), indent=2, ensure_ascii=False)


def restamp(index_dir: Path, files_stamp: str) -> None:
    """Record a new stamp of the current build's files (they were touched, not changed), so
    they needn't be read again; the manifest is replaced atomically. Failing to write is logged:
    the index stays usable, its files are only read again next time."""
    build = current_build(index_dir)
    manifest = replace(read_manifest(index_dir), files_stamp=files_stamp)
    partial = build / f".manifest.{os.getpid()}.tmp"
    try:
        partial.write_text(_manifest_json(manifest), encoding="utf-8")
        os.replace(partial, build / "manifest.json")
    except OSError as error:
        log.warning("could not record the documents' new stamp in %s (%s)", build, error)


def read_manifest(index_dir: Path) -> Manifest:
    build = current_build(index_dir)
    try:
        raw = json.loads((build / "manifest.json").read_text(encoding="utf-8"))
        if not isinstance(raw.get("sources"), list) or not isinstance(raw.get("documents", []), list):
            raise TypeError("sources and documents must be lists")
        raw["sources"] = tuple(raw["sources"])
        raw["documents"] = tuple(_typed(Entry, entry) for entry in raw.get("documents", ()))
        return _typed(Manifest, raw)
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as error:
        raise IndexCorruptError(f"index manifest in {build} is unreadable ({type(error).__name__}): "
                                "rebuild it with `qa index`") from None


def load_index(index_dir: Path) -> Index:
    import faiss

    manifest = read_manifest(index_dir)
    build = current_build(index_dir)
    fix = "rebuild it with `qa index`"
    try:
        store = faiss.read_index(str(build / "vectors.faiss"))
    except Exception as error:  # faiss raises RuntimeError with a C++ message
        raise IndexCorruptError(f"index vectors in {build} are unreadable ({type(error).__name__}): {fix}") from None
    try:
        with open(build / "chunks.jsonl", encoding="utf-8") as f:
            chunks = tuple(_chunk(json.loads(line)) for line in f if line.strip())
    except (OSError, ValueError, TypeError, AttributeError) as error:
        raise IndexCorruptError(f"index passages in {build} are unreadable ({type(error).__name__}): {fix}") from None
    try:
        with open(build / "documents.jsonl", encoding="utf-8") as f:
            documents = tuple(_document(json.loads(line)) for line in f if line.strip())
    except FileNotFoundError:
        documents = ()  # an index of passages only (a public set's contexts)
    except (OSError, ValueError, TypeError, AttributeError) as error:
        raise IndexCorruptError(f"index documents in {build} are unreadable ({type(error).__name__}): {fix}") from None
    if {d.doc_id for d in documents} != {e.doc_id for e in manifest.documents}:
        raise IndexCorruptError(f"index in {build} lists other documents than it holds: {fix}")
    if store.ntotal != len(chunks) or len(chunks) != manifest.n_chunks or store.d != manifest.dimension:
        raise IndexCorruptError(
            f"index in {build} is inconsistent ({store.ntotal} vectors of dimension {store.d}, "
            f"{len(chunks)} passages, manifest says {manifest.n_chunks} of {manifest.dimension}): {fix}"
        )
    return Index(manifest, chunks, store, documents)


def _chunk(raw: dict) -> Chunk:
    raw["page_starts"] = tuple(raw.get("page_starts", ()))
    raw["headings"] = tuple(tuple(h) for h in raw.get("headings", ()))
    return _typed(Chunk, raw)


def _document(raw: dict) -> Document:
    raw["pages"] = tuple(raw.get("pages", ()))
    raw["sections"] = tuple(tuple(s) for s in raw.get("sections", ()))
    return _typed(Document, raw)


_SIMPLE = {"str": str, "int": int, "Language": str}


def _typed(cls, raw: dict):
    """`cls(**raw)` from a saved file, its plain fields (str, int) checked: a damaged file raises
    TypeError here, where it is reported, not later in whatever reads the field."""
    if not isinstance(raw, dict):
        raise TypeError(f"{cls.__name__}: a JSON object was expected")
    for f in fields(cls):
        want = _SIMPLE.get(f.type if isinstance(f.type, str) else getattr(f.type, "__name__", ""))
        if want and f.name in raw and (not isinstance(raw[f.name], want) or isinstance(raw[f.name], bool)):
            raise TypeError(f"{cls.__name__}.{f.name} must be {want.__name__}, got {raw[f.name]!r:.40}")
    return cls(**raw)
