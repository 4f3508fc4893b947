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

from tests.files import lines_stream, pdf_from_streams  # noqa: E402

PIAF = ROOT.parent / "shared" / "bench-data" / "piaf" / "piaf-v1.0.json"
QUESTION = "Quel est le code du coffre de la société Zorglub ?"
NEEDLE = "Le code du coffre de la société Zorglub est 4321."
LINE_CHARS = 95
LINES_PER_PAGE = 22


def text_pdf(pages: list[list[str]]) -> bytes:
    """A PDF with one page per list of lines (Helvetica, WinAnsi encoding: French accents)."""
    return pdf_from_streams([lines_stream(lines) for lines in pages])


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
