"""Answer latency with the reader in process against the same GGUF behind llama.cpp's
OpenAI-compatible server (`--llm openai:<model>@<base-url>`), on the scaleout tests' questions.

    .venv/bin/python bench/server.py [--llm qwen2.5-coder-0.5b] [--runs 3] [--json PATH]

Both stacks share the embedder and the index, start from empty translation memories, and use
`QA_THREADS` threads (the server gets as many). The server is llama-cpp-python's
(`python -m llama_cpp.server`, the `scaleout` extra), started here on a free loopback port. Each
stack answers a warm-up question (not counted), then the questions `--runs` times, the two stacks
taking turns on each question; reported: the median per question over the runs of `total_s`
(question to checked answer) and `first_token_s` (the first thing shown: the best evidence).
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from qa.models import PACKAGED, prepare_gguf  # noqa: E402
from qa.pipeline import Pipeline  # noqa: E402
from qa.settings import Settings  # noqa: E402
from qa.translations import TranslationMemory  # noqa: E402

WARM_UP = "Why is China pushing open-source AI?"
QUESTIONS = {  # tests/test_scaleout_generation.py
    "fr-027": "Combien de modèles dérivés ont été construits à partir de la famille Qwen d'Alibaba ?",
    "en-007": "On which platform's leaderboards do Chinese open-source models reach the top positions?",
    "en-033": "Who is the CEO of DeepSeek?",
}


def start_server(gguf: Path, threads: int, log: Path) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--host", "127.0.0.1", "--port", str(port),
         "--n_threads", str(threads), "--n_threads_batch", str(threads), "--n_ctx", "4096",
         "--logits_all", "False", "--verbose", "False"],
        stdout=log.open("wb"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    for _ in range(360):
        if process.poll() is not None:
            raise SystemExit(f"the server exited: see {log}")
        try:
            urllib.request.urlopen(f"{url}/models", timeout=2).close()
            return process, url
        except OSError:
            time.sleep(0.5)
    process.kill()
    raise SystemExit(f"the server did not start: see {log}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--llm", default="qwen2.5-coder-0.5b", choices=sorted(PACKAGED))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-server-"))
    settings = Settings.from_env(index_dir=work / "index", llm=args.llm, engine="llama.cpp")
    embedded = Pipeline(settings, translations=TranslationMemory(None)).load()
    gguf = prepare_gguf(settings.cache_dir, PACKAGED[args.llm], progress=False)
    process, url = start_server(gguf, settings.threads, work / "server.log")
    try:
        served = Pipeline(settings.with_(llm=f"openai:{args.llm}@{url}"), embedder=embedded.embedder,
                          evidence_embedder=embedded.evidence_embedder,
                          index=embedded.index, translations=TranslationMemory(None)).load()
        stacks = {"in process": embedded, "server": served}
        for pipeline in stacks.values():
            pipeline.ask(WARM_UP)
        times: dict[str, dict[str, list[dict]]] = {name: {q: [] for q in QUESTIONS} for name in stacks}
        for run in range(args.runs):
            for qid, question in QUESTIONS.items():
                order = list(stacks) if run % 2 == 0 else list(reversed(stacks))
                answers = {}
                for name in order:
                    answers[name] = stacks[name].ask(question)
                    times[name][qid].append(answers[name].timings)
                same = len({a.text for a in answers.values()}) == 1
                figures = ", ".join(f"{n} {a.timings['total_s']:.2f} s" for n, a in answers.items())
                print(f"run {run + 1} {qid}: {figures}" + ("" if same else "  (answers differ!)"),
                      file=sys.stderr, flush=True)
    finally:
        process.terminate()
        process.wait(timeout=30)
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), "?")
    result = {"llm": args.llm, "threads": settings.threads, "runs": args.runs, "cpu": cpu, "questions": {}}
    for qid in QUESTIONS:
        result["questions"][qid] = {
            name: {key: round(statistics.median(t[key] for t in times[name][qid]), 3)
                   for key in ("total_s", "first_token_s")} for name in stacks}
    for name in stacks:
        result[name] = round(statistics.median(t["total_s"] for q in QUESTIONS for t in times[name][q]), 3)
    print(json.dumps(result, indent=1))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
