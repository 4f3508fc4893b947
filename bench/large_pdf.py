"""Adding a large PDF to the library: pages read per second, passages embedded per second, and
the time to the first answer after adding it.

    .venv/bin/python bench/large_pdf.py [--pages 300] [--embedder NAME] [--json PATH]

The PDF is written here from PIAF's French paragraphs (../shared/bench-data/piaf, read in
place), about 2,000 characters a page, with the answer to the timed question on the last page.
Everything runs in a temporary index folder; the project's index is not touched.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PIAF = ROOT.parent / "shared" / "bench-data" / "piaf" / "piaf-v1.0.json"
QUESTION = "Quel est le code du coffre de la société Zorglub ?"
NEEDLE = "Le code du coffre de la société Zorglub est 4321."
LINE_CHARS = 95
LINES_PER_PAGE = 22


def _pdf_string(text: str) -> bytes:
    """A PDF literal string in WinAnsi (Latin-1 here) with its special characters escaped."""
    raw = text.encode("cp1252", errors="replace")
    return raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)")


def text_pdf(pages: list[list[str]]) -> bytes:
    """A PDF with one page per list of lines (Helvetica, WinAnsi encoding: French accents)."""
    n = len(pages)
    kids = " ".join(f"{3 + 2 * i} 0 R" for i in range(n))
    font = 3 + 2 * n
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>",
               f"<< /Type /Pages /Kids [{kids}] /Count {n} >>".encode()]
    for i, lines in enumerate(pages):
        body = b"BT /F1 10 Tf 12 TL 50 760 Td " + b" ".join(b"(" + _pdf_string(line) + b") Tj T*"
                                                         for line in lines) + b" ET"
        objects.append(f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {4 + 2 * i} 0 R "
                       f"/Resources << /Font << /F1 {font} 0 R >> >> >>".encode())
        objects.append(b"<< /Length %d >>\nstream\n" % len(body) + body + b"\nendstream")
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>")
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, obj in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + obj + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def wrap(text: str, width: int = LINE_CHARS) -> list[str]:
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return lines + ([line] if line else [])


def piaf_pages(count: int) -> list[list[str]]:
    """`count` pages of PIAF paragraphs, the needle sentence at the end of the last one."""
    data = json.loads(PIAF.read_text(encoding="utf-8"))
    lines = [line for article in data["data"] for paragraph in article["paragraphs"]
             for line in wrap(paragraph["context"]) + [""]]
    pages = [lines[i * LINES_PER_PAGE:(i + 1) * LINES_PER_PAGE] for i in range(count)]
    pages[-1] = pages[-1][:-2] + [NEEDLE]
    return pages


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=300)
    parser.add_argument("--embedder", help="embedder (default: the project's default)")
    parser.add_argument("--json", type=Path, help="write the figures here too")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from qa import library
    from qa.documents import pdf_pages, read_upload
    from qa.embedding import make_embedder
    from qa.pipeline import Pipeline
    from qa.settings import Settings

    with tempfile.TemporaryDirectory() as tmp:
        pdf = Path(tmp) / "rapport-long.pdf"
        pdf.write_bytes(text_pdf(piaf_pages(args.pages)))
        settings = Settings.from_env(index_dir=Path(tmp) / "index", embedder=args.embedder)
        embedder = make_embedder(settings.embedder, threads=settings.threads)
        library.index_sources([], embedder, settings)  # the default library: the article

        started = time.perf_counter()
        text, pages = pdf_pages(pdf.read_bytes(), pdf.name)
        read_s = time.perf_counter() - started
        batches: list[float] = []
        started = time.perf_counter()
        change = library.add_paths([str(pdf)], embedder, settings,
                                   on_batch=lambda done, total: batches.append(time.perf_counter()))
        add_s = time.perf_counter() - started
        passages = sum(1 for c in change.index.chunks if c.source == pdf.name)
        embed_s = batches[-1] - batches[0] if len(batches) > 1 else float("nan")
        embedded = passages * (len(batches) - 1) / max(1, len(batches))

        started = time.perf_counter()
        pipeline = Pipeline(settings, embedder=embedder).load()
        load_s = time.perf_counter() - started
        started = time.perf_counter()
        answer = pipeline.ask(QUESTION)
        ask_s = time.perf_counter() - started
        cited = [(c.chunk.source, c.page) for c in answer.citations]
        assert read_upload(pdf).text == text

    figures = {
        "cpu": _cpu(), "pages": args.pages, "characters": len(text), "passages": passages,
        "embedder": settings.embedder, "threads": settings.threads,
        "read_s": round(read_s, 2), "pages_per_s": round(args.pages / read_s, 1),
        "add_s": round(add_s, 2), "passages_per_s": round(embedded / embed_s, 1) if embed_s == embed_s else None,
        "load_s": round(load_s, 2), "first_answer_s": round(ask_s, 2),
        "added_to_answer_s": round(add_s + load_s + ask_s, 2),
        "answer": answer.text, "cited": cited, "expected_page": args.pages,
        "batch_median_s": round(statistics.median(b - a for a, b in zip(batches, batches[1:], strict=False)), 3)
        if len(batches) > 2 else None,
    }
    print(json.dumps(figures, ensure_ascii=False, indent=1))
    if args.json:
        args.json.write_text(json.dumps(figures, ensure_ascii=False, indent=1), encoding="utf-8")
    return 0


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


if __name__ == "__main__":
    raise SystemExit(main())
