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


@runtime_checkable
class Likelihoods(Protocol):
    """A generator that can also score a given reply (optional: the extractive style uses it to
    rerank evidence sentences, qa.evidence.rerank)."""

    def reply_likelihoods(self, conversations: list[list[Message]], reply: str) -> list[float]:
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

    def _inputs(self, messages: list[Message], prefix: str = ""):
        prompt = self._tokenizer.apply_chat_template(messages, tokenize=False,
                                                     add_generation_prompt=True) + prefix
        return self._tokenizer(prompt, return_tensors="pt", add_special_tokens=False)

    def reply_likelihoods(self, conversations: list[list[Message]], reply: str) -> list[float]:
        """For each conversation, the mean log-probability per token of `reply` as the
        assistant's answer to it: one batched forward pass, no generation (about 0.3 s for three
        sentences and a question on two cores)."""
        import torch

        self.load()
        if not conversations:
            return []
        answer = self._tokenizer(reply, add_special_tokens=False)["input_ids"]
        if not answer:
            raise ValueError("an empty reply has no likelihood")
        prompts = [self._inputs(c)["input_ids"][0].tolist() for c in conversations]
        width = max(len(p) for p in prompts) + len(answer)
        ids = torch.full((len(prompts), width), self._tokenizer.eos_token_id or 0, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for row, prompt in enumerate(prompts):  # right-padded: positions stay those of one sequence
            ids[row, :len(prompt) + len(answer)] = torch.tensor(prompt + answer)
            mask[row, :len(prompt) + len(answer)] = 1
        # only the positions that predict `reply` go through the output layer (152k words wide:
        # over every position it cost more than the rest of the pass)
        keep = torch.tensor([[len(p) - 1 + i for i in range(len(answer))] for p in prompts])
        with self._lock, torch.inference_mode():
            try:
                logits = self._model(input_ids=ids, attention_mask=mask, logits_to_keep=keep).logits.float()
            except Exception as error:
                raise ModelError(f"scoring failed: {error}") from error
        logprobs = torch.log_softmax(logits, dim=-1).gather(2, torch.tensor(answer).expand(len(prompts), -1)[..., None])
        return [float(row.mean()) for row in logprobs[..., 0]]

    def stream(self, messages: list[Message], max_new_tokens: int, prefix: str = "") -> Iterator[str]:
        import torch
        from transformers import TextIteratorStreamer

        self.load()
        inputs = self._inputs(messages, prefix)
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
