"""What the web page needs besides Gradio: follow-up questions made standalone, a visitor's own
index (the default documents plus uploads), and the HTML of answers and sources.

Everything from a document or from the model is passed through `html.escape` before it goes
into HTML; only the tags written here (`<mark>`, `<details>`, `<div class=...>`) are markup.
Nothing here imports Gradio: `app.py` turns `QAError`s into `gr.Error`s.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from qa import library
from qa.citations import location
from qa.errors import CorpusError, InputError
from qa.index import Entry, Index
from qa.language import detect_language
from qa.loading import Source
from qa.pipeline import Pipeline
from qa.text import ENGLISH_WORDS, FRENCH_WORDS
from qa.types import Answer, Chunk, Document, Language, Passage, Preview

Progress = Callable[..., object]  # progress(fraction, desc=...): gr.Progress fits

TEXT = {
    "fr": {
        "sources": "Sources de la réponse",
        "closest": "Passages les plus proches",
        "others": "Autres passages retrouvés",
        "no_answer": "Pas de réponse dans les sources",
        "see_closest": "Passages les plus proches : {list} (voir les sources).",
        "understood": "Question comprise :",
        "empty": "Les passages cités s’afficheront ici, la phrase qui appuie la réponse surlignée.",
        "open": "Ouvrir dans le document",
    },
    "en": {
        "sources": "Sources of the answer",
        "closest": "Closest passages",
        "others": "Other retrieved passages",
        "no_answer": "No answer in the sources",
        "see_closest": "Closest passages: {list} (see the sources).",
        "understood": "Question understood as:",
        "empty": "The cited passages will show here, with the sentence that supports the answer "
                 "highlighted.",
        "open": "Open in the document",
    },
}

# ---------------------------------------------------------------------------------------------
# Follow-up questions
# ---------------------------------------------------------------------------------------------

_CONNECTORS = sorted([
    "et", "and", "also", "aussi", "mais", "but", "et pour", "et chez", "et concernant", "et côté",
    "et du côté de", "et qu'en est-il de", "et qu'en est-il du", "et qu'en est-il des",
    "et qu'en est-il d'", "qu'en est-il de", "qu'en est-il du", "qu'en est-il des",
    "qu'en est-il d'", "et pour ce qui est de", "what about", "and what about", "how about",
    "and how about", "and for", "what of",
], key=len, reverse=True)
_CONNECTOR = re.compile(
    r"^\s*(?:" + "|".join(re.escape(c).replace("'", "['’]").replace(r"\ ", r"\s+")
                          for c in _CONNECTORS) + r")(?:(?<=['’])|\s+|(?=[?!.]*\s*$))",
    re.IGNORECASE,
)
_UPPER = "A-ZÀ-ÖØ-Þ"
_NAME = rf"[{_UPPER}][\w'’.\-]*"
_NAME_RUN = re.compile(rf"(?<![\w'’\-]){_NAME}(?:\s+{_NAME})*|(?<=['’]){_NAME}(?:\s+{_NAME})*")
_ARTICLE = re.compile(r"^(?:(?:[Ll]es?|[Ll]a|[Tt]he)\s+|[Ll]['’])")
_NAME_PHRASE = re.compile(rf"{_ARTICLE.pattern}?{_NAME}(?:\s+{_NAME}){{0,3}}$")
_STRONG_REFERENTS = frozenset(
    "it its they them their theirs those these he she him his her "
    "eux ceux celles celui celle celui-ci celle-ci ceux-ci celles-ci lequel laquelle lesquels "
    "lesquelles cela ça".split()
)
# French subject and possessive pronouns: they refer back only when the question names nothing
# ("Quels modèles Alibaba a-t-il publiés ?" is standalone, "A-t-il été publié ?" is not).
_WEAK_REFERENTS = frozenset("il elle ils elles lui leur leurs son sa ses".split())
_WORDS = re.compile(r"[\w’'-]+")
# capitalised at the start of a question, yet not names: "Pourquoi ?" is no "Tencent ?"
_NOT_NAMES = FRENCH_WORDS | ENGLISH_WORDS | frozenset(
    "oui non yes no ok okay merci thanks vraiment really depuis since lequel laquelle lesquels "
    "lesquelles source sources exemple example détails details plus more encore again".split()
)
MAX_CONTEXT_CHARS = 400


def _names(text: str) -> list[re.Match]:
    """Runs of capitalised words, except those that start a sentence.

    >>> [m.group() for m in _names("Combien de modèles Qwen ? Et DeepSeek en 2024 ?")]
    ['Qwen', 'DeepSeek']
    """
    runs = []
    for match in _NAME_RUN.finditer(text):
        before = text[: match.start()].rstrip(" \t\n¿¡\"«“")
        if before and before[-1] not in ".?!:;…":
            runs.append(match)
        elif " " in match.group():  # "Et DeepSeek": the run without its first word
            rest = _NAME_RUN.match(text, match.start() + match.group().index(" ") + 1)
            if rest:
                runs.append(rest)
    return runs


def _is_name_phrase(text: str) -> bool:
    """A name of one to four capitalised words, maybe after an article: "Tencent", "la Chine"."""
    if not _NAME_PHRASE.match(text):
        return False
    capitalised = [w for w in _WORDS.findall(text) if w[0].isupper()]
    return not any(w.lower() in _NOT_NAMES for w in capitalised)


def _language(text: str) -> Language | None:
    """The text's language, or None when it gives no evidence either way."""
    fr, en = detect_language(text, default="fr"), detect_language(text, default="en")
    return fr if fr == en else None


def _strip_end(text: str) -> str:
    return text.strip().rstrip("?!.…").strip()


def _with_context(previous: str, question: str) -> str:
    """`previous` then `question`, dropping the oldest sentences of `previous` past the cap."""
    parts = re.split(r"(?<=[?!.])\s+", previous.strip())
    while len(parts) > 1 and len(" ".join(parts)) + len(question) > MAX_CONTEXT_CHARS:
        parts.pop(0)
    return f"{' '.join(parts)} {question.strip()}"


def standalone_question(question: str, previous: str | None) -> str:
    """Rewrite a follow-up question into one that can be asked alone, by rules.

    `previous` is the last question as it was answered (itself standalone). Rules, in order:

    1. It starts with "Et", "And", "What about", "Qu'en est-il de"...: when what follows is a
       name ("Et Tencent ?") and the previous question has one, the previous question is asked
       again with its last name replaced; otherwise the previous question is put before it.
    2. It is short (at most 10 words) and refers back with a pronoun ("Which of them...",
       "A-t-il été publié ?"): the previous question is put before it.
    3. It has at most two words ("Pourquoi ?", "Tencent ?"): as in rule 1.
    4. Otherwise, or when the two questions are clearly in different languages (the answer
       must be in the language of the question as asked), it is left as it is.

    A 0.5B model rewrites follow-ups less reliably than these rules and costs seconds on a CPU,
    so no model is asked.

    >>> standalone_question("Et Tencent ?", "Quels modèles Alibaba a-t-il publiés ?")
    'Quels modèles Tencent a-t-il publiés ?'
    >>> standalone_question("What about DeepSeek?", "How many models are built on Qwen?")
    'How many models are built on DeepSeek?'
    >>> standalone_question("Which of them is from Alibaba?",
    ...                     "Which Chinese models are the most used?")
    'Which Chinese models are the most used? Which of them is from Alibaba?'
    >>> standalone_question("Et en 2024 ?", "Combien de modèles Qwen compte-t-il ?")
    'Combien de modèles Qwen compte-t-il ? Et en 2024 ?'
    >>> standalone_question("Qui a créé Qwen ?", "Quand le plan a-t-il été publié ?")
    'Qui a créé Qwen ?'
    >>> standalone_question("What about Tencent?", "Quels modèles Alibaba a-t-il publiés ?")
    'What about Tencent?'
    """
    question = question.strip()
    if not previous or not previous.strip():
        return question
    previous = previous.strip()
    asked, before = _language(question), _language(previous)
    if asked and before and asked != before:
        return question
    words = _WORDS.findall(question)
    connector = _CONNECTOR.match(question)
    if connector or len(words) <= 2:
        rest = _strip_end(question[connector.end():] if connector else question)
        names = _names(previous)
        if rest and _is_name_phrase(rest) and names:
            last = names[-1]
            before = previous[: last.start()]
            if _ARTICLE.match(rest):  # "pour les États-Unis" + "la Chine": one article
                before = re.sub(r"(?i)(?:\b(?:les?|la|the)\s+|\bl['’])$", "", before)
            return before + rest + previous[last.end():]
        return _with_context(previous, question)
    if len(words) <= 10:
        lowered = {w.lower().strip("'’-") for w in words}
        parts = {p for w in lowered for p in w.split("-")}  # "a-t-il" -> il
        if lowered & _STRONG_REFERENTS or (parts & _WEAK_REFERENTS and not _names(question)):
            return _with_context(previous, question)
    return question


# ---------------------------------------------------------------------------------------------
# A visitor's index: the default documents plus their uploads
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Session:
    """What one visitor has: their pipeline (None: the shared default one), the documents they
    added, and the questions asked so far, each as it was answered (standalone)."""

    pipeline: Pipeline | None = None
    documents: tuple[str, ...] = ()
    questions: tuple[str, ...] = ()
    chars: int = 0  # characters of text uploaded, against Settings.max_session_chars
    asked_at: tuple[float, ...] = ()  # monotonic times of the questions of the last minute

    @property
    def previous(self) -> str | None:
        return self.questions[-1] if self.questions else None


MAX_SESSION_CHARS = 2_000_000  # the default of Settings.max_session_chars


def add_documents(session: Session, base: Pipeline, docs: Sequence[Document],
                  progress: Progress | None = None, max_chars: int = MAX_SESSION_CHARS,
                  ) -> tuple[Session, list[str], list[str]]:
    """A new session whose index also holds `docs` (in memory, for this visitor); returns it,
    the names added and the names skipped because the same text is already there. `session`
    is left as it was."""
    current = (session.pipeline or base).load()
    known = {e.doc_id for e in current.index.manifest.documents}
    fresh = [d for d in docs if d.doc_id not in known]
    chars = session.chars + sum(len(d.text) for d in fresh)
    if chars > max_chars:
        raise CorpusError(
            f"these documents would bring this session to {chars:,} characters of text; the limit "
            f"is {max_chars:,}: remove your documents or upload shorter ones"
        )
    change = add_to_index(current.index, docs, current.embedder, progress)
    if not change.added:
        return session, [], list(change.skipped)
    pipeline = current.with_index(change.index)
    return (replace(session, pipeline=pipeline, documents=session.documents + change.added,
                    chars=chars), list(change.added), list(change.skipped))


def add_to_index(index: Index, docs: Sequence[Document], embedder,
                 progress: Progress | None = None) -> library.Change:
    """`library.add` of uploaded documents, reporting progress as the web page shows it."""

    def embedded(done: int, total: int) -> None:
        if progress is not None:
            progress(done / total, desc=f"Embedding passages {done}/{total}")

    if progress is not None:
        progress(0.0, desc="Splitting into passages")
    sources = [Source(d, library.UPLOAD, len(d.text.encode())) for d in docs]
    change = library.add(index, sources, embedder, embedded)
    if progress is not None and change.added:
        progress(1.0, desc="Indexing words")
    return change


def check_rate(session: Session, now: float, per_minute: int) -> Session:
    """`session` with a question asked at `now` (monotonic seconds) recorded, or an InputError
    when it already asked `per_minute` questions in the last 60 s.

    >>> s = check_rate(check_rate(Session(), 0.0, 2), 1.0, 2)
    >>> check_rate(s, 30.0, 2)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    qa.errors.InputError: Trop de questions ... / Too many questions: at most 2 a minute; try again in 30 s
    >>> check_rate(s, 60.5, 2).asked_at  # the first question is a minute old
    (1.0, 60.5)
    """
    recent = tuple(t for t in session.asked_at if now - t < 60)
    if len(recent) >= per_minute:
        wait = max(1, round(60 - (now - recent[0])))
        raise InputError(f"Trop de questions : {per_minute} par minute au plus, réessayez dans {wait} s. / "
                         f"Too many questions: at most {per_minute} a minute; try again in {wait} s")
    return replace(session, asked_at=recent + (now,))


# ---------------------------------------------------------------------------------------------
# HTML: every piece of document text or model output goes through `esc`
# ---------------------------------------------------------------------------------------------


def esc(text: str) -> str:
    """Escaped for HTML text and attributes; line breaks kept as `<br>`.

    >>> esc('<img src=x onerror="alert(1)">\\nok')
    '&lt;img src=x onerror=&quot;alert(1)&quot;&gt;<br>ok'
    """
    return html.escape(text, quote=True).replace("\n", "<br>")


def highlight(text: str, start: int, end: int) -> str:
    """`text` escaped, with `text[start:end]` in `<mark>`; no mark when the span is empty.

    >>> highlight("a <b> c. Qwen domine.", 9, 21)
    'a &lt;b&gt; c. <mark>Qwen domine.</mark>'
    """
    start, end = max(0, min(start, len(text))), max(0, min(end, len(text)))
    if end <= start:
        return esc(text)
    return f"{esc(text[:start])}<mark>{esc(text[start:end])}</mark>{esc(text[end:])}"


def quote_span(answer_quote: str, quote_start: int, quote_end: int, chunk: Chunk) -> tuple[int, int]:
    """The quote's offsets in the passage: from its document offsets, else found by text."""
    start, end = quote_start - chunk.start, quote_end - chunk.start
    if 0 <= start < end <= len(chunk.text) and chunk.text[start:end].strip():
        return start, end
    found = chunk.text.find(answer_quote) if answer_quote else -1
    return (found, found + len(answer_quote)) if found >= 0 else (0, 0)


CURSOR = "▍"


def user_html(question: str) -> str:
    """A question in the chat: its text, escaped (chat messages are plain text where possible,
    so that the copy button and screen readers get the words)."""
    return esc(question)


def draft_html(text: str) -> str:
    """The answer while it streams: its text, escaped, and a cursor."""
    return esc(text) + CURSOR


def answer_html(answer: Answer, asked: str | None = None) -> str:
    """The verified answer for the chat. An abstention has its own style and names the closest
    passages; a rewritten follow-up shows, small, the question that was answered."""
    t = TEXT[answer.language]
    if answer.abstained:
        closest = ", ".join(f"[{p.n}] {p.chunk.source}" for p in answer.passages[:2])
        body = f'<strong class="qa-badge">{esc(t["no_answer"])}</strong> {esc(answer.text)}'
        if closest:
            body += f'<div class="qa-closest">{esc(t["see_closest"].format(list=closest))}</div>'
        out = f'<div class="qa-abstention">{body}</div>'
    else:
        out = esc(answer.text)
    if asked is not None and " ".join(asked.split()) != answer.question:
        out += f'<div class="qa-rewrite">{esc(t["understood"])} {esc(answer.question)}</div>'
    return out


def _passage_card(passage_n: int, chunk: Chunk, language: Language, body: str, cited: bool,
                  span: tuple[int, int] | None = None) -> str:
    """A passage in the sources panel; its button opens the document at `span` (document
    offsets; default: the whole passage)."""
    start, end = span or (chunk.start, chunk.end)
    where = location(chunk, start, language)
    target = esc(f"{chunk.doc_id}:{start}:{end}")
    return (
        f'<div class="qa-source{" qa-cited" if cited else ""}" id="qa-source-{passage_n}">'
        f'<div class="qa-source-head"><span class="qa-n">[{passage_n}]</span> '
        f'<span class="qa-doc">{esc(chunk.source)}</span> '
        f'<span class="qa-where">{esc(where)}</span> '
        f'<button class="qa-open" type="button" data-qa-open="{target}">'
        f'{esc(TEXT[language]["open"])}</button></div>'
        f'<div class="qa-passage">{body}</div></div>'
    )


def _plain_card(p: Passage, language: Language) -> str:
    return _passage_card(p.n, p.chunk, language, esc(p.chunk.text), cited=False)


def sources_html(answer: Answer | None, language: Language = "fr") -> str:
    """The sources panel: each cited passage with the supporting span in `<mark>`, the other
    retrieved passages collapsed; for an abstention, the closest passages open."""
    if answer is None:
        return f'<div class="qa-sources qa-empty">{esc(TEXT[language]["empty"])}</div>'
    t = TEXT[answer.language]
    parts = []
    cited_ns = {c.n for c in answer.citations}
    if answer.citations:
        parts.append(f'<div class="qa-sources-title">{esc(t["sources"])}</div>')
        for c in answer.citations:
            start, end = quote_span(c.quote, c.quote_start, c.quote_end, c.chunk)
            parts.append(_passage_card(c.n, c.chunk, answer.language,
                                       highlight(c.chunk.text, start, end), cited=True,
                                       span=(c.chunk.start + start, c.chunk.start + end)))
        rest = [p for p in answer.passages if p.n not in cited_ns]
    else:
        shown = answer.passages[:2]
        if shown:
            parts.append(f'<div class="qa-sources-title">{esc(t["closest"])}</div>')
            parts.extend(_plain_card(p, answer.language) for p in shown)
        rest = list(answer.passages[2:])
    if rest:
        cards = "".join(_plain_card(p, answer.language) for p in rest)
        parts.append(f'<details class="qa-others"><summary>{esc(t["others"])} ({len(rest)})'
                     f'</summary>{cards}</details>')
    return f'<div class="qa-sources">{"".join(parts)}</div>'


def preview_html(preview: Preview) -> str:
    """The sources panel while the model writes: the best evidence, its sentence in `<mark>`."""
    t = TEXT[preview.language]
    parts = [f'<div class="qa-sources-title">{esc(t["sources"])}</div>']
    for c in preview.citations:
        start, end = quote_span(c.quote, c.quote_start, c.quote_end, c.chunk)
        parts.append(_passage_card(c.n, c.chunk, preview.language, highlight(c.chunk.text, start, end),
                                   cited=True, span=(c.chunk.start + start, c.chunk.start + end)))
    return f'<div class="qa-sources qa-preview">{"".join(parts)}</div>'


def library_html(entries: Sequence[Entry], mine: Sequence[str] = (), shared: bool = False,
                 note: str = "") -> str:
    """The documents a visitor's questions are answered from: name, type, pages and passages;
    `mine` (a visitor's own uploads, kept for them alone) in bold."""
    head = "Bibliothèque partagée, gardée sur ce serveur · Shared library, kept on this server" if shared \
        else "Documents du serveur, puis les vôtres (pour vous seul) · The server's documents, then yours (yours only)"
    rows = []
    for e in entries:
        details = [e.kind]
        if e.pages:
            details.append(f"{e.pages} p.")
        details.append(f"{e.passages} passage{'s' if e.passages != 1 else ''}")
        cls = ' class="qa-uploaded"' if e.name in mine else ""
        rows.append(f"<li{cls}>{esc(e.name)} <span class=\"qa-where\">({esc(', '.join(details))})</span></li>")
    if not rows:
        rows.append(f'<li class="qa-empty">{esc("Aucun document · No documents")}</li>')
    out = f'<div class="qa-library-head">{esc(head)}</div><ul class="qa-documents">{"".join(rows)}</ul>'
    if note:
        out += f'<div class="qa-note">{esc(note)}</div>'
    return out


VIEWER_CHARS = 200_000  # a longer document is shown around the cited span


def document_html(doc: Document, start: int, end: int, language: Language) -> str:
    """The whole document (its extracted text) with `doc.text[start:end]` in
    `<mark id="qa-viewer-mark">`, escaped; a very long one is cut to VIEWER_CHARS around it."""
    text = doc.text
    start, end = max(0, min(start, len(text))), max(0, min(end, len(text)))
    lo, hi = 0, len(text)
    if len(text) > VIEWER_CHARS:
        lo = max(0, start - VIEWER_CHARS // 2)
        hi = min(len(text), lo + VIEWER_CHARS)
    head = (f'<div class="qa-viewer-head"><span class="qa-doc">{esc(doc.source)}</span> '
            f'<span class="qa-where">{esc(location_in(doc, start, language))}</span></div>')
    body = (("… " if lo else "") + esc(text[lo:start]) + '<mark id="qa-viewer-mark">'
            + esc(text[start:end]) + "</mark>" + esc(text[end:hi]) + (" …" if hi < len(text) else ""))
    return f'<div class="qa-viewer">{head}<div class="qa-viewer-text">{body}</div></div>'


def location_in(doc: Document, offset: int, language: Language) -> str:
    """`qa.citations.location` for an offset of a whole document ("" when it has neither pages
    nor headings)."""
    if not doc.pages and not doc.sections:
        return ""
    pages = tuple(p for p in doc.pages)
    chunk = Chunk("", doc.doc_id, doc.source, 0, len(doc.text), "", doc.language,
                  page=1 if pages else 0, page_starts=pages[1:], headings=doc.sections)
    return location(chunk, offset, language)
