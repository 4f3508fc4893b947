"""Latency and memory of the default offline stack, as a person waiting for an answer sees them.

    .venv/bin/python bench/latency.py [--runs 3] [--prepare] [--styles extractive,generative,prepared]
                                      [--out artifacts/bench/latency.json]

Measures, in one process on this machine: model preparation (with --prepare: GGUF assembly and
bf16 conversion into a temporary cache), load time (embedder, index, generator), and for a
fixed list of French and English questions, repeated --runs times: retrieval, time to first
token, decode speed (tokens/s after the first), total answer time, for each answer style in turn
on the same loaded models (so the styles compare within one sitting). Reports medians (and p90)
over all answers per style, and the process's peak RSS. No thresholds: a benchmark, not a test.

"First token" is the first piece a person sees: the draft's first token in the generative style;
in the extractive style, the quote (or the translation's first token) after the hidden draft
has been checked. Tokens count what is shown; decode speed is the generative style's.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

QUESTIONS = [
    ("fr", "Combien de modèles dérivés ont été construits sur Qwen ?"),
    ("fr", "Quelles entreprises chinoises adoptent des approches open source ?"),
    ("fr", "Quel salaire exact DeepSeek propose-t-il ?"),
    ("fr", "Qui a créé la plateforme LMArena ?"),
    ("en", "When was the US AI Action Plan published?"),
    ("en", "Which Chinese firms developed Qwen and Hunyuan?"),
    ("en", "What does China's 14th five-year plan emphasise?"),
    ("en", "Who founded Moonshot AI?"),
]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--prepare", action="store_true", help="also time a fresh model preparation")
    parser.add_argument("--styles", default="extractive,generative",
                        help="answer styles to time, in turn; 'prepared' is the extractive style "
                             "after `qa translate` (translations prepared once, not timed per answer)")
    parser.add_argument("--out", type=Path, default=Path("artifacts/bench/latency.json"))
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()

    from qa.models import prepare_default_llm
    from qa.pipeline import Pipeline, TranslationMemory
    from qa.settings import Settings
    from qa.types import Answer

    report: dict = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
                    "runs": args.runs, "questions": len(QUESTIONS)}
    if args.prepare:  # in a child process, so its peak memory is reported apart
        import subprocess

        with tempfile.TemporaryDirectory() as cache:
            started = time.perf_counter()
            subprocess.run([sys.executable, "-c", "import sys; from pathlib import Path; "
                            "from qa.models import prepare_default_llm; "
                            "prepare_default_llm(Path(sys.argv[1]), progress=False)", cache],
                           check=True, stdout=subprocess.DEVNULL)
            report["prepare_s"] = round(time.perf_counter() - started, 1)
        report["prepare_peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)
        print(f"prepare: {report['prepare_s']} s, peak RSS {report['prepare_peak_rss_mb']} MB", file=sys.stderr)

    with tempfile.TemporaryDirectory() as index_dir:
        settings = Settings.from_env(index_dir=Path(index_dir))
        prepare_default_llm(settings.cache_dir, progress=False)  # not timed: done once per machine
        started = time.perf_counter()
        pipeline = Pipeline(settings).load()
        report["load_s"] = round(time.perf_counter() - started, 2)  # includes building the index
        tokenizer = pipeline.generator._tokenizer
        rows = []
        styles = [style.strip() for style in args.styles.split(",") if style.strip()]
        base = pipeline
        prepared = TranslationMemory(None)
        if "prepared" in styles:
            started = time.perf_counter()
            report["translated_sentences"] = replace(base, translations=prepared).prepare_translations()[0]
            report["prepare_translations_s"] = round(time.perf_counter() - started, 1)
        for run in range(args.runs):
            for language, question in QUESTIONS:
                for style in styles:
                    # otherwise a fresh, in-memory translation memory: every answer is timed as if asked first
                    memory = prepared if style == "prepared" else TranslationMemory(None)
                    answer_style = "extractive" if style == "prepared" else style
                    pipeline = replace(base.with_settings(settings.with_(answer_style=answer_style)),
                                       translations=memory)
                    start = time.perf_counter()
                    stamps = []
                    answer = None
                    for event in pipeline.stream(question):
                        if isinstance(event, Answer):
                            answer = event
                        else:
                            stamps.append((time.perf_counter(), event))
                    generated = "".join(piece for _, piece in stamps[1:])  # [0] is a fixed lead
                    tokens = len(tokenizer(generated)["input_ids"])
                    first = answer.timings["first_token_s"]
                    decode_s = stamps[-1][0] - start - first if len(stamps) > 2 else float("nan")
                    if answer_style == "extractive":  # quotes appear whole: tokens/s would mean nothing
                        decode_s = float("nan")
                    rows.append({
                        "run": run, "style": style, "language": language, "question": question,
                        "retrieval_s": answer.timings["retrieval_s"], "first_token_s": first,
                        "total_s": answer.timings["total_s"], "tokens": tokens,
                        "decode_tok_s": (tokens - 1) / decode_s if decode_s and decode_s > 0 else float("nan"),
                        "abstained": answer.abstained,
                    })
                    print(f"run {run} {style} {language} total {answer.timings['total_s']:.2f} s first "
                          f"{first:.2f} s tokens {tokens} | {answer.text[:70]}", file=sys.stderr)

    def summary(key: str, style: str) -> dict:
        values = [r[key] for r in rows if r["style"] == style and r[key] == r[key]]
        if not values:
            return {"median": float("nan"), "p90": float("nan")}
        return {"median": round(statistics.median(values), 3), "p90": round(percentile(values, 0.9), 3)}

    keys = ("retrieval_s", "first_token_s", "total_s", "decode_tok_s", "tokens")
    report["styles"] = {style: {key: summary(key, style) for key in keys} for style in styles}
    report["total_s_median_by_language"] = {
        style: {lang: round(statistics.median(r["total_s"] for r in rows if r["style"] == style
                                              and r["language"] == lang), 3)
                for lang in sorted({r["language"] for r in rows})} for style in styles}
    report["peak_rss_mb"] = round(peak_rss_mb())
    report["rows"] = rows
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, ensure_ascii=False))
    print("\n| measure | " + " | ".join(f"{style} median | p90" for style in styles) + " |")
    print("|---|" + "---|---|" * len(styles))
    for key, label in [("retrieval_s", "retrieval (s)"), ("first_token_s", "first piece shown (s)"),
                       ("decode_tok_s", "decode (tokens/s)"), ("tokens", "tokens shown per answer"),
                       ("total_s", "total answer (s)")]:
        cells = " | ".join(f"{report['styles'][s][key]['median']} | {report['styles'][s][key]['p90']}"
                           for s in styles)
        print(f"| {label} | {cells} |")
    for style, medians in report["total_s_median_by_language"].items():
        print(f"{style}: median answer " + ", ".join(f"{lang} {m} s" for lang, m in medians.items()))
    print(f"\nload {report['load_s']} s (embedder, index build, generator); peak RSS {report['peak_rss_mb']} MB"
          + (f"; preparation {report['prepare_s']} s" if "prepare_s" in report else "")
          + (f"; {report['translated_sentences']} sentences translated ahead in {report['prepare_translations_s']} s"
             if "prepare_translations_s" in report else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
