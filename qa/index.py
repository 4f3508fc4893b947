"""The saved index: a versioned folder with a manifest, vectors in FAISS, passages in JSONL.

Layout of `index_dir`:

    CURRENT                 name of the active build (replaced atomically)
    builds/<build>/manifest.json, vectors.faiss, chunks.jsonl

A build is written completely in its own folder before CURRENT is switched to it, so a crash
mid-build leaves the previous index in use. Cosine similarity is an inner product over
L2-normalised vectors (`IndexFlatIP`).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from qa.embedding import Embedder
from qa.errors import IndexCorruptError, IndexNotFoundError
from qa.types import Chunk

log = logging.getLogger(__name__)
# Bump when the saved files or the way passages are cut change: older indexes are then rebuilt.
FORMAT_VERSION = 1
POINTER = "CURRENT"


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

    def mismatches(self, embedder: str, chunk_size: int, chunk_overlap: int) -> list[str]:
        """Why this index can't serve these settings; empty when it can."""
        reasons = []
        if self.format_version != FORMAT_VERSION:
            reasons.append(f"index format {self.format_version}, this version reads {FORMAT_VERSION}")
        if self.embedder != embedder:
            reasons.append(f"built with embedder {self.embedder!r}, asked for {embedder!r}")
        if (self.chunk_size, self.chunk_overlap) != (chunk_size, chunk_overlap):
            reasons.append(f"built with chunks {self.chunk_size}/{self.chunk_overlap}, "
                           f"asked for {chunk_size}/{chunk_overlap}")
        return reasons


@dataclass(frozen=True)
class Index:
    manifest: Manifest
    chunks: tuple[Chunk, ...]
    vectors: object  # faiss.Index

    def search(self, query_vector: np.ndarray, k: int) -> list[tuple[int, float]]:
        """(chunk position, cosine) pairs, best first."""
        k = min(k, len(self.chunks))
        if k <= 0:
            return []
        scores, ids = self.vectors.search(np.asarray(query_vector, dtype=np.float32).reshape(1, -1), k)
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if i >= 0]


def build_index(chunks: list[Chunk], embedder: Embedder, *, chunk_size: int, chunk_overlap: int,
                corpus_hash: str, sources: list[str], files_stamp: str = "",
                progress: bool = False) -> Index:
    import faiss
    from tqdm import tqdm

    if not chunks:
        from qa.errors import CorpusError

        raise CorpusError("the documents gave no passages to index")
    texts = [c.text for c in chunks]
    batch = 16
    parts = [embedder.embed_batch(texts[i : i + batch], "passage")
             for i in tqdm(range(0, len(texts), batch), desc="Embedding passages", unit="batch",
                           disable=not progress or len(texts) <= batch)]
    vectors = np.concatenate(parts, axis=0).astype(np.float32)
    store = faiss.IndexFlatIP(vectors.shape[1])
    store.add(vectors)
    manifest = Manifest(FORMAT_VERSION, embedder.name, int(vectors.shape[1]), chunk_size,
                        chunk_overlap, corpus_hash, tuple(sources), len(chunks),
                        time.strftime("%Y-%m-%dT%H:%M:%S%z"), files_stamp)
    return Index(manifest, tuple(chunks), store)


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
        (staging / "manifest.json").write_text(json.dumps(asdict(index.manifest), indent=2,
                                                          ensure_ascii=False), encoding="utf-8")
        for path in staging.iterdir():
            with open(path, "rb") as f:
                os.fsync(f.fileno())
        os.replace(staging, builds / name)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    pointer_tmp = index_dir / f".{POINTER}.{name}"
    pointer_tmp.write_text(name + "\n")
    os.replace(pointer_tmp, index_dir / POINTER)  # the switch: atomic
    for old in builds.iterdir():
        if old.name != name:
            shutil.rmtree(old, ignore_errors=True)
    return builds / name


def current_build(index_dir: Path) -> Path:
    index_dir = Path(index_dir)
    try:
        name = (index_dir / POINTER).read_text().strip()
    except FileNotFoundError:
        raise IndexNotFoundError(f"no index in {index_dir}/: run `qa index` first") from None
    except OSError as error:
        raise IndexCorruptError(f"index pointer {index_dir / POINTER} can't be read: {error.strerror}") from None
    build = index_dir / "builds" / name
    if not name or "/" in name or not build.is_dir():
        raise IndexCorruptError(f"index in {index_dir}/ points at a missing build {name!r}: "
                                "rebuild it with `qa index`")
    return build


def read_manifest(index_dir: Path) -> Manifest:
    build = current_build(index_dir)
    try:
        raw = json.loads((build / "manifest.json").read_text(encoding="utf-8"))
        raw["sources"] = tuple(raw["sources"])
        return Manifest(**raw)
    except (OSError, ValueError, TypeError, KeyError) as error:
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
            chunks = tuple(Chunk(**json.loads(line)) for line in f if line.strip())
    except (OSError, ValueError, TypeError) as error:
        raise IndexCorruptError(f"index passages in {build} are unreadable ({type(error).__name__}): {fix}") from None
    if store.ntotal != len(chunks) or len(chunks) != manifest.n_chunks or store.d != manifest.dimension:
        raise IndexCorruptError(
            f"index in {build} is inconsistent ({store.ntotal} vectors of dimension {store.d}, "
            f"{len(chunks)} passages, manifest says {manifest.n_chunks} of {manifest.dimension}): {fix}"
        )
    return Index(manifest, chunks, store)
