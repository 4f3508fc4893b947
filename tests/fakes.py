"""Test doubles that satisfy the same Protocols as the real backends."""

from __future__ import annotations

import hashlib
import re
import zlib
from collections.abc import Iterator

import numpy as np

from qa.text import fold


class FakeEmbedder:
    """Set of folded words hashed into 256 dimensions: same words, same direction.

    `synonyms` maps words to a shared token, to stand for a cross-lingual model."""

    name = "fake"

    def __init__(self, synonyms: dict[str, str] | None = None, dimension: int = 256) -> None:
        self.synonyms = synonyms or {}
        self.dimension = dimension
        self.calls = 0

    def embed_batch(self, texts: list[str], kind: str) -> np.ndarray:
        self.calls += 1
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in fold(text).replace("'", " ").split():
                word = self.synonyms.get(word.strip(".,;:!?()[]«»\""), word.strip(".,;:!?()[]«»\""))
                if len(word) < 3:
                    continue
                slot = int(hashlib.md5(word.encode()).hexdigest(), 16) % self.dimension
                out[row, slot] = 1.0
            if not out[row].any():
                out[row, 0] = 1.0
        return out / np.linalg.norm(out, axis=1, keepdims=True)


class FakeGenerator:
    """Replies with a scripted text, streamed word by word; records the messages it got."""

    name = "fake-llm"

    def __init__(self, reply: str | None = None, replies: list[str] | None = None,
                 first_choices: list[tuple[str, float]] | None = None) -> None:
        self.replies = list(replies or [])
        self.reply = reply
        self.messages: list[list[dict[str, str]]] = []
        self.prefixes: list[str] = []
        self.first_choices = first_choices  # reported as llama.cpp does (`last`), when given
        self.last: dict = {}

    def stream(self, messages, max_new_tokens: int, prefix: str = "") -> Iterator[str]:
        self.messages.append(messages)
        self.prefixes.append(prefix)
        self.last = {"first_choices": self.first_choices} if self.first_choices else {}
        text = self.replies.pop(0) if self.replies else (self.reply or "")
        for i, word in enumerate(text.split(" ")):
            yield word if i == 0 else " " + word


class BagOfWordsEmbedder:
    """A qa.embedding.Embedder: hashed bag of folded words, so texts sharing words are close."""

    name = "fake-embedder"
    dimension = 64

    def __init__(self) -> None:
        self.calls = 0

    def embed_batch(self, texts: list[str], kind: str) -> np.ndarray:
        self.calls += 1
        vectors = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"\w+", fold(text)):
                vectors[row, zlib.crc32(word.encode()) % (self.dimension - 1)] += 1.0
            vectors[row, -1] = 0.01  # never the zero vector
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


class ScriptedGenerator:
    """A qa.generation.Generator replying with a fixed text per question, streamed word by word.

    Like a model, it continues a `prefix` put in its mouth: the reply then starts with a space.
    """

    name = "scripted-generator"

    def __init__(self, replies: dict[str, str], default: str = "The sources do not say.") -> None:
        self.replies = replies
        self.default = default

    def stream(self, messages: list[dict[str, str]], max_new_tokens: int,
               prefix: str = "") -> Iterator[str]:
        question = messages[-1]["content"].rsplit("Question", 1)[-1]  # not the sources above it
        reply = next((r for q, r in self.replies.items() if q in question), self.default)
        for i, word in enumerate(reply.split(" ")):
            yield word if i == 0 and not prefix else " " + word
