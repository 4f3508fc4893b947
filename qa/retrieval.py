"""Hybrid retrieval: dense (FAISS) and lexical (BM25) rankings fused by weighted reciprocal rank.

BM25 can only match words, so an English question finds little in French text; worse, the few
words it does match ("plan", "action") are noise. So across languages BM25 matches only the
question's names, acronyms and numbers (which survive translation), and fusion gives it
`cross_lingual_weight` there: the dense signal leads, while exact names and figures still help.

Once the index's sentences have been translated (`qa translate`), BM25 reads a foreign passage
through its translations: the question's words then match as within one language ("What partly
drove the change…?" finds "Ce changement est en partie stimulé…" through "This change is partly
driven…"), and the passage counts with `lexical_weight`. A sentence not translated yet still offers its names and
numbers. Until nearly all are translated, foreign passages are read by names and numbers only.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import islice
from typing import Protocol

import numpy as np

from qa.chunking import LEXICAL_HEADERS, indexed_text, passage_header
from qa.embedding import Embedder
from qa.index import Index
from qa.text import anchors, sentence_spans, tokenize
from qa.types import Chunk, Language, Passage

RRF_K = 60


def rrf_fuse(rankings: Sequence[tuple[Sequence[int], Sequence[float] | float]],
             k: int = RRF_K) -> dict[int, float]:
    """Weighted reciprocal-rank fusion.

    Each ranking is (ids best first, weight), the weight a number or one number per id.
    A document's score is the sum over rankings of weight / (k + rank), rank starting at 1.

    >>> fused = rrf_fuse([([7, 3], 1.0), ([3, 9], 0.5)], k=1)
    >>> sorted(fused.items())
    [(3, 0.5833333333333333), (7, 0.5), (9, 0.16666666666666666)]
    """
    scores: dict[int, float] = {}
    for ids, weight in rankings:
        for rank, doc in enumerate(ids, start=1):
            w = weight[rank - 1] if isinstance(weight, Sequence) else weight
            scores[doc] = scores.get(doc, 0.0) + w / (k + rank)
    return scores


class Translations(Protocol):
    """Sentences' translations as remembered (`qa.translations.TranslationMemory`)."""

    def get(self, text: str, target: Language) -> str | None: ...

    def __len__(self) -> int: ...


@dataclass
class _View:
    """BM25 over the passages as read in one language, for `known` remembered translations."""

    known: int
    bm25: object | None  # None: too few of the foreign passages' sentences are translated
    readable: np.ndarray  # per passage: in that language, or with at least one sentence translated
    # (empty when bm25 is None)


@dataclass
class Retriever:
    """Dense + BM25 over one index. BM25 is rebuilt from the passages on load (milliseconds)."""

    index: Index
    embedder: Embedder
    # A foreign passage with no translated sentence, matched by names and numbers only, counts a
    # sixteenth of `lexical_weight`: a quarter of the dense ranking's weight. With e5, PIAF
    # paragraphs asked in English (bench/cross_language.py) give MRR 0.752 / 0.751 / 0.730 at
    # 0 / 0.0625 / 0.125, the project test set's English questions 0.759 / 0.774 / 0.774 (names
    # such as "Qwen" help there): 0.0625 is the best of both (docs/retrieval.md). USE had set 0.125.
    cross_lingual_weight: float = 0.0625
    # Same-language BM25 counts four times the dense ranking. With multilingual-e5-small it is the
    # only weight tried (0.25-6) whose fused MRR is at least each ranking's alone on every public
    # set's tuning part and on the project's test set (French BM25 is nearly perfect on its own
    # article), and it holds on the held-out parts; with USE it was chosen the same way, but fusion
    # then loses to BM25 on PIAF and SQuAD 2.0 at any weight (docs/retrieval.md). (The dense
    # ranking brings what BM25 can't match: paraphrases, and foreign passages not translated yet.)
    lexical_weight: float = 4.0
    # Each ranking hands at most this many passages to the fusion: further down, a ranking adds
    # less than 1/260 to a passage's score. On the public sets (1,300 passages) cutting at 200,
    # 100 or even 50 moved no MRR by more than 0.001 with e5 (0.006 with USE at 50), and it keeps
    # the search cheap on large corpora: 1 ms through HNSW at 100,000 (docs/retrieval.md).
    candidates: int = 200
    mode: str = "hybrid"  # "hybrid", "dense" or "bm25": the last two are baselines for evaluation
    # BM25 reads each passage under its document's title and section (qa.chunking.LEXICAL_HEADERS)
    lexical_headers: str = LEXICAL_HEADERS
    translations: Translations | None = None  # read foreign passages through them (module doc)
    min_coverage: float = 0.95  # ... once this share of their sentences is translated
    _views: dict[Language, _View] = field(default_factory=dict, init=False, repr=False)
    _sentences: dict[int, list[str]] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        # A header every passage shares (one document, no sections) tells BM25 nothing and only
        # shifts its length normalisation (a test-set question fell from 3rd to 4th): then none.
        headers = self.lexical_headers
        if len({passage_header(c, headers) for c in self.index.chunks}) < 2:
            headers = ""
        self._headers = headers
        self._bm25 = _bm25([tokenize(indexed_text(c, headers), c.language) for c in self.index.chunks])

    @property
    def chunks(self) -> tuple[Chunk, ...]:
        return self.index.chunks

    def dense_scores(self, question: str) -> np.ndarray:
        """Cosine of the question with every passage (small corpora: exact, all of them)."""
        query = self.embedder.embed_batch([question], "query")[0]
        scores = np.full(len(self.chunks), -1.0, dtype=np.float32)
        for i, s in self.index.search(query, len(self.chunks)):
            scores[i] = s
        return scores

    def lexical_ranking(self, question: str, language: Language) -> list[int]:
        """BM25 ranking (matching passages only). Passages in another language than the
        question's are read through their sentences' translations when there are some
        (`translated_view`), else scored on the question's names, acronyms and numbers alone:
        its other words can only match there by accident."""
        view = self.translated_view(language)
        if view is not None:
            scores = _scores(view.bm25, tokenize(question, language), len(self.chunks))
        else:
            scores = _scores(self._bm25, tokenize(question, language), len(self.chunks))
            if any(c.language != language for c in self.chunks):
                names = _scores(self._bm25, tokenize(" ".join(anchors(question)), language), len(self.chunks))
                foreign = np.array([c.language != language for c in self.chunks])
                scores = np.where(foreign, names, scores)
        order = np.argsort(-scores, kind="stable")
        return order[scores[order] > 0].tolist()

    def readable(self, language: Language) -> np.ndarray:
        """Per passage: can BM25 read it in `language` (its own, or translated in part)?"""
        view = self.translated_view(language)
        if view is not None:
            return view.readable
        return np.array([c.language == language for c in self.chunks], dtype=bool)

    def translated_view(self, language: Language) -> _View | None:
        """BM25 over the passages as read in `language`: each sentence of a foreign passage by
        its remembered translation, or by its names and numbers while it has none. Rebuilt when
        the memory has grown.

        None until `min_coverage` of the foreign passages' sentences are translated (`qa
        translate`): a partly translated index would favour the passages that happen to be
        translated (those earlier answers quoted), and on the project test set, answered from
        an empty memory, English accuracy fell from 0.62 to 0.34 that way.
        """
        known = len(self.translations) if self.translations is not None else 0
        if not known:
            return None
        cached = self._views.get(language)
        if cached is None or cached.known != known:
            cached = self._views[language] = self._build_view(language, known)
        return cached if cached.bm25 is not None else None

    def _build_view(self, language: Language, known: int) -> _View:
        translated: dict[int, list[str | None]] = {}  # per foreign passage, per sentence
        for i, chunk in enumerate(self.chunks):
            if chunk.language != language:
                if i not in self._sentences:  # split once: the view is rebuilt as the memory grows
                    self._sentences[i] = [chunk.text[s:e] for s, e in sentence_spans(chunk)]
                translated[i] = [self.translations.get(sentence, language) for sentence in self._sentences[i]]
        sentences = sum(len(t) for t in translated.values())
        done = sum(1 for t in translated.values() for x in t if x)
        if not sentences or done < self.min_coverage * sentences:
            return _View(known, None, np.array([], dtype=bool))
        texts = [indexed_text(chunk, self._headers) if i not in translated else
                 " ".join(t or " ".join(sorted(anchors(sentence)))
                          for sentence, t in zip(self._sentences[i], translated[i], strict=True))
                 for i, chunk in enumerate(self.chunks)]
        readable = [i not in translated or any(translated[i]) for i in range(len(self.chunks))]
        return _View(known, _bm25([tokenize(t, language) for t in texts]), np.array(readable, dtype=bool))

    def retrieve(self, question: str, language: Language, top_k: int) -> list[Passage]:
        query = self.embedder.embed_batch([question], "query")[0]
        depth = max(self.candidates, top_k)
        found = self.index.search(query, min(depth, len(self.chunks)))
        cosine = dict(found)
        dense_rank = [i for i, _ in found]
        lexical_rank = self.lexical_ranking(question, language)[:depth]
        if self.mode == "dense":
            order = {i: cosine[i] for i in dense_rank}
        elif self.mode == "bm25":  # passages without a shared word follow in corpus order
            matched = set(lexical_rank)
            rest = islice((i for i in range(len(self.chunks)) if i not in matched), top_k)
            order = {i: 1.0 / (RRF_K + r) for r, i in enumerate([*lexical_rank, *rest], start=1)}
        else:
            readable = self.readable(language)
            weights = [self.lexical_weight * (1.0 if readable[i] else self.cross_lingual_weight)
                       for i in lexical_rank]
            order = rrf_fuse([(dense_rank, 1.0), (lexical_rank, weights)])
        best = sorted(order, key=lambda i: (-order[i], -cosine.get(i, -1.0)))[:top_k]
        return [Passage(n, self.chunks[i], order[i], cosine[i] if i in cosine else self._cosine(query, i))
                for n, i in enumerate(best, start=1)]

    def _cosine(self, query: np.ndarray, position: int) -> float:
        """The cosine of a passage beyond the dense candidates (found by BM25 alone)."""
        return float(query @ self.index.vectors.reconstruct(position))


def _bm25(corpus: list[list[str]]):
    import bm25s

    logging.getLogger("bm25s").setLevel(logging.WARNING)  # set on import: it logs every build at DEBUG
    bm25 = bm25s.BM25()
    bm25.index([tokens or ["∅"] for tokens in corpus], show_progress=False)
    return bm25


def _scores(bm25, tokens: list[str], size: int) -> np.ndarray:
    if not tokens:
        return np.zeros(size)
    return np.asarray(bm25.get_scores(tokens), dtype=np.float64)
