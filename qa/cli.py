"""`qa`: index documents, ask questions, manage models, evaluate. The one place errors become exit codes."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from qa.citations import location, strip_markers
from qa.embedding import E5_NAME, USE_NAME
from qa.errors import IndexNotFoundError, InputError, QAError
from qa.settings import ANSWER_STYLES, DEFAULT_EMBEDDER, DEFAULT_EVIDENCE_EMBEDDER, DEFAULT_LLM, ENGINES, Settings
from qa.types import Answer, Preview

EXIT_ERROR = 1
EXIT_USAGE = 2
EMBEDDER_HELP = (f"the index's embedder (passages, and questions for retrieval): {DEFAULT_EMBEDDER} (default), "
                 f"{USE_NAME if DEFAULT_EMBEDDER != USE_NAME else E5_NAME}, minilm, a folder or a hub id")


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--index-dir", type=Path, help="where the index lives (default: index/, or $QA_INDEX_DIR)")
    parser.add_argument("--store", help="keep the library in PostgreSQL with pgvector instead: postgresql://... "
                                        "(or $QA_STORE)")
    parser.add_argument("--embedder", help=EMBEDDER_HELP)
    parser.add_argument("-v", "--verbose", action="store_true", help="log what happens")


LLM_HELP = (f"generator: {DEFAULT_LLM} (default) or the other packaged model (qwen2.5-coder-0.5b, "
            "qwen2.5-coder-1.5b), a .gguf file, a transformers folder, a hub id, or an OpenAI-compatible "
            "server: openai:<model>@<base-url>")
ENGINE_HELP = "how packaged models run: llama.cpp (default, fast) or transformers (reference)"
EVIDENCE_HELP = (f"the embedder that scores evidence sentences and checks off-topic questions and translations "
                 f"(its thresholds were set on {DEFAULT_EVIDENCE_EMBEDDER}): {DEFAULT_EVIDENCE_EMBEDDER} (default), "
                 "or any --embedder name; the same model as --embedder is loaded once")
STYLE_HELP = ("direct (default): the model's own short answer, checked, the best evidence shown first; "
              "extractive: quote or translate the best evidence sentences; "
              "generative: the model's verified answer from whole passages")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="qa", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("index", help="build the index over files or folders (default: the bundled article)")
    p.add_argument("paths", nargs="*", help=".txt or .md files, or folders of them")
    _common(p)

    p = sub.add_parser("docs", help="the document library: add, list or remove documents")
    docs = p.add_subparsers(dest="action", required=True)
    d = docs.add_parser("add", help="add files or folders (re-adding a changed file replaces it)")
    d.add_argument("paths", nargs="*", help="files or folders (.txt .md .pdf .html .docx)")
    d.add_argument("--bundled", action="store_true", help="add (restore) the bundled article")
    _common(d)
    d = docs.add_parser("list", help="list the documents")
    d.add_argument("--json", action="store_true", help="print a JSON list")
    _common(d)
    d = docs.add_parser("remove", help="remove documents by name, as `qa docs list` shows it")
    d.add_argument("names", nargs="+")
    _common(d)

    p = sub.add_parser("ask", help="answer a question from the indexed documents")
    p.add_argument("question")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of streaming text")
    p.add_argument("--top-k", type=int, help="passages given to the model (default 4)")
    p.add_argument("--llm", help=LLM_HELP)
    p.add_argument("--engine", choices=ENGINES, help=ENGINE_HELP)
    p.add_argument("--answer-style", choices=ANSWER_STYLES, help=STYLE_HELP)
    p.add_argument("--evidence-embedder", help=EVIDENCE_HELP)
    _common(p)

    p = sub.add_parser("translate", help="translate the indexed documents' sentences once, ahead of "
                                         "questions in the other language (French <-> English): their "
                                         "answers are then instant, and retrieval matches their words")
    p.add_argument("--to", choices=["fr", "en", "both"], default="both",
                   help="the language the questions will be asked in (default: both)")
    p.add_argument("--llm", help=LLM_HELP)
    p.add_argument("--engine", choices=ENGINES, help=ENGINE_HELP)
    _common(p)

    p = sub.add_parser("models", help="show the models, or prepare the default generator")
    p.add_argument("action", nargs="?", choices=["list", "prepare"], default="list")
    p.add_argument("--force", action="store_true", help="prepare again even if prepared")
    p.add_argument("-v", "--verbose", action="store_true")

    p = sub.add_parser("eval", help="evaluate on a test set (JSONL) or a SQuAD-format file")
    p.add_argument("--testset", type=Path, default=Path("tests/data/testset.jsonl"))
    p.add_argument("--out", type=Path, default=Path("artifacts/eval"))
    p.add_argument("--top-k", type=int)
    p.add_argument("--llm", help=LLM_HELP)
    p.add_argument("--engine", choices=ENGINES, help=ENGINE_HELP)
    p.add_argument("--answer-style", choices=ANSWER_STYLES, help=STYLE_HELP)
    p.add_argument("--evidence-embedder", help=EVIDENCE_HELP)
    p.add_argument("--limit", type=int, help="ask at most N questions")
    p.add_argument("--retrieval-only", action="store_true", help="skip answers: retrieval metrics only")
    p.add_argument("--seed", type=int, default=0, help="sampling seed for SQuAD-format files")
    p.add_argument("--bench-dir", type=Path, help="index folder for a SQuAD-format file's contexts")
    p.add_argument("--part", choices=("all", "tuning", "held-out"), default="all",
                   help="SQuAD-format file: ask only questions of the tuning or the held-out part of its "
                        "split by paragraph (weights were chosen on tuning; the corpus stays the whole file)")
    p.add_argument("--translations", choices=("prepared", "none"), default="prepared",
                   help="JSONL set: answer with every sentence translated ahead, as after `qa translate` "
                        "(default), or with none, as if each question were asked first")
    _common(p)
    return parser


def _quiet_libraries(verbose: bool) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if not verbose:
        import warnings

        warnings.filterwarnings("ignore")
        for name in ("transformers", "sentence_transformers", "huggingface_hub", "accelerate", "bm25s"):
            logging.getLogger(name).setLevel(logging.ERROR)
        try:
            from transformers.utils import logging as hf_logging

            hf_logging.set_verbosity_error()
            hf_logging.disable_progress_bar()
        except ImportError:
            pass


def _settings(args: argparse.Namespace) -> Settings:
    return Settings.from_env(index_dir=getattr(args, "index_dir", None), store=getattr(args, "store", None),
                             embedder=getattr(args, "embedder", None),
                             evidence_embedder=getattr(args, "evidence_embedder", None),
                             llm=getattr(args, "llm", None), top_k=getattr(args, "top_k", None),
                             answer_style=getattr(args, "answer_style", None),
                             engine=getattr(args, "engine", None))


def _highlight(text: str, start: int, end: int, tty: bool) -> str:
    on, off = ("\033[1;4m", "\033[0m") if tty else ("[[", "]]")
    return f"{text[:start]}{on}{text[start:end]}{off}{text[end:]}"


def render_sources(answer: Answer, tty: bool) -> str:
    lines = []
    if answer.citations:
        lines.append("\nSources:")
        for c in answer.citations:
            start, end = c.quote_start - c.chunk.start, c.quote_end - c.chunk.start
            lines.append(f"[{c.n}] {c.chunk.source} ({location(c.chunk, c.quote_start, answer.language)})")
            lines.append("    " + _highlight(c.chunk.text, start, end, tty).replace("\n", "\n    "))
    elif answer.passages:
        closest = "Closest passages" if answer.language == "en" else "Passages les plus proches"
        lines.append(f"\n{closest}:")
        for p in answer.passages[:2]:
            where = location(p.chunk, p.chunk.start, answer.language)
            text = p.chunk.text[:240] + ("…" if len(p.chunk.text) > 240 else "")
            lines.append(f"[{p.n}] {p.chunk.source} ({where}): {text}")
    return "\n".join(lines)


def render_preview(preview: Preview, tty: bool) -> str:
    """The best evidence, printed at once while the model writes the answer."""
    label = "Meilleur passage" if preview.language == "fr" else "Best evidence"
    opening, closing = ("«\u00a0", "\u00a0»") if preview.language == "fr" else ("“", "”")
    dim, off = ("\033[2m", "\033[0m") if tty else ("", "")
    return "\n".join(f"{dim}{label} [{c.n}] {c.chunk.source}: {opening}{' '.join(c.quote.split())}{closing}{off}"
                     for c in preview.citations) + "\n"


def cmd_ask(args: argparse.Namespace) -> int:
    from qa.pipeline import Pipeline, validate_question

    settings = _settings(args)
    validate_question(args.question, settings.max_question_chars)  # fail before loading models
    pipeline = Pipeline(settings, progress=sys.stderr.isatty())
    answer = None
    tty = sys.stdout.isatty()
    streamed = []
    for event in pipeline.stream(args.question):
        if isinstance(event, Answer):
            answer = event
        elif isinstance(event, Preview):
            if not args.json:
                print(render_preview(event, tty), flush=True)
        elif not args.json:
            streamed.append(event)
            print(event, end="", flush=True)
    if args.json:
        print(json.dumps(answer.to_json(), ensure_ascii=False))
        return 0
    if streamed:
        print()
    shown = "".join(streamed).strip()
    if answer.text.strip() != shown:  # generative style: verification changed the draft
        fr = answer.language == "fr"
        if strip_markers(answer.text) == strip_markers(shown):  # only the numbers moved
            label = "Citations vérifiées" if fr else "Checked citations"
            print(f"\n{label}: {' '.join(f'[{c.n}]' for c in answer.citations)}")
        else:
            label = "Vérifié sur les sources" if fr else "Checked against the sources"
            print(f"\n{label}: {answer.text}")
    print(render_sources(answer, tty))
    return 0


def cmd_index(args: argparse.Namespace) -> int:
    from qa.embedding import make_embedder
    from qa.library import index_sources
    from qa.loading import BUNDLED

    settings = _settings(args)
    embedder = make_embedder(settings.embedder, threads=settings.threads)
    index = index_sources(args.paths or [BUNDLED], embedder, settings, progress=sys.stderr.isatty())
    docs = len({c.doc_id for c in index.chunks})
    print(f"Indexed {docs} document(s) as {len(index.chunks)} passages in {_where(settings)} "
          f"(embedder {index.manifest.embedder}, {index.manifest.dimension} dimensions)")
    return 0


def cmd_docs(args: argparse.Namespace) -> int:
    from qa import library

    settings = _settings(args)
    if args.action == "list":
        from qa.stores import make_store

        try:
            entries = library.entries(make_store(settings).read_manifest())
        except IndexNotFoundError:
            entries = []
        if args.json:
            print(json.dumps(entries, ensure_ascii=False, indent=1))
        else:
            print(format_library(entries, _where(settings)))
        return 0
    if args.action == "remove":
        index = library.remove_names(args.names, settings)
        print(f"Removed {', '.join(args.names)}; {len(index.manifest.documents)} document(s) left "
              f"in {_where(settings)}")
        return 0
    from qa.embedding import make_embedder
    from qa.loading import BUNDLED

    paths = list(args.paths) + ([BUNDLED] if args.bundled else [])
    if not paths:
        raise InputError("name files or folders to add, or --bundled for the article")
    embedder = make_embedder(settings.embedder, threads=settings.threads)
    from tqdm import tqdm

    tty = sys.stderr.isatty()
    with tqdm(desc="Embedding passages", unit="passage", disable=not tty, file=sys.stderr) as bar:

        def embedded(done: int, total: int) -> None:  # passages are counted once read
            bar.total = total
            bar.update(done - bar.n)

        change = library.add_paths(paths, embedder, settings, progress=tty, on_batch=embedded)
    for label, names in (("Added", change.added), ("Replaced", change.replaced),
                         ("Already there", change.skipped)):
        if names:
            print(f"{label}: {', '.join(names)}")
    print(f"{len(change.index.manifest.documents)} document(s), {len(change.index.chunks)} passages "
          f"in {_where(settings)}")
    return 0


def _where(settings: Settings) -> str:
    """Where the library is, for messages: `index/`, or the PostgreSQL URL without its password."""
    if settings.store:
        from qa.pgstore import _shown

        return _shown(settings.store)
    return f"{settings.index_dir}/"


def format_library(entries: list[dict], where: str) -> str:
    """`qa docs list` as a table."""
    if not entries:
        return f"No documents in {where}: add some with `qa docs add PATH...`"
    rows = [("name", "type", "pages", "passages", "added", "size")]
    for e in entries:
        rows.append((e["name"], e["type"], str(e["pages"] or "–"), str(e["passages"]),
                     e["added"][:16].replace("T", " "), _size(e["size"])))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
                     for row in rows)


def _size(size: int) -> str:
    for unit in ("B", "kB", "MB"):
        if size < 1000 or unit == "MB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size} MB"


def cmd_translate(args: argparse.Namespace) -> int:
    from qa.pipeline import Pipeline

    pipeline = Pipeline(_settings(args), progress=sys.stderr.isatty())
    targets = ("fr", "en") if args.to == "both" else (args.to,)
    new, known = pipeline.prepare_translations(targets, progress=sys.stderr.isatty())
    print(f"Translated {new} sentence(s) now, {known} already remembered, "
          f"in {pipeline.translations.path or 'memory'}")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from qa.models import PACKAGED, describe, prepare_bf16, prepare_gguf

    settings = Settings.from_env()
    if args.action == "prepare":
        model = PACKAGED.get(settings.llm)
        if model is None:
            print(f"{settings.llm} is not a packaged model: nothing to prepare")
            return 0
        if settings.engine == "llama.cpp":
            path = prepare_gguf(settings.cache_dir, model, progress=True, force=args.force)
        else:
            path = prepare_bf16(settings.cache_dir, model, progress=True, force=args.force)
        print(f"Generator {model.name} ready for {settings.engine} in {path}")
        return 0
    print(f"Model cache: {settings.cache_dir} (set QA_CACHE_DIR to move it)")
    for row in describe(settings.cache_dir):
        print(f"- {row['role']}: {row['name']} — {row['model']}\n    {row['state']}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from qa.measure import evaluate
    from qa.report import format_table

    settings = _settings(args)
    report = evaluate(args.testset, args.out, settings, limit=args.limit, answers=not args.retrieval_only,
                      progress=True, seed=args.seed, bench_dir=args.bench_dir,
                      translations=args.translations, part=args.part)
    print(format_table(report))
    print(f"\nReport: {args.out}/report.md (and report.json, plots)")
    return 0


COMMANDS = {"ask": cmd_ask, "index": cmd_index, "docs": cmd_docs, "translate": cmd_translate, "models": cmd_models,
            "eval": cmd_eval}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _quiet_libraries(getattr(args, "verbose", False))
    try:
        return COMMANDS[args.command](args)
    except InputError as error:
        print(f"qa: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except QAError as error:
        print(f"qa: error: {error}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("qa: interrupted", file=sys.stderr)
        return 130
