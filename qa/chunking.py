"""Splitting documents into passages of whole sentences, keeping character offsets."""

from __future__ import annotations

import bisect
import hashlib
import re

from qa.text import fold, split_sentences
from qa.types import Chunk, Document


def chunk_id(doc_id: str, start: int, end: int, text: str) -> str:
    digest = hashlib.sha256(f"{doc_id}\0{start}\0{end}\0{text}".encode()).hexdigest()
    return f"{doc_id}#{start}-{end}-{digest[:8]}"


def chunk_document(doc: Document, chunk_size: int = 600, chunk_overlap: int = 150) -> list[Chunk]:
    """Pack consecutive sentences into passages of at most `chunk_size` characters.

    Each passage after the first repeats the trailing sentences of the previous one, up to
    `chunk_overlap` characters, so a fact that straddles a boundary is whole in one passage.
    A passage prefers to end at a paragraph break once it is half full. A single sentence
    longer than `chunk_size` is cut into pieces of at most `chunk_size` (at a space where there
    is one), so no passage is longer: a 1 MB line is no 1 MB passage in a prompt.
    `doc.text[c.start:c.end] == c.text`.

    >>> from qa.types import Document
    >>> doc = Document("d", "d.txt", "Un. Deux. Trois.", "fr")
    >>> [c.text for c in chunk_document(doc, chunk_size=100, chunk_overlap=0)]
    ['Un. Deux. Trois.']
    """
    sentences = [piece for span in split_sentences(doc.text, doc.language)
                 for piece in _pieces(doc.text, span, chunk_size)]
    chunks: list[Chunk] = []
    i = 0
    while i < len(sentences):
        start = sentences[i][0]
        j = i + 1  # always take at least one sentence
        while j < len(sentences) and sentences[j][1] - start <= chunk_size:
            new_paragraph = "\n" in doc.text[sentences[j - 1][1] : sentences[j][0]]
            if new_paragraph and sentences[j - 1][1] - start >= chunk_size // 2:
                break
            j += 1
        end = sentences[j - 1][1]
        text = doc.text[start:end]
        chunks.append(Chunk(chunk_id(doc.doc_id, start, end, text), doc.doc_id, doc.source,
                            start, end, text, doc.language, **_where(doc, start, end)))
        if j >= len(sentences):
            break
        # next passage starts with trailing sentences that fit in the overlap, but always advances
        k = j
        while k - 1 > i and end - sentences[k - 1][0] <= chunk_overlap:
            k -= 1
        i = k
    return chunks


def _pieces(text: str, span: tuple[int, int], size: int) -> list[tuple[int, int]]:
    """`span` cut into spans of at most `size` characters, each ending after a space in its
    second half when there is one, trimmed of whitespace.

    >>> text = "aaaa bbbb cccc"
    >>> [text[s:e] for s, e in _pieces(text, (0, 14), 10)]
    ['aaaa bbbb', 'cccc']
    """
    start, end = span
    out: list[tuple[int, int]] = []
    while end - start > size:
        cut = text.rfind(" ", start + size // 2, start + size)
        cut = cut if cut > start else start + size
        piece = text[start:cut].rstrip()
        out.append((start, start + len(piece)))
        start = cut
        while start < end and text[start].isspace():
            start += 1
    if start < end:
        out.append((start, end))
    return out


def _where(doc: Document, start: int, end: int) -> dict:
    """A passage's page and section fields: where `doc.text[start:end]` sits in its document."""
    where: dict = {}
    if doc.pages:
        where["page"] = bisect.bisect_right(doc.pages, start)
        where["page_starts"] = tuple(p for p in doc.pages if start < p < end)
    before = [title for offset, title in doc.sections if offset <= start]
    if before:
        where["section"] = before[-1]
    inside = tuple((offset, title) for offset, title in doc.sections if start < offset < end)
    if inside:
        where["headings"] = inside
    return where


# What a passage is read with besides its text (`indexed_text`): its document's title and its
# section heading. BM25 reads them (fused MRR +0.02 on PIAF, +0.01 on XQuAD, both parts); the
# embedder does not: e5 given the title gained no more and lost on the project's own article
# (docs/retrieval.md, "Passage headers"). DENSE_HEADERS is recorded in each index's manifest
# (`Manifest.dense_headers`): changing it re-embeds older indexes. BM25 is rebuilt on each load.
LEXICAL_HEADERS = "title+section"
DENSE_HEADERS = ""
HEADER_CHOICES = ("", "title", "title+section")  # "": the text alone
_SQUAD_PARAGRAPH = re.compile(r"#\d+$")  # a SQuAD-format set's document: "<article title>#<i>"
_EXTENSION = re.compile(r"\.[A-Za-z0-9]{1,5}$")
_TAG = re.compile(r"<[^<>]*>")  # PIAF's titles carry HTML: "<i>Terminator 2</i>"


def document_title(source: str) -> str:
    """A document's title in words, from its source: a file's name without its extension, a
    SQuAD article's title without the paragraph number; dashes and underscores become spaces.

    >>> document_title("mediation-familiale.html")
    'mediation familiale'
    >>> document_title("Super_Bowl_50#3")
    'Super Bowl 50'
    >>> document_title("Washington_D.C.#0")
    'Washington D.C.'
    """
    if _SQUAD_PARAGRAPH.search(source):
        name = _SQUAD_PARAGRAPH.sub("", source)
    else:
        name = _EXTENSION.sub("", source)
    name = _TAG.sub("", name)
    return " ".join(re.sub(r"[-_]+", " ", name).split())


def passage_header(chunk: Chunk, headers: str) -> str:
    """Where the passage sits, as `indexed_text` prefixes it: "Title — Section" (each when known,
    the section only with "title+section", never twice the same words).

    >>> c = Chunk("d#0", "d", "mediation-familiale.md", 0, 4, "Text", "fr", section="Le coût")
    >>> passage_header(c, "title+section"), passage_header(c, "title"), passage_header(c, "")
    ('mediation familiale — Le coût', 'mediation familiale', '')
    """
    if headers not in HEADER_CHOICES:
        raise ValueError(f"headers must be one of {HEADER_CHOICES}, got {headers!r}")
    parts = [document_title(chunk.source)] if headers else []
    if headers == "title+section":
        parts.append(" ".join(chunk.section.split()))
    kept: list[str] = []
    for part in parts:
        if part and fold(part) not in (fold(k) for k in kept):
            kept.append(part)
    return " — ".join(kept)


def indexed_text(chunk: Chunk, headers: str) -> str:
    """The text a passage is indexed as (embedded with DENSE_HEADERS, BM25-indexed with
    LEXICAL_HEADERS): its header, a line break, its text. What is shown and quoted stays
    `chunk.text` (offsets, citations): only the index reads this.

    >>> indexed_text(Chunk("d#0", "d", "Super_Bowl_50#3", 0, 11, "Denver won.", "en"), "title")
    'Super Bowl 50\\nDenver won.'
    """
    header = passage_header(chunk, headers)
    return f"{header}\n{chunk.text}" if header else chunk.text


def chunk_documents(docs: list[Document], chunk_size: int, chunk_overlap: int) -> list[Chunk]:
    return [c for doc in docs for c in chunk_document(doc, chunk_size, chunk_overlap)]
