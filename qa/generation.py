"""Text generators behind one Protocol: llama.cpp over a GGUF file (the packaged models' fast
path), or a transformers causal LM by folder or hub id (the reference path)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol, runtime_checkable

from qa.errors import ModelError
from qa.models import PACKAGED, prepare_bf16, prepare_gguf
from qa.settings import DEFAULT_LLM, ENGINES

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


class LlamaCppGenerator:
    """Greedy decoding of a GGUF model with llama.cpp (llama-cpp-python, built for this CPU by
    `scripts/setup.sh`). Prompts are laid out fixed text first, so the KV cache of the longest
    prefix shared with the previous prompt (system prompt, rules, example) is reused, not read
    again (llama-cpp-python keeps it between calls)."""

    def __init__(self, gguf: str | Path, name: str, threads: int = 2, context: int = 4096) -> None:
        self.gguf = Path(gguf)
        self.name = name
        self.threads = threads
        self.context = context
        self._llm = None
        self._format = None
        self._format_turns = None  # the template without the assistant's turn opened
        self._lock = threading.Lock()  # one generation at a time: the model and its KV cache are shared
        # the last generation's figures: prompt tokens, those read from the KV cache, seconds to
        # the first token (prefill), tokens generated and seconds after the first (decode)
        self.last: dict[str, float] = {}

    def load(self) -> LlamaCppGenerator:
        if self._llm is not None:
            return self
        try:
            from llama_cpp import Llama
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter
        except ImportError:
            raise ModelError(
                "the llama.cpp engine is not installed: run `bash scripts/setup.sh` (it builds "
                "llama-cpp-python for this CPU), or choose --engine transformers"
            ) from None
        try:
            llm = Llama(model_path=str(self.gguf), n_ctx=self.context, n_batch=512, n_threads=self.threads,
                        n_threads_batch=self.threads, verbose=False)
        except Exception as error:
            raise ModelError(f"llama.cpp could not load {self.gguf} ({error})") from error
        template = llm.metadata.get("tokenizer.chat_template")
        if not template:
            raise ModelError(f"{self.gguf} has no chat template")
        eos = llm.detokenize([llm.token_eos()]).decode("utf-8", "replace")
        self._format = Jinja2ChatFormatter(template=template, eos_token=eos, bos_token="",
                                           add_generation_prompt=True)
        self._format_turns = Jinja2ChatFormatter(template=template, eos_token=eos, bos_token="",
                                                 add_generation_prompt=False)
        self._llm = llm
        return self

    def warm(self, messages: list[Message]) -> None:
        """Read `messages` (a prompt's fixed beginning: rules, worked examples) into the KV cache
        now, so the first question reads only what follows them."""
        self.load()
        prompt = self._format_turns(messages=messages).prompt
        tokens = self._llm.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)
        with self._lock:
            if self._cached(tokens) == len(tokens):
                return  # already there
            self._llm.reset()
            self._llm.eval(tokens)

    def _cached(self, tokens: list[int]) -> int:
        """How many of `tokens` the KV cache already holds (its longest shared prefix)."""
        return self._llm.longest_token_prefix(self._llm._input_ids[:self._llm.n_tokens], tokens)

    def prompt_tokens(self, messages: list[Message], prefix: str = "") -> list[int]:
        """The chat template's prompt for `messages`, tokenised (control tokens as such: document
        text reaches here sanitised of them, `qa.prompting.sanitize`)."""
        self.load()
        prompt = self._format(messages=messages).prompt + prefix
        return self._llm.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)

    def stream(self, messages: list[Message], max_new_tokens: int, prefix: str = "") -> Iterator[str]:
        tokens = self.prompt_tokens(messages, prefix)
        if len(tokens) + max_new_tokens > self.context:
            raise ModelError(f"the prompt is {len(tokens)} tokens long; the model's context is {self.context}")
        with self._lock:
            cached = self._cached(tokens)
            started = time.perf_counter()
            first = None
            pieces: list[str] = []
            try:
                for chunk in self._llm.create_completion(tokens, max_tokens=max_new_tokens, temperature=0.0,
                                                         top_k=1, repeat_penalty=1.0, stream=True,
                                                         stop=["\n\n", "<|im_end|>", "<|endoftext|>"]):
                    piece = chunk["choices"][0]["text"]
                    first = first or time.perf_counter()
                    if piece:
                        pieces.append(piece)
                        yield piece
            except ModelError:
                raise
            except Exception as error:
                raise ModelError(f"generation failed: {error}") from error
            done = time.perf_counter()
            generated = len(self._llm.tokenize("".join(pieces).encode("utf-8"), add_bos=False)) if pieces else 0
            self.last = {"prompt_tokens": len(tokens), "cached_tokens": min(cached, len(tokens) - 1),
                         "prefill_s": (first or done) - started, "new_tokens": generated,
                         "decode_s": done - (first or done)}


def make_generator(name: str, cache_dir: Path, threads: int = 2, progress: bool = True,
                   engine: str = "llama.cpp") -> Generator:
    """The generator for a name: a packaged model (assembled or prepared on first use) run by
    `engine`, a folder (transformers) or a .gguf file (llama.cpp), or a hub id (transformers)."""
    if engine not in ENGINES:
        raise ModelError(f"unknown engine {engine!r}: use one of {', '.join(ENGINES)}")
    key = name.strip()
    aliases = {"default": DEFAULT_LLM, **{f"{m}-instruct": m for m in PACKAGED}}
    packaged = PACKAGED.get(aliases.get(key.lower(), key.lower()))
    if packaged is not None:
        if engine == "llama.cpp":
            return LlamaCppGenerator(prepare_gguf(cache_dir, packaged, progress=progress), name=packaged.name,
                                     threads=threads)
        folder = prepare_bf16(cache_dir, packaged, progress=progress)
        return TransformersGenerator(folder, name=packaged.name, threads=threads)
    path = Path(key).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        return LlamaCppGenerator(path.resolve(), name=str(path.resolve()), threads=threads)
    if path.exists():
        if not (path / "config.json").is_file():
            raise ModelError(f"{path} is not a transformers model folder (no config.json) nor a .gguf file")
        return TransformersGenerator(path.resolve(), name=str(path.resolve()), threads=threads)
    if "/" not in key:
        raise ModelError(
            f"unknown language model {key!r}: use {' or '.join(map(repr, PACKAGED))} (packaged), "
            "a .gguf file, a local folder, or a hub id such as Qwen/Qwen2.5-1.5B-Instruct"
        )
    return TransformersGenerator(key, threads=threads)
