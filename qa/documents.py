"""Reading uploaded files (text, Markdown, PDF, HTML, Word) into `Document`s.

Every file is checked before it is parsed (type by name, size, then its first bytes), and
every failure is a `CorpusError` with a one-line message naming the file and the fix. Parsers
are maintained libraries, imported only when a file of their type arrives: pypdf for PDF,
BeautifulSoup (stdlib `html.parser`) for HTML, python-docx for Word.

The name a person sees (`Document.source`) is the uploaded file's name made safe by
`safe_filename`; it is only ever displayed, never used as a path.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from pathlib import Path

from qa.errors import CorpusError
from qa.language import detect_language
from qa.types import Document

MAX_UPLOAD_BYTES = 10 * 1024 * 1024
UPLOAD_SUFFIXES = (".txt", ".md", ".markdown", ".pdf", ".html", ".htm", ".docx")
_UNSAFE = re.compile(r"[^\w.\- ()\[\]]+", re.UNICODE)


def make_document(source: str, text: str) -> Document:
    """A `Document` with a stable id: the same name and text always give the same id."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.strip():
        raise CorpusError(f"{source} is empty: nothing to index")
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]
    stem = Path(source).stem or "doc"
    return Document(doc_id=f"{stem}-{digest}", source=source, text=text,
                    language=detect_language(text[:5000], default="fr"))



def safe_filename(name: str, max_chars: int = 80) -> str:
    """A display name for an uploaded file: its last path part, without control or odd characters.

    Directory parts (either slash) are dropped, so `../../etc/passwd` can't name a path; what is
    left keeps letters (accents too), digits, spaces and `._-()[]`; leading dots are removed.

    >>> safe_filename("../../etc/passwd")
    'passwd'
    >>> safe_filename("C:\\\\Users\\\\me\\\\Rapport d’étape <v2>.PDF")
    'Rapport d_étape _v2_.PDF'
    >>> safe_filename("..."), safe_filename("")
    ('document', 'document')
    """
    name = unicodedata.normalize("NFC", str(name))
    name = re.split(r"[\\/]", name)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C")
    name = _UNSAFE.sub("_", name).strip().lstrip(".").strip()
    if len(name) > max_chars:
        stem, dot, suffix = name.rpartition(".")
        name = (stem[: max_chars - len(suffix) - 1] + dot + suffix) if dot and len(suffix) <= 10 \
            else name[:max_chars]
    return name or "document"


def read_upload(path: str | Path, name: str | None = None,
                max_bytes: int = MAX_UPLOAD_BYTES) -> Document:
    """Read one uploaded file; `name` is the name the person gave it (default: the path's).

    Raises `CorpusError` for an unsupported type, a file over `max_bytes`, a file that is not
    what its name says, an unreadable or encrypted file, or one without any text.
    """
    path = Path(path)
    display = safe_filename(name if name is not None else path.name)
    suffix = Path(display).suffix.lower()
    if suffix not in UPLOAD_SUFFIXES:
        raise CorpusError(f"{display}: unsupported file type {suffix or '(none)'!r}; "
                          f"use {', '.join(UPLOAD_SUFFIXES)}")
    try:
        size = path.stat().st_size
    except OSError as error:
        raise CorpusError(f"{display} can't be read: {error.strerror or error}") from None
    if size > max_bytes:
        raise CorpusError(f"{display} is {size / 1e6:.1f} MB; the limit is "
                          f"{max_bytes / 1e6:.0f} MB per file")
    if size == 0:
        raise CorpusError(f"{display} is empty: nothing to index")
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise CorpusError(f"{display} can't be read: {error.strerror or error}") from None
    if suffix == ".pdf":
        text = pdf_text(raw, display)
    elif suffix in (".html", ".htm"):
        text = html_text(raw)
    elif suffix == ".docx":
        text = docx_text(raw, display)
    else:
        text = plain_text(raw, display)
    if not text.strip():
        hint = " (a scanned PDF has no text layer: run OCR first)" if suffix == ".pdf" else ""
        raise CorpusError(f"{display} has no text to index{hint}")
    return make_document(display, text)


def plain_text(raw: bytes, display: str) -> str:
    """UTF-8 text (a byte-order mark is dropped); anything else is refused with the fix.

    >>> plain_text("Qwen d’Alibaba".encode(), "a.txt")
    'Qwen d’Alibaba'
    >>> plain_text(b"caf\\xe9", "b.txt")
    Traceback (most recent call last):
    ...
    qa.errors.CorpusError: b.txt is not UTF-8 text (byte 3); convert it to UTF-8
    """
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise CorpusError(f"{display} is not UTF-8 text (byte {error.start}); "
                          "convert it to UTF-8") from None
    if "\x00" in text:
        raise CorpusError(f"{display} looks binary (it contains NUL bytes), not text")
    return text


def pdf_text(raw: bytes, display: str) -> str:
    """The text layer of every page, pages separated by a blank line."""
    import io

    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    if not raw.lstrip()[:5] == b"%PDF-":
        raise CorpusError(f"{display} is not a PDF file (it does not start with %PDF-)")
    try:
        reader = PdfReader(io.BytesIO(raw))
        if reader.is_encrypted and not reader.decrypt(""):
            raise CorpusError(f"{display} is password-protected: upload an unprotected copy")
        pages = [page.extract_text() or "" for page in reader.pages]
    except CorpusError:
        raise
    except (PyPdfError, ValueError, KeyError, TypeError, OSError, RecursionError,
            AttributeError, IndexError) as error:
        raise CorpusError(f"{display} is not a readable PDF ({type(error).__name__})") from None
    return "\n\n".join(page.strip() for page in pages if page.strip())


_BLOCK_TAGS = ("script", "style", "noscript", "template", "head", "svg", "iframe", "object")


def html_text(raw: bytes | str) -> str:
    """The visible text of a page: scripts, styles and the head dropped, one line per block.

    >>> html_text(b"<html><head><title>t</title><script>x()</script></head>"
    ...           b"<body><h1>Qwen</h1><p>Un mod&egrave;le <b>ouvert</b>.</p></body></html>")
    'Qwen\\nUn modèle ouvert.'
    """
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(raw, "html.parser")
    for tag in soup(_BLOCK_TAGS):
        tag.decompose()
    for br in soup.find_all("br"):
        br.replace_with("\n")
    blocks = ("p", "div", "li", "h1", "h2", "h3", "h4", "h5", "h6", "tr", "section",
              "article", "blockquote", "pre", "dt", "dd", "td", "th", "caption", "figcaption")
    for tag in soup.find_all(blocks):
        tag.insert_before("\n")
        tag.insert_after("\n")
    lines = (" ".join(line.split()) for line in soup.get_text().split("\n"))
    return "\n".join(line for line in lines if line)


def docx_text(raw: bytes, display: str) -> str:
    """Paragraphs, then table rows (cells separated by " | "), of a Word .docx file."""
    import io

    from docx import Document as open_docx

    if not raw.startswith(b"PK"):
        raise CorpusError(f"{display} is not a .docx file (an old .doc? save it as .docx)")
    try:
        document = open_docx(io.BytesIO(raw))
    except Exception as error:  # zip, XML (lxml) and package errors alike: the file is unusable
        raise CorpusError(f"{display} is not a readable .docx file ({type(error).__name__})") from None
    lines = [p.text.strip() for p in document.paragraphs]
    for table in document.tables:
        for row in table.rows:
            cells = [cell.text.strip() for cell in row.cells]
            lines.append(" | ".join(c for c in cells if c))
    return "\n".join(line for line in lines if line)
