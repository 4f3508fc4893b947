"""`qa`: index documents, ask questions, manage models, evaluate. The one place errors become exit codes."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from qa.citations import strip_markers
from qa.errors import InputError, QAError
from qa.settings import ANSWER_STYLES, DEFAULT_LLM, ENGINES, Settings
from qa.types import Answer, Preview

EXIT_ERROR = 1
EXIT_USAGE = 2


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--index-dir", type=Path, help="where the index lives (default: index/, or $QA_INDEX_DIR)")
    parser.add_argument("--embedder", help="embedder: use-multilingual (default), minilm, a folder or a hub id")
    parser.add_argument("-v", "--verbose", action="store_true", help="log what happens")


LLM_HELP = (f"generator: {DEFAULT_LLM} (default) or the other packaged model (qwen2.5-coder-0.5b, "
            "qwen2.5-coder-1.5b), a .gguf file, a transformers folder or a hub id")
ENGINE_HELP = "how packaged models run: llama.cpp (default, fast) or transformers (reference)"
STYLE_HELP = ("direct (default): the model's own short answer, checked, the best evidence shown first; "
              "extractive: quote or translate the best evidence sentences; "
              "generative: the model's verified answer from whole passages")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="qa", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("index", help="build the index over files or folders (default: the bundled article)")
    p.add_argument("paths", nargs="*", help=".txt or .md files, or folders of them")
    _common(p)

    p = sub.add_parser("ask", help="answer a question from the indexed documents")
    p.add_argument("question")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of streaming text")
    p.add_argument("--top-k", type=int, help="passages given to the model (default 4)")
    p.add_argument("--llm", help=LLM_HELP)
    p.add_argument("--engine", choices=ENGINES, help=ENGINE_HELP)
    p.add_argument("--answer-style", choices=ANSWER_STYLES, help=STYLE_HELP)
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
    return Settings.from_env(index_dir=getattr(args, "index_dir", None),
                             embedder=getattr(args, "embedder", None),
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
            where = "characters" if answer.language == "en" else "caractères"
            lines.append(f"[{c.n}] {c.chunk.source} ({where} {c.chunk.start}-{c.chunk.end})")
            lines.append("    " + _highlight(c.chunk.text, start, end, tty).replace("\n", "\n    "))
    elif answer.passages:
        closest = "Closest passages" if answer.language == "en" else "Passages les plus proches"
        lines.append(f"\n{closest}:")
        for p in answer.passages[:2]:
            lines.append(f"[{p.n}] {p.chunk.source}: {p.chunk.text[:240]}{'…' if len(p.chunk.text) > 240 else ''}")
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
    from qa.loading import BUNDLED
    from qa.pipeline import index_sources

    settings = _settings(args)
    embedder = make_embedder(settings.embedder, threads=settings.threads)
    index = index_sources(args.paths or [BUNDLED], embedder, settings, progress=sys.stderr.isatty())
    docs = len({c.doc_id for c in index.chunks})
    print(f"Indexed {docs} document(s) as {len(index.chunks)} passages in {settings.index_dir}/ "
          f"(embedder {index.manifest.embedder}, {index.manifest.dimension} dimensions)")
    return 0


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
    from qa.evaluation import format_table
    from qa.measure import evaluate

    settings = _settings(args)
    report = evaluate(args.testset, args.out, settings, limit=args.limit, answers=not args.retrieval_only,
                      progress=True, seed=args.seed, bench_dir=args.bench_dir,
                      translations=args.translations, part=args.part)
    print(format_table(report))
    print(f"\nReport: {args.out}/report.md (and report.json, plots)")
    return 0


COMMANDS = {"ask": cmd_ask, "index": cmd_index, "translate": cmd_translate, "models": cmd_models,
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
