"""One Settings dataclass: defaults in code, overridden by `QA_*` environment variables, then CLI flags."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace
from pathlib import Path

from qa.errors import SettingsError

# The index's embedder (passages, and the question for dense retrieval), and the one that scores
# evidence sentences, decides off-topic questions and checks translations: its cosine thresholds
# (qa.decision, qa.citations, TRANSLATION_SUPPORT) were calibrated on USE. e5 indexing with USE
# scoring answered 0.78 of the test set right against 0.73 for USE alone (docs/retrieval.md).
DEFAULT_EMBEDDER = "multilingual-e5-small"
DEFAULT_EVIDENCE_EMBEDDER = "use-multilingual"
DEFAULT_LLM = "qwen2.5-coder-1.5b"
# "extractive": the answer quotes (or translates) the best evidence sentences, and the model's
# checked draft decides whether to abstain when the evidence is weak; "generative": the model's
# verified draft is the answer.
# "direct": the model answers from the evidence sentences in its own words, checked (qa.reader).
ANSWER_STYLES = ("direct", "extractive", "generative")
# How the packaged models run: llama.cpp over their GGUF (built for this CPU by scripts/setup.sh),
# or transformers over a bf16 copy (the reference path; also any transformers folder or hub id).
ENGINES = ("llama.cpp", "transformers")


def default_cache_dir() -> Path:
    """Per-user cache for prepared models: `$QA_CACHE_DIR`, else `$XDG_CACHE_HOME/qa-sources`."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "qa-sources"


@dataclass(frozen=True)
class Settings:
    index_dir: Path = Path("index")
    # Where the library is kept: "" for the FAISS folder `index_dir`, or a PostgreSQL URL
    # ("postgresql://user@host/db", a database with the pgvector extension) that several
    # processes can share (qa.stores, qa.pgstore).
    store: str = ""
    cache_dir: Path = default_cache_dir()
    embedder: str = DEFAULT_EMBEDDER
    evidence_embedder: str = DEFAULT_EVIDENCE_EMBEDDER  # the same model as `embedder`: one instance
    llm: str = DEFAULT_LLM
    top_k: int = 4
    chunk_size: int = 600  # characters; passages are whole sentences up to this size
    chunk_overlap: int = 150  # characters of trailing sentences repeated in the next passage
    max_new_tokens: int = 96  # the reader's budget: at 64, 4 of the test set's 80 replies were cut (docs/quality.md)
    answer_style: str = "direct"
    engine: str = "llama.cpp"
    max_question_chars: int = 1000
    threads: int = max(1, os.cpu_count() or 1)
    # What one web visitor may use (docs/reliability.md): bytes per uploaded file, documents
    # uploaded in a session, characters of text they hold (about 3,500 passages: embedding them
    # takes minutes on 2 cores), and questions per minute.
    max_upload_bytes: int = 10 * 1024 * 1024
    max_uploads: int = 20
    max_session_chars: int = 2_000_000
    questions_per_minute: int = 12
    # A generation server (llm = "openai:<model>@<base-url>"): seconds to connect, seconds to wait
    # for the next byte (the first comes after the prompt is read), and tries again after a failed
    # connection, before the first token only.
    server_connect_timeout: float = 5.0
    server_read_timeout: float = 120.0
    server_retries: int = 2

    def __post_init__(self) -> None:
        for name in ("top_k", "chunk_size", "max_new_tokens", "max_question_chars", "threads",
                     "max_upload_bytes", "max_uploads", "max_session_chars", "questions_per_minute"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise SettingsError(f"{name} must be a positive integer, got {value!r}")
        for name in ("server_connect_timeout", "server_read_timeout"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise SettingsError(f"{name} must be a positive number of seconds, got {value!r}")
        if isinstance(self.server_retries, bool) or not isinstance(self.server_retries, int) \
                or not 0 <= self.server_retries <= 10:
            raise SettingsError(f"server_retries must be an integer from 0 to 10, got {self.server_retries!r}")
        if self.top_k > 20:
            raise SettingsError(f"top_k must be at most 20, got {self.top_k}")
        if self.chunk_size < 100:
            raise SettingsError(f"chunk_size must be at least 100 characters, got {self.chunk_size}")
        if not 0 <= self.chunk_overlap < self.chunk_size:
            raise SettingsError(
                "chunk_overlap must be at least 0 and smaller than chunk_size, "
                f"got {self.chunk_overlap} >= {self.chunk_size}"
                if self.chunk_overlap >= 0
                else f"chunk_overlap must be at least 0, got {self.chunk_overlap}"
            )
        if self.answer_style not in ANSWER_STYLES:
            raise SettingsError(f"answer_style must be one of {', '.join(ANSWER_STYLES)}, got {self.answer_style!r}")
        if self.engine not in ENGINES:
            raise SettingsError(f"engine must be one of {', '.join(ENGINES)}, got {self.engine!r}")
        if self.store and not self.store.startswith(("postgresql://", "postgres://")):
            raise SettingsError(f"store must be empty (the index folder) or a postgresql:// URL, got {self.store!r}")
        if not self.embedder.strip() or not self.evidence_embedder.strip() or not self.llm.strip():
            raise SettingsError("embedder, evidence_embedder and llm names must not be empty")

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, **overrides: object) -> Settings:
        """Defaults, then `QA_<FIELD>` variables (e.g. QA_TOP_K=6), then non-None overrides."""
        env = dict(os.environ if env is None else env)
        values: dict[str, object] = {}
        if "QA_CACHE_DIR" not in env:
            values["cache_dir"] = default_cache_dir()
        for f in fields(cls):
            raw = env.get(f"QA_{f.name.upper()}")
            if raw is None:
                continue
            values[f.name] = _parse(f.name, raw, f.type)
        values.update({k: v for k, v in overrides.items() if v is not None})
        for key in ("index_dir", "cache_dir"):
            if key in values:
                values[key] = Path(values[key]).expanduser()  # type: ignore[arg-type]
        return cls(**values)  # type: ignore[arg-type]

    def with_(self, **changes: object) -> Settings:
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


def _parse(name: str, raw: str, annotation: object) -> object:
    if annotation in (int, "int"):
        try:
            return int(raw)
        except ValueError:
            raise SettingsError(f"QA_{name.upper()} must be an integer, got {raw!r}") from None
    if annotation in (float, "float"):
        try:
            return float(raw)
        except ValueError:
            raise SettingsError(f"QA_{name.upper()} must be a number, got {raw!r}") from None
    if annotation in (Path, "Path"):
        return Path(raw).expanduser()
    return raw
