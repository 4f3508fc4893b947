"""The straight line from a question to a verified, cited answer.

    question -> language -> retrieval -> prompt -> streamed draft -> citation check -> Answer

The draft streams as the model writes it; the final `Answer` keeps only sentences that a
passage supports, each with its citations, or abstains in the question's language.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from qa.chunking import chunk_documents
from qa.citations import SupportChecker, answer_sentences, is_abstention, numbers, with_markers
from qa.embedding import Embedder, make_embedder
from qa.errors import (
    CorpusError,
    IndexMismatchError,
    IndexNotFoundError,
    InputError,
)
from qa.generation import Generator, make_generator
from qa.index import Index, build_index, load_index, read_manifest, save_index
from qa.language import detect_language
from qa.loading import BUNDLED, corpus_hash, load_documents
from qa.prompting import ANSWER_PREFIX, build_messages
from qa.retrieval import Retriever, tokenize
from qa.settings import Settings
from qa.types import Answer, Citation, Language

log = logging.getLogger(__name__)

ABSTENTION = {
    "fr": "Le document ne le dit pas : aucun des passages trouvés ne répond à cette question.",
    "en": "The documents don't say: none of the passages found answers this question.",
}

_FIGURE_QUESTION = re.compile(
    r"\b(combien|how (?:many|much)|quel(?:le)?s? (?:montant|somme|nombre|pourcentage|ann[ée]e|date|salaire exact)"
    r"|what (?:amount|number|percentage|year|date|exact salary)|en quelle ann[ée]e|in what year"
    r"|exact salary|salaire exact)\b",
    re.IGNORECASE,
)


def expects_figure(question: str) -> bool:
    """Whether the question asks for a number, an amount or a date.

    >>> expects_figure("Combien de modèles ?"), expects_figure("Who made Qwen?")
    (True, False)
    """
    return bool(_FIGURE_QUESTION.search(question))


def adds_content(sentence: str, question: str, language: Language) -> bool:
    """Whether an answer sentence says something the question didn't: a content word or a number.

    The small model often answers by restating the question ("la Chine met-elle ses outils à
    disposition [2]"); the passage then "supports" it, but nothing was answered.

    >>> adds_content("D’après les sources, Qwen compte 100 000 modèles.", "Combien de modèles compte Qwen ?", "fr")
    True
    >>> adds_content("According to the sources, China is giving away free AI tools.",
    ...              "Why is China giving away free AI tools?", "en")
    False
    """
    prefix = set(tokenize(ANSWER_PREFIX[language], language))
    asked = set(tokenize(question, language)) | prefix
    return bool(set(tokenize(sentence, language)) - asked)


def validate_question(question: str, max_chars: int) -> str:
    if not isinstance(question, str) or not question.strip():
        raise InputError("the question is empty: ask something, e.g. qa ask \"Qu'est-ce que Qwen ?\"")
    question = " ".join(question.split())
    if len(question) > max_chars:
        raise InputError(f"the question is {len(question)} characters long; the limit is {max_chars}")
    return question


def build_from_sources(sources: Sequence[str], embedder: Embedder, settings: Settings,
                       progress: bool = False) -> Index:
    docs = load_documents(sources)
    chunks = chunk_documents(docs, settings.chunk_size, settings.chunk_overlap)
    return build_index(chunks, embedder, chunk_size=settings.chunk_size,
                       chunk_overlap=settings.chunk_overlap, corpus_hash=corpus_hash(docs),
                       sources=list(sources) or [BUNDLED], progress=progress)


def index_sources(sources: Sequence[str], embedder: Embedder, settings: Settings,
                  progress: bool = False) -> Index:
    """`qa index`: build over `sources` (the bundled article when empty) and make it current."""
    resolved = [s if s.startswith("bundled:") else str(Path(s).resolve()) for s in sources]
    index = build_from_sources(resolved, embedder, settings, progress)
    save_index(index, settings.index_dir)
    return index


def open_index(settings: Settings, embedder: Embedder, progress: bool = False) -> Index:
    """The current index, built when missing and rebuilt when settings or documents changed."""
    try:
        manifest = read_manifest(settings.index_dir)
    except IndexNotFoundError:
        log.info("no index in %s: building one over the bundled article", settings.index_dir)
        return index_sources([BUNDLED], embedder, settings, progress)
    reasons = manifest.mismatches(embedder.name, settings.chunk_size, settings.chunk_overlap)
    try:
        docs = load_documents(manifest.sources)
    except CorpusError as error:
        if reasons:
            raise IndexMismatchError(
                f"the index must be rebuilt ({'; '.join(reasons)}) but its documents can't be "
                f"read ({error}): run `qa index PATH...`"
            ) from None
        log.warning("the index's documents can't be re-read (%s); using the index as built", error)
        return load_index(settings.index_dir)
    if corpus_hash(docs) != manifest.corpus_hash:
        reasons.append("the documents changed")
    if reasons:
        log.info("rebuilding the index: %s", "; ".join(reasons))
        index = build_from_sources(manifest.sources, embedder, settings, progress)
        save_index(index, settings.index_dir)
        return index
    return load_index(settings.index_dir)


@dataclass
class Pipeline:
    """Loads its parts lazily, once; `stream` and `ask` answer questions."""

    settings: Settings = field(default_factory=Settings.from_env)
    embedder: Embedder | None = None
    generator: Generator | None = None
    index: Index | None = None
    progress: bool = False
    _retriever: Retriever | None = None
    _warm: bool = False

    def load(self) -> Pipeline:
        s = self.settings
        if self.embedder is None:
            self.embedder = make_embedder(s.embedder, threads=s.threads)
        if self.index is None:
            self.index = open_index(s, self.embedder, progress=self.progress)
        if self._retriever is None:
            self._retriever = Retriever(self.index, self.embedder)
        if self.generator is None:
            self.generator = make_generator(s.llm, s.cache_dir, threads=s.threads,
                                            progress=self.progress)
        if hasattr(self.generator, "load"):
            self.generator.load()
        if not self._warm:  # lazy weights and the language detector: load now, not on the first question
            self.embedder.embed_batch(["warm up"], "query")
            detect_language("warm up")
            self._warm = True
        return self

    @property
    def retriever(self) -> Retriever:
        self.load()
        return self._retriever

    def models(self) -> dict[str, str]:
        return {"embedder": getattr(self.embedder, "name", "?"), "llm": getattr(self.generator, "name", "?")}

    def stream(self, question: str, top_k: int | None = None) -> Iterator[str | Answer]:
        """Yield pieces of the draft as the model writes them, then the verified `Answer`."""
        question = validate_question(question, self.settings.max_question_chars)
        top_k = top_k or self.settings.top_k
        self.load()
        started = time.perf_counter()
        language: Language = detect_language(question, default="fr")
        passages = self._retriever.retrieve(question, language, top_k)
        retrieved = time.perf_counter()
        messages = build_messages(question, language, passages)
        draft_parts: list[str] = [ANSWER_PREFIX[language]]
        yield ANSWER_PREFIX[language]
        first_token = None
        for piece in self.generator.stream(messages, self.settings.max_new_tokens,
                                           prefix=ANSWER_PREFIX[language]):
            if first_token is None:
                first_token = time.perf_counter()
            draft_parts.append(piece)
            yield piece
        draft = "".join(draft_parts).strip()
        text, citations, abstained = self.verify(question, language, draft, passages)
        done = time.perf_counter()
        yield Answer(
            question=question, language=language, text=text, abstained=abstained,
            citations=tuple(citations), passages=tuple(passages),
            timings={"retrieval_s": retrieved - started,
                     "first_token_s": (first_token or done) - started,
                     "total_s": done - started},
            models=self.models(), draft=draft,
        )

    def ask(self, question: str, top_k: int | None = None) -> Answer:
        for event in self.stream(question, top_k):
            if isinstance(event, Answer):
                return event
        raise RuntimeError("the pipeline ended without an answer")  # stream() always yields one

    def verify(self, question: str, language: Language, draft: str, passages) -> tuple[str, list[Citation], bool]:
        """Keep the draft's supported sentences with their citations; abstain when none is left."""
        if not draft or is_abstention(draft) or not passages:
            return ABSTENTION[language], [], True
        checker = SupportChecker(lambda texts: self.embedder.embed_batch(texts, "passage"), list(passages))
        kept_sentences: list[str] = []
        plain: list[str] = []
        citations: dict[int, Citation] = {}
        for sentence, cited, rejected in checker.verify(answer_sentences(draft, language), question, language):
            if rejected:
                log.info("dropped citation(s) %s from %r", rejected, sentence)
            if not cited:
                log.info("dropped unsupported sentence %r", sentence)
                continue
            if not adds_content(sentence, question, language):
                log.info("dropped sentence that only restates the question: %r", sentence)
                continue
            plain.append(sentence)
            kept_sentences.append(with_markers(sentence, [c.n for c in cited]))
            for c in cited:
                citations.setdefault(c.n, c)
        if not kept_sentences:
            return ABSTENTION[language], [], True
        text = " ".join(kept_sentences)
        if expects_figure(question) and not numbers(" ".join(plain)):
            return ABSTENTION[language], [], True
        return text, sorted(citations.values(), key=lambda c: c.n), False
