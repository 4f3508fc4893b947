"""Latency and memory of the default offline stack, as a person waiting for an answer sees them.

    .venv/bin/python bench/latency.py [--runs 3] [--prepare] [--out artifacts/bench/latency.json]

Measures, in one process on this machine: model preparation (with --prepare: GGUF assembly and
bf16 conversion into a temporary cache), load time (embedder, index, generator), and for a
fixed list of French and English questions, repeated --runs times: retrieval, time to first
token, decode speed (tokens/s after the first), total answer time. Reports medians (and p90)
over all answers, and the process's peak RSS. No thresholds: a benchmark, not a test.
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
    parser.add_argument("--out", type=Path, default=Path("artifacts/bench/latency.json"))
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()

    from qa.models import prepare_default_llm
    from qa.pipeline import Pipeline
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
        for run in range(args.runs):
            for language, question in QUESTIONS:
                start = time.perf_counter()
                stamps = []
                answer = None
                for event in pipeline.stream(question):
                    if isinstance(event, Answer):
                        answer = event
                    else:
                        stamps.append((time.perf_counter(), event))
                generated = "".join(piece for _, piece in stamps[1:])  # [0] is the fixed prefix
                tokens = len(tokenizer(generated)["input_ids"])
                first = answer.timings["first_token_s"]
                decode_s = stamps[-1][0] - start - first if len(stamps) > 2 else float("nan")
                rows.append({
                    "run": run, "language": language, "question": question,
                    "retrieval_s": answer.timings["retrieval_s"], "first_token_s": first,
                    "total_s": answer.timings["total_s"], "tokens": tokens,
                    "decode_tok_s": (tokens - 1) / decode_s if decode_s and decode_s > 0 else float("nan"),
                    "abstained": answer.abstained,
                })
                print(f"run {run} {language} total {answer.timings['total_s']:.2f} s first "
                      f"{first:.2f} s tokens {tokens} | {answer.text[:70]}", file=sys.stderr)

    def summary(key: str) -> dict:
        values = [r[key] for r in rows if r[key] == r[key]]
        return {"median": round(statistics.median(values), 3), "p90": round(percentile(values, 0.9), 3)}

    report.update({key: summary(key) for key in ("retrieval_s", "first_token_s", "total_s", "decode_tok_s", "tokens")})
    report["peak_rss_mb"] = round(peak_rss_mb())
    report["rows"] = rows
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, ensure_ascii=False))
    print("\n| measure | median | p90 |\n|---|---|---|")
    for key, label in [("retrieval_s", "retrieval (s)"), ("first_token_s", "first token (s)"),
                       ("decode_tok_s", "decode (tokens/s)"), ("tokens", "tokens per answer"),
                       ("total_s", "total answer (s)")]:
        print(f"| {label} | {report[key]['median']} | {report[key]['p90']} |")
    print(f"\nload {report['load_s']} s (embedder, index build, generator); peak RSS {report['peak_rss_mb']} MB"
          + (f"; preparation {report['prepare_s']} s" if "prepare_s" in report else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
