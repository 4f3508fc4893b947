"""Text generators behind one Protocol: a transformers causal LM, by folder or hub id."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol, runtime_checkable

from qa.errors import ModelError
from qa.models import DEFAULT_LLM_LABEL, prepare_default_llm
from qa.settings import DEFAULT_LLM

log = logging.getLogger(__name__)
Message = dict[str, str]


@runtime_checkable
class Generator(Protocol):
    name: str

    def stream(self, messages: list[Message], max_new_tokens: int, prefix: str = "") -> Iterator[str]:
        """Yield pieces of the assistant's reply; `prefix` is put in its mouth first (not yielded)."""
        ...


class TransformersGenerator:
    """Greedy decoding with a chat template, streamed through `TextIteratorStreamer`."""

    def __init__(self, model: str | Path, name: str | None = None, threads: int = 2) -> None:
        self.model_ref = str(model)
        self.name = name or self.model_ref
        self.threads = threads
        self._model = None
        self._tokenizer = None
        self._lock = threading.Lock()  # one generation at a time: the model is shared

    def load(self) -> TransformersGenerator:
        if self._model is not None:
            return self
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        torch.set_num_threads(self.threads)
        local = Path(self.model_ref).expanduser().is_dir()
        try:
            tokenizer = AutoTokenizer.from_pretrained(self.model_ref, local_files_only=local)
            model = AutoModelForCausalLM.from_pretrained(
                self.model_ref, dtype=torch.bfloat16, local_files_only=local
            )
        except Exception as error:
            where = "this folder" if local else "the model hub (offline?)"
            raise ModelError(
                f"language model {self.model_ref!r} could not be loaded from {where} "
                f"({type(error).__name__}: {str(error).splitlines()[0][:160] if str(error) else ''})"
            ) from error
        model.eval()
        self._tokenizer, self._model = tokenizer, model
        return self

    def stream(self, messages: list[Message], max_new_tokens: int, prefix: str = "") -> Iterator[str]:
        import torch
        from transformers import TextIteratorStreamer

        self.load()
        prompt = self._tokenizer.apply_chat_template(messages, tokenize=False,
                                                     add_generation_prompt=True) + prefix
        inputs = self._tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
        streamer = TextIteratorStreamer(self._tokenizer, skip_prompt=True, skip_special_tokens=True,
                                        timeout=300)
        errors: list[BaseException] = []

        def run() -> None:
            try:
                with torch.inference_mode():
                    self._model.generate(**inputs, streamer=streamer, max_new_tokens=max_new_tokens,
                                         do_sample=False, temperature=None, top_p=None, top_k=None,
                                         repetition_penalty=1.05, stop_strings=["\n"],
                                         tokenizer=self._tokenizer,
                                         pad_token_id=self._tokenizer.eos_token_id)
            except BaseException as error:  # surfaced to the caller below
                errors.append(error)
                streamer.end()

        with self._lock:
            worker = threading.Thread(target=run, daemon=True)
            worker.start()
            yield from (piece for piece in streamer if piece)
            worker.join()
        if errors:
            raise ModelError(f"generation failed: {errors[0]}") from errors[0]


def make_generator(name: str, cache_dir: Path, threads: int = 2, progress: bool = True) -> Generator:
    """The generator for a name: the packaged default (prepared on first use), a folder, or a hub id."""
    key = name.strip()
    if key.lower() in {DEFAULT_LLM, "default", "qwen2.5-coder-0.5b-instruct"}:
        folder = prepare_default_llm(cache_dir, progress=progress)
        return TransformersGenerator(folder, name=DEFAULT_LLM, threads=threads)
    path = Path(key).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise ModelError(f"{path} is not a transformers model folder (no config.json)")
        return TransformersGenerator(path.resolve(), name=str(path.resolve()), threads=threads)
    if "/" not in key:
        raise ModelError(
            f"unknown language model {key!r}: use {DEFAULT_LLM!r} ({DEFAULT_LLM_LABEL}), "
            "a local folder, or a hub id such as Qwen/Qwen2.5-1.5B-Instruct"
        )
    return TransformersGenerator(key, threads=threads)
