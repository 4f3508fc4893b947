"""Small real files of each supported type, written by the tests that need them."""

from __future__ import annotations

from pathlib import Path


def pdf_string(text: str) -> bytes:
    """A PDF literal string in WinAnsi (Latin-1 here) with its special characters escaped."""
    raw = text.encode("cp1252", errors="replace")
    return raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)")


def pdf_from_streams(streams: list[bytes]) -> bytes:
    """A PDF with one page per content stream (Helvetica as /F1, WinAnsi encoding), with a
    correct cross-reference table."""
    n = len(streams)
    kids = " ".join(f"{3 + 2 * i} 0 R" for i in range(n))
    font = 3 + 2 * n
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", f"<< /Type /Pages /Kids [{kids}] /Count {n} >>".encode()]
    for i, body in enumerate(streams):
        objects.append(f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {4 + 2 * i} 0 R "
                       f"/Resources << /Font << /F1 {font} 0 R >> >> >>".encode())
        objects.append(b"<< /Length %d >>\nstream\n" % len(body) + body + b"\nendstream")
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>")
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def lines_stream(lines: list[str], size: int = 10, top: int = 760, style: bytes = b"") -> bytes:
    """A content stream drawing `lines` from the top of the page down."""
    shown = b" ".join(b"(" + pdf_string(line) + b") Tj T*" for line in lines)
    return b"BT " + style + b" /F1 %d Tf %d TL 50 %d Td " % (size, size + 2, top) + shown + b" ET"


def minimal_pdf(*pages: str) -> bytes:
    """A PDF with one page per argument whose text layer is that text."""
    return pdf_from_streams([lines_stream([text], size=12) for text in pages])


def minimal_docx(path: Path, paragraphs: list[str], headings: dict[int, str] | None = None) -> Path:
    """A Word file: `headings[i]` (a "Heading 1") goes before paragraph i; then a 2-cell table."""
    import docx

    document = docx.Document()
    for i, p in enumerate(paragraphs):
        if headings and i in headings:
            document.add_heading(headings[i], level=1)
        document.add_paragraph(p)
    table = document.add_table(rows=1, cols=2)
    table.rows[0].cells[0].text, table.rows[0].cells[1].text = "Zorglub", "4321"
    document.save(path)
    return path


def minimal_odt(path: Path, paragraphs: list[str], headings: dict[int, str] | None = None) -> Path:
    """An OpenDocument text: `headings[i]` (a level-1 heading) goes before paragraph i."""
    from odf.opendocument import OpenDocumentText
    from odf.text import H, P

    document = OpenDocumentText()
    for i, p in enumerate(paragraphs):
        if headings and i in headings:
            document.text.addElement(H(outlinelevel=1, text=headings[i]))
        document.text.addElement(P(text=p))
    document.save(str(path))
    return path


def minimal_epub(path: Path, chapters: list[tuple[str, str]]) -> Path:
    """An EPUB with one chapter per (title, text): the title as <h1>, the text as a paragraph."""
    from ebooklib import epub

    book = epub.EpubBook()
    book.set_identifier("qa-test")
    book.set_title("Test")
    book.set_language("fr")
    items = []
    for n, (title, text) in enumerate(chapters, start=1):
        item = epub.EpubHtml(title=title, file_name=f"ch{n}.xhtml", lang="fr")
        item.content = f"<html><body><h1>{title}</h1><p>{text}</p></body></html>"
        book.add_item(item)
        items.append(item)
    book.toc = items
    book.spine = items
    book.add_item(epub.EpubNcx())
    book.add_item(epub.EpubNav())
    epub.write_epub(str(path), book)
    return path


def scanned_pdf(path: Path, lines: list[str]) -> Path:
    """A one-page PDF holding only an image of `lines` (no text layer), as a scanner makes."""
    from PIL import Image, ImageDraw, ImageFont

    image = Image.new("L", (1654, 600), 255)
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=40)
    for n, line in enumerate(lines):
        draw.text((80, 80 + 70 * n), line, fill=0, font=font)
    image.save(path, "PDF", resolution=200)
    return path
