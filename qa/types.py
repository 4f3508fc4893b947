"""The payloads that stages exchange. Frozen: a stage returns new values, never mutates."""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Literal

Language = Literal["fr", "en"]


@dataclass(frozen=True)
class Document:
    doc_id: str  # stable: derived from the source name and the text hash
    source: str  # what a person reads as the document's name (file name)
    text: str
    language: Language
    pages: tuple[int, ...] = ()  # offsets where each page starts (PDF): page n starts at pages[n-1]
    sections: tuple[tuple[int, str], ...] = ()  # (offset, heading) of each heading, in order


def _at(offset: int, marks: tuple[tuple[int, str], ...] | tuple[int, ...]) -> int:
    """How many of the sorted marks' offsets are at or before `offset`."""
    return bisect.bisect_right([m[0] if isinstance(m, tuple) else m for m in marks], offset)


@dataclass(frozen=True)
class Chunk:
    chunk_id: str  # derived from doc_id, offsets and text: re-indexing is idempotent
    doc_id: str
    source: str
    start: int  # character offsets into the document's text
    end: int
    text: str
    language: Language
    page: int = 0  # the page (1-based) the passage starts on; 0: the document has no pages
    page_starts: tuple[int, ...] = ()  # document offsets inside the passage where a page starts
    section: str = ""  # the nearest heading before the passage
    headings: tuple[tuple[int, str], ...] = ()  # (document offset, heading) inside the passage

    def page_at(self, offset: int) -> int:
        """The page of document offset `offset` inside this passage (0: no pages).

        >>> Chunk("d#0", "d", "d.pdf", 10, 30, "x" * 20, "fr", page=2, page_starts=(20,)).page_at(25)
        3
        """
        return self.page + _at(offset, self.page_starts) if self.page else 0

    def section_at(self, offset: int) -> str:
        """The nearest heading at or before document offset `offset` ("" when none)."""
        inside = _at(offset, self.headings)
        return self.headings[inside - 1][1] if inside else self.section


@dataclass(frozen=True)
class Passage:
    """A retrieved chunk, numbered as shown to the model (n starts at 1)."""

    n: int
    chunk: Chunk
    score: float  # fused retrieval score
    dense_score: float  # cosine similarity between question and passage


@dataclass(frozen=True)
class Citation:
    n: int
    chunk: Chunk
    quote: str  # the span of the passage that supports the cited sentence
    quote_start: int  # offsets of the quote in the document
    quote_end: int
    support: float  # 0..1, how well the quote supports the sentence

    @property
    def page(self) -> int:
        """The page the quote starts on (0: the document has no pages)."""
        return self.chunk.page_at(self.quote_start)

    @property
    def section(self) -> str:
        """The heading the quote is under ("" when none)."""
        return self.chunk.section_at(self.quote_start)


@dataclass(frozen=True)
class Preview:
    """The best evidence, shown at once while the model writes the answer."""

    language: Language
    citations: tuple[Citation, ...]


@dataclass(frozen=True)
class Answer:
    question: str
    language: Language
    text: str
    abstained: bool
    citations: tuple[Citation, ...]
    passages: tuple[Passage, ...]
    timings: dict[str, float] = field(default_factory=dict)
    models: dict[str, str] = field(default_factory=dict)
    draft: str = ""  # the model's raw output, before verification
    # how likely the reader was to reply NOT FOUND (qa.reader.doubt); None when its engine doesn't say
    doubt: float | None = None
    second: str = ""  # the second read's raw reply (direct style: the model answering from the evidence alone)
    second_doubt: float | None = None  # how likely the second read was to reply NOT FOUND

    def to_json(self) -> dict:
        """The `qa ask --json` object."""
        return {
            "question": self.question,
            "language": self.language,
            "answer": self.text,
            "abstained": self.abstained,
            "citations": [
                {
                    "n": c.n,
                    "chunk_id": c.chunk.chunk_id,
                    "source": c.chunk.source,
                    "text": c.chunk.text,
                    "start": c.chunk.start,
                    "end": c.chunk.end,
                    "quote": c.quote,
                    "quote_start": c.quote_start,
                    "quote_end": c.quote_end,
                    "page": c.page or None,
                    "section": c.section or None,
                }
                for c in self.citations
            ],
            "passages": [
                {
                    "n": p.n,
                    "chunk_id": p.chunk.chunk_id,
                    "source": p.chunk.source,
                    "text": p.chunk.text,
                    "page": p.chunk.page or None,
                    "section": p.chunk.section or None,
                    "score": round(p.score, 6),
                }
                for p in self.passages
            ],
            "timings": {k: round(v, 4) for k, v in self.timings.items()},
            "models": dict(self.models),
            "draft": self.draft,
            "doubt": None if self.doubt is None else round(self.doubt, 4),
            "second": self.second,
            "second_doubt": None if self.second_doubt is None else round(self.second_doubt, 4),
        }
