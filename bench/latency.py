"""Latency and memory of the answer path, as a person waiting for an answer sees them, next to
llama.cpp run the way a user would otherwise run it.

    .venv/bin/python bench/latency.py --quick --json artifacts/bench/latency.json   # < 10 minutes
    .venv/bin/python bench/latency.py [--runs 2] [--json PATH]                       # the docs' table
    .venv/bin/python bench/latency.py --second-read --json artifacts/bench/latency-second.json

--quick measures two stacks on the same questions in one run:
- "default": the project's default stack end to end (retrieval, evidence, the reader through the
  default engine, the check), in this process;
- "peer": llama-cpp-python with its default settings (but a context large enough for the prompts)
  reading the same GGUF and the very prompts the default stack sent, in a child process (its own
  peak memory), through `create_chat_completion`, as a user of llama.cpp would.
--second-read measures the default stack with and without the second read (qa.pipeline) on
questions whose reader answer falls back to the evidence, where it runs.
Without --quick it also measures each packaged model (0.5B, 1.5B) with each engine (llama.cpp,
transformers) in the direct style, and the peer with both cores.

Each stack reports medians over the questions (the first question of each stack is a warm-up and
is not counted): `answer_median_s` (question to checked answer; the peer: prompt to last token),
`first_content_median_s` (the first thing shown: the best evidence, or the peer's first token),
`first_token_median_s` (the model's first token), `prefill_tokens_per_s` (prompt tokens read per
second, those not already in the KV cache), `decode_tokens_per_s` (after the first token) and
`peak_rss_gb`. No thresholds: a benchmark, not a test. Figures drift about 20% between sittings
on these machines; compare stacks within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

QUESTIONS = [
    ("fr", "Combien de modèles dérivés ont été construits sur Qwen ?"),
    ("en", "Why is China pushing open-source AI?"),
    ("fr", "Quelles entreprises chinoises adoptent des approches open source ?"),
    ("en", "When was the US AI Action Plan published?"),
    ("fr", "Quel salaire exact DeepSeek propose-t-il ?"),
    ("en", "Which Chinese firms developed Qwen and Hunyuan?"),
    ("fr", "Pourquoi la Chine mise-t-elle sur l'IA open source ?"),
    ("en", "Who is the CEO of Alibaba?"),
    ("en", "What does China's 14th five-year plan emphasise?"),
]
# Questions the reader's answer to fails its check or finds nothing in, over strong evidence: the
# second read answers them (the project test set's fr-010, fr-023, fr-034, fr-037, fr-008, en-007).
SECOND_READ_QUESTIONS = [
    ("fr", "Combien de modèles dérivés ont été construits sur Qwen ?"),  # a warm-up, not counted
    ("fr", "c koi le nom du modele d'alibaba ?"),
    ("fr", "Pourquoi la Chine s'est-elle tournée vers l'IA open source ?"),
    ("fr", "c quelle boite qui a bloqué l'acces des devs chinois a GPT ?"),
    ("fr", "Comment s'appelle le modèle d'IA open source de Tencent ?"),
    ("fr", "Quels sont les trois facteurs qui motivent l'adoption de l'open source par la Chine selon "
           "l'introduction ?"),
    ("en", "On which platform's leaderboards do Chinese open-source models reach the top positions?"),
]
KEYS = ("answer_median_s", "first_content_median_s", "first_token_median_s", "prefill_tokens_per_s",
        "decode_tokens_per_s", "peak_rss_gb")


def cpu() -> dict:
    """The CPU figures were measured on: model name and the instruction sets that matter here."""
    info = {"model": platform.processor() or "?", "flags": []}
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return info
    for line in text.splitlines():
        if line.startswith("model name"):
            info["model"] = line.split(":", 1)[1].strip()
        if line.startswith("flags"):
            flags = line.split(":", 1)[1].split()
            info["flags"] = sorted(f for f in flags if f.startswith(("avx512", "amx")) or f in ("avx2", "avx_vnni"))
            break
    info["cores"] = os.cpu_count()
    return info


def peak_rss() -> int:
    """This process's peak resident memory in kB: VmHWM, which an exec resets. Not `ru_maxrss`:
    Linux carries the parent's peak into a child across fork and exec, so every child stack
    reported the parent's 2.13 GB before this (docs/performance.md)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # not Linux: the nearest measure


def median(values: list[float]) -> float:
    values = [v for v in values if v == v]
    return round(statistics.median(values), 3) if values else float("nan")


class Timed:
    """A Generator that notes when each call started and gave its first piece, and the
    engine's prefill/decode figures when it has them (`LlamaCppGenerator.last`)."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.name = inner.name
        self.calls: list[dict] = []

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def stream(self, messages, max_new_tokens, prefix=""):
        call = {"messages": messages, "max_new_tokens": max_new_tokens, "start": time.perf_counter()}
        self.calls.append(call)
        pieces = 0
        for piece in self.inner.stream(messages, max_new_tokens, prefix=prefix):
            call.setdefault("first", time.perf_counter())
            pieces += 1
            yield piece
        call["end"] = time.perf_counter()
        call["pieces"] = pieces
        call.update(getattr(self.inner, "last", {}) or {})


def run_stack(settings, questions, label: str) -> tuple[dict, list]:
    """Answer `questions` with `settings` in this process; the stack's figures and the reader's prompts."""
    from qa.generation import make_generator
    from qa.pipeline import QUOTE_LEAD, Pipeline
    from qa.reader import SECOND_SYSTEM
    from qa.types import Answer, Preview

    generator = Timed(make_generator(settings.llm, settings.cache_dir, threads=settings.threads,
                                     engine=settings.engine, progress=False))
    started = time.perf_counter()
    pipeline = Pipeline(settings, generator=generator).load()
    load_s = time.perf_counter() - started
    rows, prompts = [], []
    for i, (language, question) in enumerate(questions):
        generator.calls.clear()
        start = time.perf_counter()
        first_content = None
        answer = None
        for event in pipeline.stream(question):
            if isinstance(event, Answer):
                answer = event
            elif first_content is None and (isinstance(event, Preview) or event.strip()):
                first_content = time.perf_counter() - start
        calls = generator.calls
        reader = calls[0] if calls else {}  # the reader's answer; a fallback quote may translate after it
        second = next((c for c in calls if c["messages"][0]["content"] == SECOND_SYSTEM), None)
        if calls:
            prompts.append({"messages": reader["messages"], "max_new_tokens": reader["max_new_tokens"]})
        row = {
            "language": language, "question": question, "warm_up": i == 0,
            "answer_s": answer.timings["total_s"],
            "first_content_s": first_content if first_content is not None else answer.timings["total_s"],
            "first_token_s": reader["first"] - start if "first" in reader else float("nan"),
            "prefill_tokens_per_s": ((reader["prompt_tokens"] - reader["cached_tokens"]) / reader["prefill_s"]
                                     if reader.get("prefill_s") else float("nan")),
            "decode_tokens_per_s": ((reader["new_tokens"] - 1) / reader["decode_s"]
                                    if reader.get("decode_s") and reader.get("new_tokens", 0) > 1 else float("nan")),
            "prompt_tokens": reader.get("prompt_tokens"), "cached_tokens": reader.get("cached_tokens"),
            "model_calls": len(calls), "abstained": answer.abstained, "answer": answer.text,
            # the profile: where the answer's time goes
            "before_model_s": reader["start"] - start if calls else answer.timings["total_s"],
            "prefill_s": reader.get("prefill_s", float("nan")),
            "decode_s": reader.get("decode_s", float("nan")),
            "after_model_s": start + answer.timings["total_s"] - reader["end"] if "end" in reader else float("nan"),
            # the second read (qa.pipeline._second_read), when the reader's answer failed and the
            # evidence was strong: its call's seconds, and whether its answer was kept
            "second_read_s": second["end"] - second["start"] if second and "end" in second else None,
            "second_read_kept": bool(second) and not answer.text.startswith(tuple(QUOTE_LEAD.values())),
        }
        rows.append(row)
        print(f"{label}: {row['answer_s']:.2f} s (first content {row['first_content_s']:.2f} s, first token "
              f"{row['first_token_s']:.2f} s) | {answer.text[:90]}", file=sys.stderr, flush=True)
    return summarize(rows, load_s=load_s, rss=peak_rss()), prompts


def summarize(rows: list[dict], load_s: float, rss: int) -> dict:
    counted = [r for r in rows if not r["warm_up"]]
    return {
        "answer_median_s": median([r["answer_s"] for r in counted]),
        "first_content_median_s": median([r["first_content_s"] for r in counted]),
        "first_token_median_s": median([r["first_token_s"] for r in counted]),
        "prefill_tokens_per_s": median([r["prefill_tokens_per_s"] for r in counted]),
        "decode_tokens_per_s": median([r["decode_tokens_per_s"] for r in counted]),
        "peak_rss_gb": round(rss / 1024 / 1024, 2),  # kB
        "profile_median_s": {key: median([r[key] for r in counted if key in r])
                             for key in ("before_model_s", "prefill_s", "decode_s", "after_model_s")},
        "load_s": round(load_s, 2),
        "second_reads": sum(r.get("second_read_s") is not None for r in counted),
        "second_read_median_s": median([r["second_read_s"] for r in counted if r.get("second_read_s") is not None]),
        "questions": len(counted),
        "rows": rows,
    }


PEER = r'''
import json, resource, sys, time
from pathlib import Path
from llama_cpp import Llama
job = json.load(open(sys.argv[1]))
kwargs = {"model_path": job["gguf"], "n_ctx": 4096, "verbose": False}  # default n_ctx (512) can't hold the prompts
if job.get("threads"):
    kwargs["n_threads"] = kwargs["n_threads_batch"] = job["threads"]
started = time.perf_counter()
llm = Llama(**kwargs)
load_s = time.perf_counter() - started
rows = []
for i, prompt in enumerate(job["prompts"]):
    before = list(llm._input_ids[:llm.n_tokens])
    start = time.perf_counter(); first = None; pieces = []
    for chunk in llm.create_chat_completion(prompt["messages"], max_tokens=prompt["max_new_tokens"],
                                            temperature=0.0, stream=True):
        text = chunk["choices"][0]["delta"].get("content")
        if text:
            first = first or time.perf_counter()
            pieces.append(text)
    end = time.perf_counter()
    new = len(llm.tokenize("".join(pieces).encode(), add_bos=False)) if pieces else 0
    prompt = list(llm._input_ids[:llm.n_tokens - new])
    cached = 0
    for a, b in zip(before, prompt):
        if a != b:
            break
        cached += 1
    rows.append({"first": (first or end) - start, "total": end - start, "new_tokens": new,
                 "prompt_tokens": len(prompt), "cached_tokens": cached, "text": "".join(pieces)})
print(json.dumps({"rows": rows, "load_s": load_s,
                  "rss": next(int(l.split()[1]) for l in Path("/proc/self/status").read_text().splitlines()
                              if l.startswith("VmHWM:"))}))
'''


def run_peer(gguf: Path, prompts: list[dict], threads: int | None) -> dict:
    """llama-cpp-python with default settings over `prompts`, in a child process."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as job:
        json.dump({"gguf": str(gguf), "prompts": prompts, "threads": threads}, job)
    try:
        out = subprocess.run([sys.executable, "-c", PEER, job.name], check=True, capture_output=True, text=True)
    finally:
        os.unlink(job.name)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    rows = []
    for i, r in enumerate(result["rows"]):
        decode = r["total"] - r["first"]
        rows.append({"warm_up": i == 0, "answer_s": r["total"], "first_content_s": r["first"],
                     "first_token_s": r["first"],
                     "prefill_tokens_per_s": (r["prompt_tokens"] - r["cached_tokens"]) / r["first"],
                     "decode_tokens_per_s": (r["new_tokens"] - 1) / decode if decode > 0 and r["new_tokens"] > 1
                     else float("nan"), "prompt_tokens": r["prompt_tokens"], "answer": r["text"]})
        print(f"peer: {r['total']:.2f} s (first token {r['first']:.2f} s) | {r['text'][:90]}", file=sys.stderr)
    return summarize(rows, load_s=result["load_s"], rss=result["rss"])


def table(stacks: dict) -> str:
    names = list(stacks)
    lines = ["| measure | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for key in (*KEYS, "load_s", "second_reads", "second_read_median_s"):
        lines.append(f"| {key} | " + " | ".join(str(stacks[n].get(key, "")) for n in names) + " |")
    for key in ("before_model_s", "prefill_s", "decode_s", "after_model_s"):  # the profile (default stacks)
        lines.append(f"| profile: {key} | " + " | ".join(
            str(stacks[n].get("profile_median_s", {}).get(key, "")) for n in names) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="the default stack and the llama.cpp peer only")
    parser.add_argument("--json", type=Path, default=Path("artifacts/bench/latency.json"))
    parser.add_argument("--runs", type=int, default=1, help="times through the questions (full run)")
    parser.add_argument("--second-read", action="store_true",
                        help="only the default stack with and without the second read, on questions it answers")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from qa.models import PACKAGED, prepare_gguf
    from qa.settings import Settings

    with tempfile.TemporaryDirectory() as index_dir:
        settings = Settings.from_env(index_dir=Path(index_dir))
        for model in PACKAGED.values():  # not timed: done once per machine
            prepare_gguf(settings.cache_dir, model, progress=False)
        questions = QUESTIONS if args.quick else QUESTIONS * args.runs
        stacks: dict[str, dict] = {}
        if args.second_read:
            import qa.pipeline

            stacks["default"], _ = run_stack(settings, SECOND_READ_QUESTIONS, "default")
            qa.pipeline.SECOND_READ = False
            stacks["no second read"], _ = run_stack(settings, SECOND_READ_QUESTIONS, "no second read")
            qa.pipeline.SECOND_READ = True
        else:
            stacks["default"], prompts = run_stack(settings, questions, "default")
        gguf = prepare_gguf(settings.cache_dir, PACKAGED[settings.llm], progress=False) \
            if settings.llm in PACKAGED else None
        if gguf is not None and not args.second_read:
            stacks["peer"] = run_peer(gguf, prompts, threads=None)
        if not args.quick and not args.second_read:
            if gguf is not None:
                stacks["peer, 2 threads"] = run_peer(gguf, prompts, threads=os.cpu_count())
            for model in PACKAGED:
                for engine in ("llama.cpp", "transformers"):
                    if model == settings.llm and engine == settings.engine:
                        continue
                    stacks[f"{model} {engine}"] = run_in_child(model, engine, questions)
    report = {"cpu": cpu(), "python": platform.python_version(),
              "settings": {"llm": settings.llm, "engine": settings.engine, "answer_style": settings.answer_style,
                           "threads": settings.threads, "embedder": settings.embedder},
              **stacks}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2, ensure_ascii=False))
    print(f"CPU: {report['cpu']['model']} ({report['cpu'].get('cores')} cores; {' '.join(report['cpu']['flags'])})")
    print(table({k: v for k, v in stacks.items()}))
    return 0


CHILD = r'''
import json, sys, tempfile
from pathlib import Path
sys.path.insert(0, sys.argv[4])
from bench.latency import run_stack, QUESTIONS
from qa.settings import Settings
with tempfile.TemporaryDirectory() as index_dir:
    settings = Settings.from_env(index_dir=Path(index_dir), llm=sys.argv[1], engine=sys.argv[2])
    summary, _ = run_stack(settings, json.loads(sys.argv[3]), f"{sys.argv[1]} {sys.argv[2]}")
print(json.dumps(summary))
'''


def run_in_child(model: str, engine: str, questions: list) -> dict:
    """One stack in its own process, so its peak memory is its own."""
    out = subprocess.run([sys.executable, "-c", CHILD, model, engine, json.dumps(questions),
                          str(Path(__file__).resolve().parent.parent)],
                         capture_output=True, text=True, check=True)
    sys.stderr.write(out.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    raise SystemExit(main())
