"""Text generators behind one Protocol: llama.cpp over a GGUF file (the packaged models' fast
path), a transformers causal LM by folder or hub id (the reference path), or an OpenAI-compatible
server (`openai:<model>@<base-url>`: llama.cpp's server, vLLM, Ollama) for scaling out."""

from __future__ import annotations

import ctypes
import logging
import os
import re
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from qa.errors import ModelError
from qa.models import PACKAGED, prepare_bf16, prepare_gguf
from qa.settings import DEFAULT_LLM, ENGINES

log = logging.getLogger(__name__)
Message = dict[str, str]
# Where a reply ends, for every engine: a blank line (the prompts ask for one short paragraph) or
# the chat template's end-of-turn tokens, in case a server doesn't stop on them by itself.
STOP = ["\n\n", "<|im_end|>", "<|endoftext|>"]
# How many of the model's likeliest first tokens a llama.cpp generation reports (`last["first_choices"]`):
# how likely the reader was to reply NOT FOUND is read from them (qa.reader.doubt).
FIRST_CHOICES = 8


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
        # the warmed fixed beginnings (`warm`: the reader's rules and worked examples, the second
        # read's) and a copy of each one's KV cache, restored when another prompt replaced it
        self._beginnings: list[tuple[list[int], bytes | None]] = []
        # the last generation's figures: prompt tokens, those read from the KV cache, seconds to
        # the first token (prefill), tokens generated and seconds after the first (decode)
        self.last: dict[str, object] = {}

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
        now, and keep a copy of it: a prompt starting with them reads only what follows, even
        after other prompts replaced the cache. Several beginnings can be warmed; warming one
        again does nothing."""
        self.load()
        prompt = self._format_turns(messages=messages).prompt
        tokens = self._llm.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)
        with self._lock:
            if any(known == tokens for known, _ in self._beginnings):
                return
            if self._cached(tokens) != len(tokens):
                self._llm.reset()
                self._llm.eval(tokens)
            self._llm._ctx.kv_cache_seq_rm(0, len(tokens), -1)  # the beginning alone, nothing after it
            self._llm.n_tokens = len(tokens)
            self._beginnings.append((list(tokens), self._kv_cache()))

    def _beginning(self, tokens: list[int]) -> tuple[list[int], bytes | None] | None:
        """The longest warmed beginning that `tokens` start with, if any."""
        found = [b for b in self._beginnings if tokens[:len(b[0])] == b[0]]
        return max(found, key=lambda b: len(b[0]), default=None)

    def _kv_cache(self) -> bytes | None:
        """A copy of the KV cache as it stands (sequence 0; about 28 KB a token for the 1.5B), or
        None when llama.cpp can't copy it."""
        import llama_cpp

        ctx = self._llm._ctx.ctx
        size = llama_cpp.llama_state_seq_get_size(ctx, 0)
        buffer = (ctypes.c_uint8 * size)()
        written = llama_cpp.llama_state_seq_get_data(ctx, buffer, size, 0)
        return bytes(buffer[:written]) if written else None

    def _restore(self, tokens: list[int], kv: bytes) -> None:
        """Put a warmed beginning's KV cache back after another prompt (a translation, the other
        beginning) replaced it, instead of reading it again (about 500 tokens: 5-6 s on 2 cores).
        When llama.cpp refuses the copy the cache is left empty, and the prompt is read from its start."""
        import llama_cpp

        self._llm._ctx.kv_cache_seq_rm(0, 0, -1)
        buffer = (ctypes.c_uint8 * len(kv)).from_buffer_copy(kv)
        if llama_cpp.llama_state_seq_set_data(self._llm._ctx.ctx, buffer, len(kv), 0) != len(kv):
            self._llm.n_tokens = 0
            return
        self._llm.input_ids[:len(tokens)] = tokens
        self._llm.n_tokens = len(tokens)

    def _cached(self, tokens: list[int]) -> int:
        """How many of `tokens` the KV cache already holds (its longest shared prefix)."""
        return self._llm.longest_token_prefix(self._llm._input_ids[:self._llm.n_tokens], tokens)

    def prompt_tokens(self, messages: list[Message], prefix: str = "") -> list[int]:
        """The chat template's prompt for `messages`, tokenised (control tokens as such: document
        text reaches here sanitised of them, `qa.prompting.sanitize`)."""
        self.load()
        prompt = self._format(messages=messages).prompt + prefix
        return self._llm.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)

    def count_tokens(self, text: str) -> int:
        """How many tokens `text` is to this model (0 for none)."""
        return len(self._llm.tokenize(text.encode("utf-8"), add_bos=False)) if text else 0

    def stream(self, messages: list[Message], max_new_tokens: int, prefix: str = "") -> Iterator[str]:
        tokens = self.prompt_tokens(messages, prefix)
        if len(tokens) + max_new_tokens > self.context:
            raise ModelError(f"the prompt is {len(tokens)} tokens long; the model's context is {self.context}")
        with self._lock:
            cached = self._cached(tokens)
            beginning = self._beginning(tokens)
            fixed = len(beginning[0]) if beginning else 0
            if beginning and beginning[1] and cached < fixed:
                self._restore(*beginning)
                cached = self._cached(tokens)  # the warmed beginning copied back (or nothing, if that failed)
            if fixed and cached > fixed:
                # Reuse the warmed beginning only: what follows is read afresh, so an answer
                # does not depend on the question asked before (re-reading a prompt's last
                # token alone gives logits a hair apart, enough to flip a greedy choice).
                self._llm.n_tokens = cached = fixed
            started = time.perf_counter()
            first = None
            pieces: list[str] = []
            self.last = {}
            choices: list[list[tuple[str, float]]] = []

            def note_first_choices(_ids, _scores) -> bool:  # a stopping criterion that never stops
                if not choices:  # called once the first token is chosen, its logits still in place
                    choices.append(self._top_choices())
                    self.last = {"first_choices": choices[0]}  # kept even if the caller stops reading
                return False

            try:
                from llama_cpp import StoppingCriteriaList

                for chunk in self._llm.create_completion(tokens, max_tokens=max_new_tokens, temperature=0.0,
                                                         top_k=1, repeat_penalty=1.0, stream=True, stop=STOP,
                                                         stopping_criteria=StoppingCriteriaList([note_first_choices])):
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
            generated = self.count_tokens("".join(pieces))
            self.last = {"prompt_tokens": len(tokens), "cached_tokens": min(cached, len(tokens) - 1),
                         "prefill_s": (first or done) - started, "new_tokens": generated,
                         "decode_s": done - (first or done), "first_choices": choices[0] if choices else []}

    def _top_choices(self, k: int = FIRST_CHOICES) -> list[tuple[str, float]]:
        """The `k` likeliest next tokens (text, probability) by the logits the model just computed."""
        n = self._llm.n_vocab()
        logits = np.ctypeslib.as_array(self._llm._ctx.get_logits_ith(-1), shape=(n,)).astype(np.float64)
        probabilities = np.exp(logits - logits.max())
        probabilities /= probabilities.sum()
        top = np.argpartition(-probabilities, k)[:k]
        top = top[np.argsort(-probabilities[top])]
        return [(self._llm.detokenize([int(t)]).decode("utf-8", "replace"), float(probabilities[t])) for t in top]


_SERVER_SPEC = re.compile(r"^openai:(?P<model>.+?)@(?P<url>https?://\S+)$", re.IGNORECASE)
SERVER_EXAMPLE = "openai:qwen@http://127.0.0.1:8080/v1"
# Greedy decoding as LlamaCppGenerator does it. `top_k` and `repeat_penalty` are llama.cpp's
# sampling fields (other servers ignore them): llama-cpp-python's server penalises repeats by 1.1
# by default, even at temperature 0, which changed its answers from the in-process engine's.
GREEDY = {"temperature": 0.0, "extra_body": {"top_k": 1, "repeat_penalty": 1.0}}
# Answers a busy or restarting server gives before it can take the request: retried like a refused connection.
RETRY_STATUS = (429, 502, 503, 504)


def server_spec(name: str) -> tuple[str, str] | None:
    """(model, base URL) of a generator named `openai:<model>@<base-url>`; None for other names.

    >>> server_spec("openai:qwen@http://127.0.0.1:8080/v1")
    ('qwen', 'http://127.0.0.1:8080/v1')
    >>> server_spec("openai:Qwen/Qwen2.5-1.5B-Instruct@https://user:pw@gpu.example/v1/")
    ('Qwen/Qwen2.5-1.5B-Instruct', 'https://user:pw@gpu.example/v1')
    >>> server_spec("qwen2.5-coder-1.5b") is None
    True
    """
    key = name.strip()
    if not key.lower().startswith("openai:"):
        return None
    match = _SERVER_SPEC.match(key)
    if match is None:
        raise ModelError(f"{key!r} is not a server generator: write openai:<model>@<base-url>, e.g. {SERVER_EXAMPLE}")
    return match["model"], match["url"].rstrip("/")


def _one_line(text: object, limit: int = 200) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[:limit - 1] + "…"


def without_echo(pieces: Iterable[str], prefix: str) -> Iterator[str]:
    """`pieces` of a reply that should have continued `prefix`, with the reply's own repetition of
    `prefix` dropped: a chat API can't be handed the start of the assistant's reply, so the model,
    shown the prefix in the prompt's worked example, writes it itself. A reply that doesn't start
    with it is passed on after a space, as a continuation would be. Apostrophes may differ (’ and ').

    >>> list(without_echo([" D'", "après", " les sources", ", Qwen", " [1]."], "D’après les sources,"))
    [' Qwen', ' [1].']
    >>> list(without_echo(["Qwen [1]."], "D’après les sources,"))
    [' Qwen [1].']
    """
    wanted = prefix.replace("’", "'")
    held = ""
    passing = False
    for piece in pieces:
        if passing:
            yield piece
            continue
        held += piece
        start = held.lstrip()
        if start.replace("’", "'").startswith(wanted):
            passing, rest = True, start[len(prefix):]
        elif wanted.startswith(start.replace("’", "'")):
            continue  # may still be the prefix
        else:
            passing, rest = True, " " + start
        if rest:
            yield rest


class OpenAIGenerator:
    """Greedy decoding by an OpenAI-compatible server (llama.cpp's server, vLLM, Ollama), streamed
    over its chat completions API with the `openai` client.

    The server applies the model's chat template, so the prompt is the one the in-process engine
    builds from the same messages. A request that fails before the first piece (connection
    refused or cut, or a 429/502/503/504: a server starting or busy) is sent again up to `retries`
    times, waiting `backoff` seconds and twice as long each time; once a piece has been yielded
    nothing is re-sent, since the caller has shown it. Every failure is one line (`ModelError`)
    that names the server. It can't score replies (no `Likelihoods`): see `make_generator`.
    """

    def __init__(self, model: str, base_url: str, api_key: str | None = None, connect_timeout: float = 5.0,
                 read_timeout: float = 120.0, retries: int = 2, backoff: float = 0.5,
                 name: str | None = None) -> None:
        self.model = model
        self.base_url = base_url.rstrip("/")
        self.name = name or f"openai:{model}@{self.base_url}"
        self.api_key = api_key or os.environ.get("QA_OPENAI_API_KEY") or os.environ.get("OPENAI_API_KEY")
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.retries = retries
        self.backoff = backoff
        self._client = None

    def load(self) -> OpenAIGenerator:
        """Make the client (no request: `warm` is the first)."""
        if self._client is not None:
            return self
        try:
            import openai
        except ImportError:
            raise ModelError("the openai package is missing: run `.venv/bin/pip install openai`") from None
        self._client = openai.OpenAI(
            base_url=self.base_url, api_key=self.api_key or "none",  # local servers need no key
            timeout=openai.Timeout(self.read_timeout, connect=self.connect_timeout),
            max_retries=0)  # retried here, and only before the first piece
        return self

    def warm(self, messages: list[Message]) -> None:
        """Have the server read `messages` (a prompt's fixed beginning) now: servers that keep their
        KV cache between requests (llama.cpp's, vLLM with prefix caching) then read only what
        follows them in the first question. A server that can't be reached fails here, at load."""
        for _ in self.stream(messages, 1):
            pass

    def stream(self, messages: list[Message], max_new_tokens: int, prefix: str = "") -> Iterator[str]:
        self.load()
        pieces = self._pieces(messages, max_new_tokens)
        yield from without_echo(pieces, prefix) if prefix else pieces

    def _pieces(self, messages: list[Message], max_new_tokens: int) -> Iterator[str]:
        import openai

        for attempt in range(self.retries + 1):
            streamed = False
            try:
                response = self._client.chat.completions.create(
                    model=self.model, messages=messages, max_tokens=max_new_tokens, stop=STOP, stream=True,
                    **GREEDY)
                with response:
                    for chunk in response:
                        piece = chunk.choices[0].delta.content if chunk.choices else None
                        if piece:
                            streamed = True
                            yield piece
                return
            except openai.APIStatusError as error:
                if streamed or error.status_code not in RETRY_STATUS or attempt == self.retries:
                    raise ModelError(f"the generation server at {self.base_url} answered {error.status_code}: "
                                     f"{_one_line(self._reason(error))}") from error
                reason = f"it answered {error.status_code}"
            except openai.APIConnectionError as error:
                cause = error.__cause__
                connecting = not isinstance(error, openai.APITimeoutError) or type(cause).__name__ == "ConnectTimeout"
                if streamed:
                    raise ModelError(f"the generation server at {self.base_url} stopped mid-answer "
                                     f"({_one_line(cause or error)}); not sent again, as part of the answer "
                                     "was already shown") from error
                if not connecting:
                    raise ModelError(f"the generation server at {self.base_url} sent nothing for "
                                     f"{self.read_timeout:g} s: it is overloaded or stuck; raise "
                                     "QA_SERVER_READ_TIMEOUT, or check the server") from error
                if attempt == self.retries:
                    raise ModelError(
                        f"cannot reach the generation server at {self.base_url} ({_one_line(cause or error, 120)}; "
                        f"{attempt + 1} tries) — start it with `.venv/bin/python -m llama_cpp.server --model "
                        "MODEL.gguf --port 8080`, or fix the URL in --llm/QA_LLM") from error
                reason = _one_line(cause or error, 120)
            except openai.OpenAIError as error:  # an error event inside the stream, a malformed reply
                raise ModelError(f"the generation server at {self.base_url} failed: {_one_line(error)}") from error
            wait = self.backoff * 2 ** attempt
            log.info("generation server at %s: %s; trying again in %.1f s", self.base_url, reason, wait)
            time.sleep(wait)

    @staticmethod
    def _reason(error) -> str:
        """The server's own message in an error reply (OpenAI's `error.message`, FastAPI's `detail`)."""
        body = error.body
        if isinstance(body, dict):
            inner = body.get("error", body)
            if isinstance(inner, dict) and (inner.get("message") or inner.get("detail")):
                return str(inner.get("message") or inner.get("detail"))
            if isinstance(inner, str):
                return inner
        return error.message


def make_generator(name: str, cache_dir: Path, threads: int = 2, progress: bool = True,
                   engine: str = "llama.cpp", connect_timeout: float = 5.0, read_timeout: float = 120.0,
                   retries: int = 2) -> Generator:
    """The generator for a name: a packaged model (assembled or prepared on first use) run by
    `engine`, a folder (transformers) or a .gguf file (llama.cpp), a hub id (transformers), or
    `openai:<model>@<base-url>`, an OpenAI-compatible server (`engine` and `threads` are the
    server's business; the timeouts and retries are its requests').

    Only the transformers generator can score replies (`Likelihoods`): with the others, the
    extractive style's query-likelihood rerank of evidence sentences is skipped."""
    if engine not in ENGINES:
        raise ModelError(f"unknown engine {engine!r}: use one of {', '.join(ENGINES)}")
    key = name.strip()
    server = server_spec(key)
    if server is not None:
        return OpenAIGenerator(*server, connect_timeout=connect_timeout, read_timeout=read_timeout, retries=retries)
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
            f"a .gguf file, a local folder, a hub id such as Qwen/Qwen2.5-1.5B-Instruct, or a server: {SERVER_EXAMPLE}"
        )
    return TransformersGenerator(key, threads=threads)
