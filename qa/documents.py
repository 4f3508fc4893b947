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
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path

from qa.errors import CorpusError
from qa.language import detect_language
from qa.types import Document

MAX_UPLOAD_BYTES = 10 * 1024 * 1024
UPLOAD_SUFFIXES = (".txt", ".md", ".markdown", ".pdf", ".html", ".htm", ".docx", ".odt", ".epub")
MAX_PAGES = 2000  # a PDF past this is refused: reading it would take many minutes
MAX_OCR_PAGES = 300  # scanned pages read by OCR in one file (a few seconds each)
OCR_LANGUAGES = "fra+eng"
OCR_DPI = 200
# A .docx/.odt/.epub is a zip; its parsers read whole members into memory. The sizes its directory
# declares bound what reading it can inflate to (CPython's zipfile stops at the declared size):
# a 300 KB zip bomb declaring 1 GB is refused before parsing (docs/reliability.md).
MAX_UNZIPPED_BYTES = 100 * 1024 * 1024
MAX_ZIP_MEMBERS = 10_000
_UNSAFE = re.compile(r"[^\w.\- ()\[\]]+", re.UNICODE)


def make_document(source: str, text: str, pages: tuple[int, ...] = (),
                  sections: tuple[tuple[int, str], ...] = ()) -> Document:
    """A `Document` with a stable id: the same name and text always give the same id.

    `pages` and `sections` are offsets into `text`, which must then already use "\n" line ends;
    without them line ends are normalised here, and a Markdown file's headings become sections.
    """
    if not pages and not sections:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
        if Path(source).suffix.lower() in (".md", ".markdown"):
            sections = markdown_sections(text)
    if not text.strip():
        raise CorpusError(f"{source} is empty: nothing to index")
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]
    stem = Path(source).stem or "doc"
    return Document(doc_id=f"{stem}-{digest}", source=source, text=text,
                    language=detect_language(text[:5000], default="fr"), pages=tuple(pages),
                    sections=tuple(sections))


_MD_HEADING = re.compile(r"^ {0,3}#{1,6}[ \t]+(.+?)[ \t#]*$", re.MULTILINE)


def markdown_sections(text: str) -> tuple[tuple[int, str], ...]:
    """(offset, title) of each ATX heading (`# Title`) of a Markdown text.

    >>> markdown_sections("# Qwen\\nTexte.\\n## Production ##\\nSuite.")
    ((0, 'Qwen'), (14, 'Production'))
    """
    return tuple((m.start(), m.group(1).strip()) for m in _MD_HEADING.finditer(text))


def safe_filename(name: str, max_chars: int = 80) -> str:
    """A display name for an uploaded file: its last path part, without control or odd characters.

    Directory parts (either slash) are dropped, so `../../etc/passwd` can't name a path; what is
    left keeps letters (accents too), digits, spaces and `._-()[]`; leading dots are removed.

    >>> safe_filename("../../etc/passwd")
    'passwd'
    >>> safe_filename("C:\\\\Users\\\\me\\\\Rapport d’étape <v2>.PDF")
    'Rapport d_étape _v2_.PDF'
    >>> safe_filename("..."), safe_filename(""), safe_filename("....txt")
    ('document', 'document', 'document.txt')
    """
    name = unicodedata.normalize("NFC", str(name))
    name = re.split(r"[\\/]", name)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C")
    name = _UNSAFE.sub("_", name).strip()
    stripped = name.lstrip(".").strip()
    if stripped and "." not in stripped and stripped != name:  # "....txt": keep the type
        stripped = "document." + stripped
    name = stripped
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
    pages: tuple[int, ...] = ()
    sections: tuple[tuple[int, str], ...] = ()
    if suffix == ".pdf":
        text, pages = pdf_pages(raw, display)
    elif suffix in (".html", ".htm"):
        text, sections = html_sections(raw)
    elif suffix == ".docx":
        text, sections = docx_sections(raw, display)
    elif suffix == ".odt":
        text, sections = odt_sections(raw, display)
    elif suffix == ".epub":
        text, sections = epub_sections(raw, display)
    else:
        text = plain_text(raw, display)
    text = text.replace("\x00", "")  # a binary file under a markup type's name gives NULs
    if not text.strip():
        raise CorpusError(f"{display} has no text to index")
    return make_document(display, text, pages, sections)


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
    return pdf_pages(raw, display)[0]


def pdf_pages(raw: bytes, display: str, on_page: Callable[[int, int], None] | None = None,
              ) -> tuple[str, tuple[int, ...]]:
    """The text layer of every page, pages separated by a blank line, and the offset where each
    page's text starts (a page without text starts where the next one does). Pages without a
    text layer (scans) are read by OCR when tesseract is installed (`ocr_pages`).
    `on_page(done, total)` follows the reading."""
    import io

    from pypdf import PdfReader
    from pypdf.errors import DependencyError, PyPdfError

    if not raw.lstrip()[:5] == b"%PDF-":
        raise CorpusError(f"{display} is not a PDF file (it does not start with %PDF-)")
    try:
        reader = PdfReader(io.BytesIO(raw))
        if reader.is_encrypted and not reader.decrypt(""):
            raise CorpusError(f"{display} is password-protected: upload an unprotected copy")
        if len(reader.pages) > MAX_PAGES:
            raise CorpusError(f"{display} has {len(reader.pages)} pages; the limit is {MAX_PAGES}: "
                              "split it")
        pages = []
        for number, page in enumerate(reader.pages, start=1):
            pages.append(page.extract_text() or "")
            if on_page is not None:
                on_page(number, len(reader.pages))
    except CorpusError:
        raise
    except DependencyError:  # AES encryption, even with an empty password, needs `cryptography`
        raise CorpusError(f"{display} is encrypted (AES), which needs the cryptography package: "
                          "pip install cryptography, or upload an unprotected copy") from None
    except (PyPdfError, ValueError, KeyError, TypeError, OSError, RecursionError,
            AttributeError, IndexError) as error:
        raise CorpusError(f"{display} is not a readable PDF ({type(error).__name__})") from None
    blank = [i for i, page in enumerate(pages) if not page.strip()]
    if blank and len(blank) >= len(pages) / 2:  # mostly scanned: read the images
        for i, text in ocr_pages(raw, display, blank).items():
            pages[i] = text
    parts: list[str] = []
    starts: list[int] = []
    length = 0
    for page in pages:
        page = page.replace("\r\n", "\n").replace("\r", "\n").strip()
        if not page:  # starts where the next page's text will
            starts.append(length + (2 if parts else 0))
            continue
        if parts:
            length += 2  # the blank line between pages
        starts.append(length)
        parts.append(page)
        length += len(page)
    return "\n\n".join(parts), tuple(starts)


def ocr_pages(raw: bytes, display: str, numbers: list[int]) -> dict[int, str]:
    """The text of the PDF pages `numbers` (0-based) read by OCR: each page rendered by pdfium
    at OCR_DPI, read by Debian's tesseract (French and English). Refused with the fix when
    tesseract or its French data is missing, or past MAX_OCR_PAGES pages."""
    import shutil
    import subprocess

    if shutil.which("tesseract") is None:
        raise CorpusError(f"{display} is a scanned PDF (no text layer) and OCR is not installed: "
                          "apt-get install tesseract-ocr tesseract-ocr-fra, then add it again")
    listed = subprocess.run(["tesseract", "--list-langs"], capture_output=True, text=True).stdout.split()
    missing = [lang for lang in OCR_LANGUAGES.split("+") if lang not in listed]
    if missing:
        raise CorpusError(f"{display} is a scanned PDF and tesseract lacks the {'+'.join(missing)} data: "
                          f"apt-get install {' '.join('tesseract-ocr-' + m for m in missing)}")
    if len(numbers) > MAX_OCR_PAGES:
        raise CorpusError(f"{display} has {len(numbers)} scanned pages; OCR reads at most "
                          f"{MAX_OCR_PAGES} per file: split it")
    import pypdfium2
    import pytesseract

    try:
        document = pypdfium2.PdfDocument(raw)
        out = {}
        for i in numbers:
            image = document[i].render(scale=OCR_DPI / 72).to_pil()
            out[i] = pytesseract.image_to_string(image, lang=OCR_LANGUAGES)
        return out
    except (pypdfium2.PdfiumError, pytesseract.TesseractError, OSError, RuntimeError) as error:
        raise CorpusError(f"{display}: OCR failed ({type(error).__name__})") from None


_BLOCK_TAGS = ("script", "style", "noscript", "template", "head", "svg", "iframe", "object")


def html_text(raw: bytes | str) -> str:
    """The visible text of a page: scripts, styles and the head dropped, one line per block.

    >>> html_text(b"<html><head><title>t</title><script>x()</script></head>"
    ...           b"<body><h1>Qwen</h1><p>Un mod&egrave;le <b>ouvert</b>.</p></body></html>")
    'Qwen\\nUn modèle ouvert.'
    """
    return html_sections(raw)[0]


_HEADING_MARK = "\x1eqa-heading\x1e"


def html_sections(raw: bytes | str) -> tuple[str, tuple[tuple[int, str], ...]]:
    """The visible text of a page (as `html_text`) and its headings (h1–h6) as sections.

    Read in one pass by the standard library's event parser, without building a tree: time and
    memory stay linear in the file however deeply its tags nest (a tree walked by BeautifulSoup
    took quadratic time: 7 s for 8,000 nested `<div>`s, docs/reliability.md).

    >>> html_sections("<p>Intro</p><h2>Qui est <i>concerné</i> ?</h2><ul><li>Les parents</li></ul>")
    ('Intro\\nQui est concerné ?\\nLes parents', ((6, 'Qui est concerné ?'),))
    """
    if isinstance(raw, bytes):
        from bs4.dammit import UnicodeDammit  # the page's declared or sniffed encoding

        raw = UnicodeDammit(raw, is_html=True).unicode_markup or ""
    reader = _VisibleText()
    reader.feed(raw)
    reader.close()
    return _join_blocks((line.replace(_HEADING_MARK, " "), _HEADING_MARK in line)
                        for line in "".join(reader.pieces).split("\n"))


_HEADINGS = ("h1", "h2", "h3", "h4", "h5", "h6")
_BLOCKS = frozenset(("p", "div", "li", *_HEADINGS, "tr", "section", "article", "blockquote", "pre",
                     "dt", "dd", "td", "th", "caption", "figcaption"))
# Elements a browser doesn't show: the `hidden` attribute, or an inline style that hides them. Their
# text is no part of what a reader sees, and it is where a page hides instructions to a model
# (docs/reliability.md#prompt-injection).
_CONCEALING_STYLE = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden", re.IGNORECASE)
_VOID = frozenset(("area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
                   "track", "wbr"))
_CLOSED_BY_SIBLING = frozenset(("p", "li", "dt", "dd", "tr", "td", "th", "option"))


def _concealing(attrs) -> bool:
    """Whether a tag's attributes hide it from view.

    >>> _concealing([("hidden", None)]), _concealing([("style", "color: red; DISPLAY : none")])
    (True, True)
    >>> _concealing([("class", "hidden"), ("style", "display:block")])
    False
    """
    return any(name == "hidden" or (name == "style" and value and _CONCEALING_STYLE.search(value))
               for name, value in attrs)


class _VisibleText(HTMLParser):
    """Text pieces of a page: a line break around each block, a mark before each heading,
    nothing from inside `_BLOCK_TAGS` (scripts, styles, the head...) nor from inside an element
    hidden by its attributes (`hidden`, `display: none`, `visibility: hidden`)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.pieces: list[str] = []
        self.hidden: dict[str, int] = {}  # open hidden tags, by name
        self.concealed: list = []  # [tag, open count] of the outermost element hidden by its attributes

    def handle_starttag(self, tag: str, attrs) -> None:
        if self.concealed:
            if tag == self.concealed[0]:
                if tag in _CLOSED_BY_SIBLING and self.concealed[1] == 1:  # <p hidden>a<p>b: b shows
                    self.concealed = []
                else:
                    self.concealed[1] += 1
            if self.concealed:
                return
        if tag not in _VOID and tag not in _BLOCK_TAGS and _concealing(attrs):
            self.concealed = [tag, 1]
            return
        if tag == "body":  # a head never closed ends here
            self.hidden.pop("head", None)
        if tag in _BLOCK_TAGS:
            self.hidden[tag] = self.hidden.get(tag, 0) + 1
        elif tag == "br":
            self.pieces.append("\n")
        elif tag in _BLOCKS:
            self.pieces.append("\n" + (_HEADING_MARK if tag in _HEADINGS else ""))

    def handle_startendtag(self, tag: str, attrs) -> None:
        if self.concealed:
            return
        if tag == "br":
            self.pieces.append("\n")
        elif tag in _BLOCKS and tag not in _BLOCK_TAGS:
            self.pieces.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if self.concealed:
            if tag == self.concealed[0]:
                self.concealed[1] -= 1
                if not self.concealed[1]:
                    self.concealed = []
                    if tag in _BLOCKS:
                        self.pieces.append("\n")
            return
        if tag in self.hidden:
            self.hidden[tag] -= 1
            if not self.hidden[tag]:
                del self.hidden[tag]
        elif tag in _BLOCKS:
            self.pieces.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.hidden and not self.concealed:
            self.pieces.append(data)


def check_zip(raw: bytes, display: str, kind: str) -> None:
    """Refuse a zip-based file whose members would inflate past MAX_UNZIPPED_BYTES (or are more
    than MAX_ZIP_MEMBERS), from its directory alone, before any parser reads it."""
    import io
    import zipfile

    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError, EOFError) as error:
        raise CorpusError(f"{display} is not a readable {kind} file ({type(error).__name__})") from None
    if len(members) > MAX_ZIP_MEMBERS:
        raise CorpusError(f"{display} holds {len(members):,} files inside; the limit is "
                          f"{MAX_ZIP_MEMBERS:,} for a {kind} file")
    total = sum(m.file_size for m in members)
    if total > MAX_UNZIPPED_BYTES:
        raise CorpusError(f"{display} would unpack to {total / 1e6:,.0f} MB; the limit is "
                          f"{MAX_UNZIPPED_BYTES / 1e6:.0f} MB (a zip bomb?)")


def docx_text(raw: bytes, display: str) -> str:
    """Paragraphs, then table rows (cells separated by " | "), of a Word .docx file."""
    return docx_sections(raw, display)[0]


def docx_sections(raw: bytes, display: str) -> tuple[str, tuple[tuple[int, str], ...]]:
    """A Word file's text (as `docx_text`) and its headings (styles "Heading n"/"Titre n",
    "Title") as sections."""
    import io

    from docx import Document as open_docx

    if not raw.startswith(b"PK"):
        raise CorpusError(f"{display} is not a .docx file (an old .doc? save it as .docx)")
    check_zip(raw, display, ".docx")
    try:
        document = open_docx(io.BytesIO(raw))
        paragraphs = [(p.text.strip(), _is_heading_style(p.style.name if p.style else ""))
                      for p in document.paragraphs]
        for table in document.tables:
            for row in table.rows:
                cells = [cell.text.strip() for cell in row.cells]
                paragraphs.append((" | ".join(c for c in cells if c), False))
    except Exception as error:  # zip, XML (lxml) and package errors alike: the file is unusable
        raise CorpusError(f"{display} is not a readable .docx file ({type(error).__name__})") from None
    lines: list[str] = []
    sections: list[tuple[int, str]] = []
    offset = 0
    for text, heading in paragraphs:
        text = text.replace("\r", " ")
        if not text:
            continue
        if heading:
            sections.append((offset, " ".join(text.split())))
        lines.append(text)
        offset += len(text) + 1
    return "\n".join(lines), tuple(sections)


def odt_sections(raw: bytes, display: str) -> tuple[str, tuple[tuple[int, str], ...]]:
    """An OpenDocument text's paragraphs, list items and table cells in order, and its headings
    (`text:h`) as sections."""
    import io

    if not raw.startswith(b"PK"):
        raise CorpusError(f"{display} is not an .odt file")
    check_zip(raw, display, ".odt")
    try:
        from odf import teletype
        from odf.namespaces import TEXTNS
        from odf.opendocument import load

        wanted = {(TEXTNS, "p"): False, (TEXTNS, "h"): True}  # paragraphs, and headings
        blocks = [(teletype.extractText(e), wanted[e.qname])
                  for e in _walk(load(io.BytesIO(raw)).text) if getattr(e, "qname", None) in wanted]
    except Exception as error:  # zip, XML and odfpy errors alike: the file is unusable
        raise CorpusError(f"{display} is not a readable .odt file ({type(error).__name__})") from None
    return _join_blocks(blocks)


def _walk(node):
    yield node
    for child in node.childNodes:
        yield from _walk(child)


def epub_sections(raw: bytes, display: str) -> tuple[str, tuple[tuple[int, str], ...]]:
    """An EPUB's chapters in reading order (each read as HTML), chapters separated by a blank
    line, and their headings as sections."""
    import io
    import warnings

    if not raw.startswith(b"PK"):
        raise CorpusError(f"{display} is not an .epub file")
    check_zip(raw, display, ".epub")
    try:
        import ebooklib
        from ebooklib import epub

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            book = epub.read_epub(io.BytesIO(raw), options={"ignore_ncx": True})
        chapters = []
        for item_id, _ in book.spine:
            item = book.get_item_with_id(item_id)
            if item is not None and item.get_type() == ebooklib.ITEM_DOCUMENT:
                chapters.append(html_sections(item.get_content()))
    except Exception as error:  # zip, XML and ebooklib errors alike: the file is unusable
        raise CorpusError(f"{display} is not a readable .epub file ({type(error).__name__})") from None
    parts: list[str] = []
    sections: list[tuple[int, str]] = []
    length = 0
    for chapter, headings in chapters:
        if not chapter.strip():
            continue
        if parts:
            length += 2
        sections.extend((length + offset, title) for offset, title in headings)
        parts.append(chapter)
        length += len(chapter)
    return "\n\n".join(parts), tuple(sections)


def _join_blocks(blocks) -> tuple[str, tuple[tuple[int, str], ...]]:
    """Lines from (text, is_heading) blocks, and the headings' offsets."""
    lines: list[str] = []
    sections: list[tuple[int, str]] = []
    offset = 0
    for text, heading in blocks:
        text = " ".join(text.split())
        if not text:
            continue
        if heading:
            sections.append((offset, text))
        lines.append(text)
        offset += len(text) + 1
    return "\n".join(lines), tuple(sections)


def _is_heading_style(name: str) -> bool:
    name = (name or "").lower()
    return name.startswith(("heading", "titre")) or name == "title"
