"""The straight line from a question to a verified, cited answer.

    question -> language -> retrieval -> prompt -> streamed draft -> citation check -> Answer

The draft streams as the model writes it; the final `Answer` keeps only sentences that a
passage supports, each with its citations, or abstains in the question's language.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterator, Sequence
from collections.abc import Generator as Generator_
from dataclasses import dataclass, field, replace

import numpy as np

from qa.citations import (
    SupportChecker,
    answer_sentences,
    figure_of_the_compared,
    is_abstention,
    names_the_roles_asked,
    parse_markers,
    strip_markers,
    with_markers,
)
from qa.decision import (
    OFF_TOPIC_COSINE,
    adds_content,
    answerable,
    asks_yes_no,
    expects_figure,
    kept_names,
    names_everything_asked,
    strong,
    sure_not_found,
    worded_as_question,
)
from qa.embedding import Embedder, make_embedder, same_embedder
from qa.errors import (
    CorpusError,
    InputError,
    SettingsError,
)
from qa.evidence import (
    DECISIVE_LEAD,
    RERANK_DEPTH,
    WHY_POOL,
    Evidence,
    asks_why,
    passages_of_best,
    rank_sentences,
    rerank,
    same_documents,
    select,
    with_parts,
)
from qa.generation import Generator, Likelihoods, make_generator
from qa.index import Index
from qa.language import answer_language, detect_language, in_neither_language
from qa.library import EMPTY, open_library
from qa.prompting import (
    ANSWER_PREFIX,
    build_messages,
    question_messages,
    sanitize,
    translation_messages,
)
from qa.reader import (
    NOT_FOUND,
    doubt,
    finished,
    is_not_found,
    reader_messages,
    reading_list,
    second_messages,
)
from qa.retrieval import Retriever
from qa.settings import Settings
from qa.stores import Store, make_store
from qa.text import numbers, sentence_spans, without_markup
from qa.translations import TranslationMemory, translation_memory_path
from qa.types import Answer, Citation, Language, Passage, Preview

log = logging.getLogger(__name__)

ABSTENTION = {
    "fr": "Le document ne le dit pas : aucun des passages trouvés ne répond à cette question.",
    "en": "The documents don't say: none of the passages found answers this question.",
}
OFF_TOPIC = {
    "fr": "Cette question sort du sujet des documents : ils n’en parlent pas.",
    "en": "This question is outside what the documents cover: they don't talk about it.",
}


# The extractive answer: a lead, then each evidence sentence in quotes with its citation.
QUOTE_LEAD = {"fr": "D’après les sources :", "en": "According to the sources:"}
TRANSLATED_LEAD = {"fr": "D’après les sources (traduit de l’anglais) :",
                   "en": "According to the sources (translated from French):"}
QUOTES = {"fr": ("«\u00a0", "\u00a0»"), "en": ("“", "”")}
DOUBTFUL = {"fr": "(traduction approximative : voir l’original dans la source)",
            "en": "(rough translation: see the original in the source)"}
# A translation is checked against its sentence: every number kept, and multilingual cosine at
# least this (good translations of the article's sentences score about 0.8).
TRANSLATION_SUPPORT = 0.6

# The extractive style's hidden draft only decides whether to answer, from its first sentence or
# two: capped at this many tokens (at most `max_new_tokens`). On the project test set, 40 instead
# of 64 left all 14 drafts' decisions unchanged and took their answers from 2.93 to 2.73 s.
HIDDEN_DRAFT_TOKENS = 40

# The direct style's second read: before quoting strong evidence (the reader's answer failed its
# check, or it found nothing), the model answers from that evidence alone (`Pipeline._second_read`).
# docs/quality.md#the-second-read.
SECOND_READ = True
# Nearly every word a second-read answer adds to the question must be in the passage it cites (the
# reader's answers: NEW_WORDS_FOUND, half): it read nothing else, so a word from elsewhere is
# invented. 1.0 refused « Pour répondre… » where the passage says « réponse ». A short second-read
# answer ("LMArena [4]") is also anchored by its own names (`own_names`), which the sentence it read
# holds; the reader's short answers only by the question's, since its "DeepSeek [1]" for "Which
# Chinese universities…?" named a company its passage holds.
SECOND_NEW_WORDS = 0.85
# When the second read, given only the sentences that would be quoted, answers NOT FOUND, the
# answer is declined instead of quoting them: the model has read exactly what the quote would
# assert and found no answer there. docs/quality.md#the-second-reads-not-found.
SECOND_NOT_FOUND_DECLINES = True

# Sentence vectors kept between questions (about 1.5 KB each with 384 dimensions): the same
# passages come back, and embedding their sentences was most of the time before the evidence.
REMEMBERED_SENTENCES = 20_000


def remembering(embed: Callable[[list[str]], np.ndarray], vectors: dict[str, np.ndarray] | None = None,
                limit: int = REMEMBERED_SENTENCES) -> Callable[[list[str]], np.ndarray]:
    """`embed`, embedding each distinct text once: the evidence scorer and the draft check read
    the same sentences of the same passages. `vectors` (shared between calls, at most `limit`
    texts: the oldest go first) keeps them across questions.

    >>> calls = []
    >>> embed = remembering(lambda texts: calls.append(texts) or np.ones((len(texts), 2)))
    >>> embed(["a", "b"]).shape, embed(["b", "c"]).shape, calls
    ((2, 2), (2, 2), [['a', 'b'], ['c']])
    """
    vectors = {} if vectors is None else vectors

    def embed_once(texts: list[str]) -> np.ndarray:
        missing = list(dict.fromkeys(t for t in texts if t not in vectors))
        if missing:
            vectors.update(zip(missing, embed(missing), strict=True))
            for old in list(vectors)[:max(0, len(vectors) - max(limit, len(texts)))]:
                del vectors[old]
        if not texts:
            return embed([])
        return np.stack([vectors[t] for t in texts])

    return embed_once


_SURROGATE = re.compile("[\ud800-\udfff]")


def validate_question(question: str, max_chars: int) -> str:
    """The question with its whitespace collapsed and lone surrogates (bytes that were not
    UTF-8 in a command line, `\\ud800` escapes in the page's JSON) replaced by U+FFFD, which
    nothing downstream can encode; refused when empty or longer than `max_chars`.

    >>> validate_question("  Qwen \\udce9 ?", 100)
    'Qwen \\ufffd ?'
    """
    if not isinstance(question, str) or not question.strip():
        raise InputError("the question is empty: ask something, e.g. qa ask \"Qu'est-ce que Qwen ?\"")
    question = _SURROGATE.sub("\ufffd", " ".join(question.split()))
    if len(question) > max_chars:
        raise InputError(f"the question is {len(question)} characters long; the limit is {max_chars}")
    return question


@dataclass
class _Turn:
    """What the answer styles share about one question: its passages and embedding functions
    (passage sentences embedded once per question)."""

    question: str
    language: Language
    passages: list[Passage]
    embed_passages: Callable[[list[str]], np.ndarray]
    embed_query: Callable[[list[str]], np.ndarray]
    doubt: float | None = None  # the reader's, once it has replied (qa.reader.doubt)
    second: str = ""  # the second read's reply, when there was one
    second_doubt: float | None = None  # its doubt, as the reader's


_Result = tuple[str, list[Citation], bool, str]  # text, citations, abstained, the model's draft
_LEADS = {*QUOTE_LEAD.values(), *TRANSLATED_LEAD.values(), *ANSWER_PREFIX.values()}


@dataclass
class Pipeline:
    """Loads its parts lazily, once; `stream` and `ask` answer questions.

    Two embedders: `embedder` is the index's (its passages, and the question for dense
    retrieval); `evidence_embedder` scores evidence sentences, and its cosines decide off-topic
    questions and check translations, against thresholds calibrated on one model
    (docs/retrieval.md). When the settings name the same model for both, one instance serves both.
    """

    settings: Settings = field(default_factory=Settings.from_env)
    embedder: Embedder | None = None
    evidence_embedder: Embedder | None = None
    generator: Generator | None = None
    index: Index | None = None
    progress: bool = False
    store: Store | None = None  # where `index` was opened from; None for an index given in memory
    _retriever: Retriever | None = None
    _warm: bool = False
    _second_warm: bool = False  # the second read's fixed beginning (`_second_read`)
    translations: TranslationMemory | None = None  # default: a file per model in the cache dir
    _sentence_vectors: dict = field(default_factory=dict)  # passage sentences' vectors (remembering)

    def load(self) -> Pipeline:
        s = self.settings
        if self.embedder is None:
            self.embedder = make_embedder(s.embedder, threads=s.threads)
        if self.evidence_embedder is None:
            self.evidence_embedder = (self.embedder if same_embedder(s.evidence_embedder, s.embedder)
                                      else make_embedder(s.evidence_embedder, threads=s.threads))
        if self.index is None:
            self.index = open_library(s, self.embedder, progress=self.progress)
            self.store = make_store(s)
        if self.generator is None:
            self.generator = make_generator(s.llm, s.cache_dir, threads=s.threads, engine=s.engine,
                                            progress=self.progress, connect_timeout=s.server_connect_timeout,
                                            read_timeout=s.server_read_timeout, retries=s.server_retries)
        if hasattr(self.generator, "load"):
            self.generator.load()
        if self.translations is None:
            self.translations = TranslationMemory(
                translation_memory_path(s.cache_dir, getattr(self.generator, "name", "model")))
        if not self.index.chunks:  # an emptied library: refused at the first question
            self._retriever = None
        elif self._retriever is None or self._retriever.translations is not self.translations:
            # BM25 reads foreign passages through the translations (qa.retrieval)
            self._retriever = Retriever(self.index, self.embedder, translations=self.translations)
        if not self._warm:  # lazy weights and the language detector: load now, not on the first question
            if s.answer_style == "extractive" and not isinstance(self.generator, Likelihoods):
                log.info("%s can't score replies: the extractive style skips its query-likelihood rerank of "
                         "evidence sentences", getattr(self.generator, "name", "the generator"))
            self.embedder.embed_batch(["warm up"], "query")
            if self.evidence_embedder is not self.embedder:
                self.evidence_embedder.embed_batch(["warm up"], "passage")
            detect_language("warm up")
            in_neither_language("warm up the detectors")  # its six languages' models: about 1 s
            if self.settings.answer_style == "direct" and hasattr(self.generator, "warm"):
                self.generator.warm(reader_messages("", "en", [])[:-1])  # the reader's fixed beginning
            self._warm = True
        return self

    def with_settings(self, settings: Settings) -> Pipeline:
        """This pipeline with other answer-time settings (passages, answer length and style),
        sharing its loaded models, index and translation memory. Settings that would need
        other models or another index are refused."""
        for name in ("embedder", "evidence_embedder", "llm", "index_dir", "store", "chunk_size", "chunk_overlap",
                     "cache_dir", "threads"):
            if getattr(settings, name) != getattr(self.settings, name):
                raise SettingsError(f"{name} can't change on a loaded pipeline: make a new one")
        return replace(self, settings=settings)

    def with_index(self, index: Index) -> Pipeline:
        """A pipeline over `index` (an extended copy, say) sharing this one's models and
        translation memory."""
        self.load()
        return Pipeline(self.settings, embedder=self.embedder, evidence_embedder=self.evidence_embedder,
                        generator=self.generator, index=index, translations=self.translations,
                        _sentence_vectors=self._sentence_vectors).load()

    def refresh(self) -> Pipeline:
        """Answer from the library as another process left it (a shared PostgreSQL store): one
        integer compared per question; the folder store is never changed from outside."""
        if self.store is not None and self.index is not None and not self.store.is_current(self.index):
            log.info("the library changed in another process: reloading it")
            self.index, self._retriever = self.store.load(), None
            self.load()
        return self

    @property
    def retriever(self) -> Retriever:
        self.load()
        return self._retriever

    def models(self) -> dict[str, str]:
        return {"embedder": getattr(self.embedder, "name", "?"),
                "evidence_embedder": getattr(self.evidence_embedder, "name", "?"),
                "llm": getattr(self.generator, "name", "?")}

    def stream(self, question: str, top_k: int | None = None) -> Iterator[str | Preview | Answer]:
        """Yield the answer as it is written, then the verified `Answer`.

        The stages: understand the question (language), retrieve passages, rank their sentences
        as evidence, then one of the answer styles (`ANSWER_STYLES`) drafts, checks and presents:
        - direct: the best evidence at once (a `Preview`), then the model's own answer read
          from the evidence sentences, streamed; claims its check refutes are dropped, and when
          none is left the best evidence is quoted (or the answer declined);
        - extractive: quoted or translated evidence; the model's hidden draft only decides
          whether the sources answer when the evidence is weak;
        - generative: the model's draft from whole passages, which verification may then trim.
        Any style: a question that no sentence of the passages relates to is told it is off the
        documents' subject, without asking the model.
        """
        question = validate_question(question, self.settings.max_question_chars)
        top_k = top_k or self.settings.top_k
        self.load().refresh()
        if self._retriever is None:
            raise CorpusError(EMPTY)
        started = time.perf_counter()
        language: Language = detect_language(question, default="fr")
        pool = WHY_POOL if asks_why(question, language) else 1  # 1 by default (qa.evidence)
        passages = self._retriever.retrieve(question, language, top_k * pool)
        passages = same_documents(passages, top_k)  # a why-question's extra passages: the same documents'
        retrieved = time.perf_counter()
        first_piece: list[float] = []

        def shown(pieces: Iterator[str | Preview]):  # passes pieces (and the return value) through, timed
            while True:
                try:
                    piece = next(pieces)
                except StopIteration as stop:
                    return stop.value
                if not first_piece and (isinstance(piece, Preview) or (  # fixed text isn't content
                        piece.strip(" “”«»\u00a0") and piece not in _LEADS)):
                    first_piece.append(time.perf_counter())
                yield piece

        evidence = self.evidence_embedder  # the retriever embedded the question with the index's
        turn = _Turn(question, language, list(passages),
                     remembering(lambda texts: evidence.embed_batch(texts, "passage"), self._sentence_vectors),
                     lambda texts: evidence.embed_batch(texts, "query"))
        ranked = rank_sentences(question, language, passages, turn.embed_query, turn.embed_passages)
        if len(passages) > top_k:  # a why-question's pool: the passages holding the best sentences
            passages = turn.passages = passages_of_best(ranked, top_k)
            ranked = rank_sentences(question, language, passages, turn.embed_query, turn.embed_passages)
        if not ranked or max(e.cosine for e in ranked) < OFF_TOPIC_COSINE:  # about something else
            yield from shown(iter([OFF_TOPIC[language]]))
            result = (OFF_TOPIC[language], [], True, "")
        else:
            style = {"direct": self._direct, "extractive": self._extractive,
                     "generative": self._generative}[self.settings.answer_style]
            result = yield from shown(style(turn, ranked))
        text, citations, abstained, draft = result
        done = time.perf_counter()
        yield Answer(
            question=question, language=language, text=text, abstained=abstained,
            citations=tuple(citations), passages=tuple(passages),
            timings={"retrieval_s": retrieved - started,
                     "first_token_s": (first_piece[0] if first_piece else done) - started,
                     "total_s": done - started},
            models=self.models(), draft=draft, doubt=turn.doubt, second=turn.second,
            second_doubt=turn.second_doubt,
        )

    def _direct(self, turn: _Turn, ranked: list[Evidence]) -> Generator_[str | Preview, None, _Result]:
        """The direct style: show the best evidence, let the model answer from the evidence
        sentences (`qa.reader`) and keep the claims its check supports. When no claim holds up,
        or the model finds nothing, the extractive style's decision takes over: when the evidence
        is strong (and, for a figure question, holds a figure) the model reads it alone
        (`_second_read`), whose checked answer is taken, whose NOT FOUND declines, and else the
        evidence is quoted; weak evidence is declined. A yes-or-no question is not declined by the
        model's NOT FOUND, sure or not (`asks_yes_no`): the evidence decides. An answer worded as
        the question gives way to the second read's, when that holds up."""
        question, language = turn.question, turn.language
        best = select(ranked)
        confident = strong(best)
        yield Preview(language, tuple(self._evidence_citation(e) for e in best))
        messages = reader_messages(question, language, reading_list(ranked))
        pieces: list[str] = []
        held: list[str] | None = []  # the reply's start, held until it can't be "NOT FOUND"
        for piece in self.generator.stream(messages, self.settings.max_new_tokens):
            pieces.append(piece)
            if held is not None:
                held.append(piece)
                start = "".join(held).lstrip()
                if len(start) < len(NOT_FOUND) and NOT_FOUND.startswith(start.upper()):
                    continue
                if is_not_found(start):
                    break
                piece, held = start, None
            yield piece
        turn.doubt = self._doubt()
        draft = "".join(pieces).strip()
        declined = not draft or is_not_found(draft)
        unsupported = True
        yes_no = asks_yes_no(question, language)  # the reader's NOT FOUND doesn't decide these
        if declined and sure_not_found(turn.doubt) and not yes_no:  # final, even over strong evidence
            yield ABSTENTION[language]
            return ABSTENTION[language], [], True, draft
        if not declined:
            reply = self._ended(draft, streamed=len(pieces))
            text, citations, unsupported = self.verify(question, language, without_markup(reply), turn.passages,
                                                         turn.embed_passages)
            if not unsupported:
                if SECOND_READ and any(worded_as_question(s, language) for s in answer_sentences(text, language)):
                    # the question copied ("La Chine s'est-elle tournée… pour…"): the evidence read alone first
                    second = yield from self._second_read(turn, best, separate=held is None)
                    if second is not None:
                        return second[0], second[1], False, draft
                return self._in_question_language(text, language, citations), citations, False, draft
        if answerable(question, unsupported, best, declined=declined, confident=confident) \
                and names_everything_asked(question, [self._in_language(e, language) for e in best]) \
                and names_the_roles_asked(question, [e.text for e in best]) \
                and not (expects_figure(question) and figure_of_the_compared(question, [e.text for e in best])):
            if SECOND_READ:
                second = yield from self._second_read(turn, best, separate=held is None)
                if second is not None:
                    return second[0], second[1], False, draft
                if SECOND_NOT_FOUND_DECLINES and is_not_found(turn.second) and not yes_no:
                    yield ("\n" if held is None else "") + ABSTENTION[language]
                    return ABSTENTION[language], [], True, draft
            parts: list[str] = []
            citations = yield from self._quote(best, language, parts, separate=held is None)
            return "".join(parts).strip(), citations, False, draft
        yield ("\n" if held is None else "") + ABSTENTION[language]
        return ABSTENTION[language], [], True, draft

    def _second_read(self, turn: _Turn, best: Sequence[Evidence], separate: bool
                     ) -> Generator_[str, None, tuple[str, list[Citation]] | None]:
        """The model's answer from the evidence `best` alone (`qa.reader.second_messages`), checked
        like the reader's; yielded and returned (text, citations) when every claim holds up, else
        None and nothing shown (the evidence is then quoted)."""
        question, language = turn.question, turn.language
        if not self._second_warm and hasattr(self.generator, "warm"):  # its fixed beginning read once, then kept
            self.generator.warm(second_messages("", "en", [])[:-1])
            self._second_warm = True
        reply = "".join(self.generator.stream(
            second_messages(question, language, reading_list(best, read=len(best), following=0)),
            self.settings.max_new_tokens)).strip()
        turn.second, turn.second_doubt = reply, self._doubt()
        if not reply or is_not_found(reply):
            return None
        reply = without_markup(self._ended(reply, streamed=0))
        text, citations, unsupported = self.verify(question, language, reply, turn.passages, turn.embed_passages,
                                                   new_words=SECOND_NEW_WORDS, own_names=True)
        if unsupported or len(answer_sentences(text, language)) < len(answer_sentences(reply, language)):
            return None  # all of it holds up, or the quote: a half kept would answer half the question
        text = self._in_question_language(text, language, citations)
        yield ("\n" if separate else "") + text
        return text, citations

    def _ended(self, reply: str, streamed: int) -> str:
        """The model's last `reply`, its cut sentence ended with "…" (`finished`) only when it used
        the whole token budget: the new tokens its engine reports, else the `streamed` pieces."""
        generated = getattr(self.generator, "last", {}).get("new_tokens", streamed)
        return finished(reply) if generated >= self.settings.max_new_tokens else reply

    def _doubt(self) -> float | None:
        """How likely the reader's last reply was to be NOT FOUND (`qa.reader.doubt`), from the
        first choices its engine reported (kept even when the reply was not read to its end);
        None when it reports none."""
        choices = getattr(self.generator, "last", {}).get("first_choices")
        return doubt(choices) if choices else None

    def _in_question_language(self, text: str, language: Language, citations: Sequence[Citation]) -> str:
        """The checked answer `text`, translated sentence by sentence (markers kept) when the
        model wrote it in the sources' language instead of the question's: its claims were
        checked in the words it used, and the reader sees them in theirs."""
        written = answer_language(strip_markers(text), language)
        if written == language:
            return text
        out = []
        for sentence in answer_sentences(text, written):
            cited, _ = parse_markers(sentence, max((c.n for c in citations), default=0))
            plain = strip_markers(sentence)
            translated = "".join(self._translation(plain, written, language)).strip()
            out.append(with_markers(translated or plain, cited))
        return " ".join(out)

    def _in_language(self, e: Evidence, language: Language) -> str:
        """An evidence sentence in `language`: itself, or its translation (remembered, so
        quoting it next costs nothing)."""
        if e.language == language:
            return e.text
        return "".join(self.translate(e.text, e.language, language)).strip() or e.text

    def _extractive(self, turn: _Turn, ranked: list[Evidence]) -> Generator_[str, None, _Result]:
        """The extractive style: the evidence sentences quoted (or translated); the model's
        hidden draft decides whether to answer only when the evidence is weak."""
        question, language = turn.question, turn.language
        # Strength is judged on the scorer's own ranking, which its threshold was set on: the
        # rerank chooses what to quote (a likelier sentence may score lower), not whether.
        confident = strong(select(ranked))
        evidence = select(self._reranked(question, language, ranked))
        unsupported = False
        draft = ""
        if not confident:  # only then can the model's checked draft change the decision
            # The draft is never shown: it is prompted in the best sentence's language, where
            # the 0.5B model extracts content instead of restating an English question (docs/quality.md).
            frame = ranked[0].language
            budget = min(self.settings.max_new_tokens, HIDDEN_DRAFT_TOKENS)
            pieces = self.generator.stream(build_messages(question, frame, turn.passages), budget,
                                           prefix=ANSWER_PREFIX[frame])
            draft = "".join([ANSWER_PREFIX[frame], *pieces]).strip()
            _, _, unsupported = self.verify(question, frame, draft, turn.passages, turn.embed_passages)
        if not answerable(question, unsupported, evidence, declined=is_abstention(draft), confident=confident):
            yield ABSTENTION[language]
            return ABSTENTION[language], [], True, draft
        evidence = with_parts(question, language, turn.passages, evidence, turn.embed_query, turn.embed_passages)
        parts: list[str] = []
        citations = yield from self._quote(evidence, language, parts)
        return "".join(parts), citations, False, draft

    def _generative(self, turn: _Turn, ranked: list[Evidence]) -> Generator_[str, None, _Result]:
        """The generative style: the model's draft from whole passages, then verified."""
        question, language = turn.question, turn.language
        prefix = ANSWER_PREFIX[language]
        draft_parts: list[str] = [prefix]
        yield prefix  # put in the model's mouth: the first token is the model's
        for piece in self.generator.stream(build_messages(question, language, turn.passages),
                                           self.settings.max_new_tokens, prefix=prefix):
            draft_parts.append(piece)
            yield piece
        draft = "".join(draft_parts).strip()
        text, citations, abstained = self.verify(question, language, draft, turn.passages, turn.embed_passages)
        return text, citations, abstained, draft

    @staticmethod
    def _evidence_citation(e: Evidence) -> Citation:
        chunk = e.passage.chunk
        return Citation(n=e.passage.n, chunk=chunk, quote=e.text, quote_start=chunk.start + e.start,
                        quote_end=chunk.start + e.end, support=1.0)

    def _reranked(self, question: str, language: Language, ranked: list[Evidence]) -> list[Evidence]:
        """`ranked` reranked by the model's likelihood of the question given each of the best
        sentences (`qa.evidence.rerank`), when the model can score replies and the best sentence
        doesn't lead by more than DECISIVE_LEAD."""
        if not isinstance(self.generator, Likelihoods) or len(ranked) < 2:
            return ranked
        if ranked[0].score - ranked[1].score > DECISIVE_LEAD:
            return ranked
        head = ranked[:RERANK_DEPTH]
        likelihoods = self.generator.reply_likelihoods(
            [question_messages(e.text, language) for e in head], sanitize(question))
        return rerank(ranked, likelihoods)

    def _quote(self, evidence: Sequence[Evidence], language: Language, parts: list[str],
               separate: bool = False) -> Generator_[str, None, list[Citation]]:
        """Yield the extractive answer, its lead then piece by piece (also appended to `parts`):
        each evidence sentence quoted, or translated by the model when it is in another language;
        return the citations, one per cited passage (quoting its first evidence sentence).
        `separate`: something was shown before: the lead starts a new line."""
        citations: dict[int, Citation] = {}
        opening, closing = QUOTES[language]
        lead = (TRANSLATED_LEAD if any(e.language != language for e in evidence) else QUOTE_LEAD)[language]
        parts.append(lead)
        yield ("\n" if separate else "") + lead
        for e in evidence:
            citation = self._evidence_citation(e)
            piece = f" {opening}"
            parts.append(piece)
            yield piece
            doubtful = False
            # `[n]` in a quoted sentence (a document's own, or the model's in a translation) is
            # no citation of ours: dropped from the answer, which only our markers number; the
            # citation's quote keeps the exact text.
            if e.language == language:
                body = [strip_markers(e.text)]
                yield body[0]
            else:
                body = []
                for piece in self.translate(e.text, e.language, language):
                    body.append(piece)
                    yield piece
                if "".join(body).strip():
                    support = self._translation_support(e.text, "".join(body))
                    citation = replace(citation, support=round(support, 4))
                    doubtful = support < TRANSLATION_SUPPORT
                    body = [strip_markers("".join(body))]
                else:  # no translation came: the original it is
                    body = [strip_markers(e.text)]
                    yield body[0]
            parts.extend(body)
            piece = f"{closing} [{e.passage.n}]"
            if doubtful:  # the reader can check it: the original is the citation's quote
                piece += f" {DOUBTFUL[language]}"
            parts.append(piece)
            yield piece
            citations.setdefault(e.passage.n, citation)
        return sorted(citations.values(), key=lambda c: c.n)

    def translate(self, text: str, source: Language, target: Language) -> Iterator[str]:
        """The model's translation of one sentence, streamed; remembered on disk for this model."""
        known = self.translations.get(text, target)
        if known is not None:
            yield known
            return
        pieces: list[str] = []
        for piece in self._translation(text, source, target):
            pieces.append(piece)
            yield piece
        self.translations.put(text, target, "".join(pieces).strip())

    def _translation(self, text: str, source: Language, target: Language) -> Iterator[str]:
        """The model's translation of `text`, streamed, with room for a longer rendering."""
        budget = max(self.settings.max_new_tokens, 2 * len(text.split()) + 16)
        yield from self.generator.stream(translation_messages(text, source, target), budget)

    def prepare_translations(self, targets: Sequence[Language] = ("fr", "en"),
                             progress: bool = False) -> tuple[int, int]:
        """Translate every sentence of the index into each other language of `targets` now, so
        that questions in that language are answered from the translation memory instead of
        waiting for the model. Returns (sentences translated now, already remembered); a sentence
        the model gave no translation for counts in neither, and is tried again next time."""
        self.load()
        todo: dict[tuple[str, Language], Language] = {}
        for chunk in self.index.chunks:
            for start, end in sentence_spans(chunk):
                for target in targets:
                    if target != chunk.language:
                        todo.setdefault((chunk.text[start:end], target), chunk.language)
        missing = [(text, source, target) for (text, target), source in todo.items()
                   if self.translations.get(text, target) is None]
        from tqdm import tqdm

        with self.translations.deferred():
            for text, source, target in tqdm(missing, desc="Translating", unit="sentence", disable=not progress):
                for _ in self.translate(text, source, target):
                    pass
        done = sum(self.translations.get(text, target) is not None for text, _, target in missing)
        return done, len(todo) - len(missing)

    def _translation_support(self, source: str, translation: str) -> float:
        """Cosine between a sentence and its translation (multilingual embeddings); 0 when the
        translation drops a number or a name of the source (`kept_names`)."""
        if not translation.strip() or numbers(source) - numbers(translation):
            return 0.0
        if not kept_names(source, translation):
            return 0.0
        vectors = self.evidence_embedder.embed_batch([source, translation], "passage")
        return float(vectors[0] @ vectors[1])

    def ask(self, question: str, top_k: int | None = None) -> Answer:
        for event in self.stream(question, top_k):
            if isinstance(event, Answer):
                return event
        raise RuntimeError("the pipeline ended without an answer")  # stream() always yields one

    def verify(self, question: str, language: Language, draft: str, passages,
               embed_passages: Callable[[list[str]], np.ndarray] | None = None,
               new_words: float | None = None, own_names: bool = False) -> tuple[str, list[Citation], bool]:
        """Keep the draft's supported sentences with their citations; abstain when none is left.
        `new_words`: the share of the words a sentence adds to the question that its passage must
        hold (`SupportChecker.new_words_found`; default NEW_WORDS_FOUND). `own_names`: a short
        answer is anchored by its own names too (`SupportChecker`)."""
        if not draft or is_abstention(draft) or not passages:
            return ABSTENTION[language], [], True
        embed = embed_passages or (lambda texts: self.evidence_embedder.embed_batch(texts, "passage"))
        checker = SupportChecker(embed, list(passages), new_words=new_words, own_names=own_names)
        kept_sentences: list[str] = []
        plain: list[str] = []
        citations: dict[int, Citation] = {}
        for sentence, cited, rejected in checker.verify(answer_sentences(draft, language), question, language):
            if rejected:
                log.info("dropped citation(s) %s from %r", rejected, sentence)
            if not cited:
                log.info("dropped unsupported sentence %r", sentence)
                continue
            if in_neither_language(sentence):  # asked for by a document, not by the reader
                log.info("dropped a sentence in neither French nor English: %r", sentence)
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
