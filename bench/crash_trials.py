"""Crash trials: `kill -9` at random moments while the library or the translation memory is written.

    .venv/bin/python bench/crash_trials.py [--trials 20] [--seed 0] [--json PATH]

Each trial runs one real `qa` command in a subprocess and kills it with SIGKILL at a random
moment after its imports: `qa docs add FILE`, `qa docs remove NAME`, `qa index FILES...`, or
`qa translate --to en` (the translation memory is written every 25 sentences). The command runs
with a fake embedder and generator (hashed words; a scripted translation), so a trial takes a
second or two, not the real models' minutes; the code that writes, switches and cleans is the
real one. Writes are slowed a little (10 ms before each fsync and rename) so that random kills
land inside the writing as well as before it.

After each kill, checked in this process: the library loads (`load_index`), it lists exactly
the documents before the command or after it (nothing in between), a question is answered from
it (`Pipeline.ask`, the code behind `qa ask`), the translation memory is a JSON object holding
at least what was there before, and no temporary file or `.partial` build is left once the next
command has completed. Prints one line per operation and exits 1 when any trial failed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
OPERATIONS = ("add", "remove", "index", "translate")


class Embedder:
    """Hashed words (crc32: the same in every process); `delay` seconds a batch."""

    name = "crash-fake"

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay

    def embed_batch(self, texts, kind):
        import zlib

        import numpy as np

        out = np.zeros((len(texts), 64), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in text.lower().split():
                out[row, zlib.crc32(word.encode()) % 63] += 1.0
            out[row, 63] = 0.01
        time.sleep(self.delay)
        return out / np.linalg.norm(out, axis=1, keepdims=True)


# -- the child: the real CLI with fake models and slowed writes ------------------------------------


def child(argv: list[str]) -> int:
    import qa.embedding
    import qa.pipeline
    from qa.cli import main

    class Generator:
        name = "crash-fake-llm"

        def stream(self, messages, max_new_tokens, prefix=""):
            yield "translated"

    embedder = Embedder(delay=0.002)
    qa.pipeline.make_embedder = lambda name, threads: embedder
    qa.embedding.make_embedder = lambda name, threads: embedder
    qa.pipeline.make_generator = lambda *a, **k: Generator()
    real_fsync, real_replace = os.fsync, os.replace

    def slow_fsync(fd):
        time.sleep(0.01)
        real_fsync(fd)

    def slow_replace(src, dst):
        time.sleep(0.01)
        real_replace(src, dst)

    os.fsync, os.replace = slow_fsync, slow_replace
    import bm25s  # noqa: F401  the imports each command does lazily: done before "ready"
    import faiss  # noqa: F401
    import pysbd  # noqa: F401
    import tqdm  # noqa: F401

    import qa.library  # noqa: F401
    print("ready", flush=True)
    return main(argv)


# -- the parent: trials and checks ----------------------------------------------------------------


def env_for(work: Path) -> dict[str, str]:
    env = dict(os.environ, QA_INDEX_DIR=str(work / "index"), QA_CACHE_DIR=str(work / "cache"),
               QA_EMBEDDER="crash-fake", QA_EVIDENCE_EMBEDDER="crash-fake", QA_THREADS="1",
               HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT), QA_ANSWER_STYLE="extractive")
    return env


def command(work: Path, argv: list[str], kill_after: float | None) -> tuple[bool, float]:
    """Run `qa argv` in a child; kill it `kill_after` seconds after its imports (None: let it
    finish). Returns (completed, seconds from ready to exit or kill)."""
    proc = subprocess.Popen([sys.executable, __file__, "--child", *argv], env=env_for(work),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
    start = time.monotonic()
    if kill_after is None:
        out, err = proc.communicate(timeout=300)
        if proc.returncode != 0:
            raise RuntimeError(f"qa {' '.join(argv)} failed: {err.strip()}")
        return True, time.monotonic() - start
    try:
        proc.wait(timeout=kill_after)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        return False, kill_after
    finally:
        proc.stdout.close()
        proc.stderr.close()
    if proc.returncode != 0:
        raise RuntimeError(f"qa {' '.join(argv)} failed with {proc.returncode}")
    return True, time.monotonic() - start


def library_names(work: Path) -> list[str]:
    from qa.index import load_index

    return [e.name for e in load_index(work / "index").manifest.documents]


def answers(work: Path) -> bool:
    """A question about a document of the library is answered from it, with a citation."""
    from qa.pipeline import Pipeline
    from qa.settings import Settings

    settings = Settings.from_env(env={}, index_dir=work / "index", cache_dir=work / "cache",
                                 embedder="crash-fake", evidence_embedder="crash-fake", threads=1,
                                 answer_style="extractive")
    class Generator:
        name = "crash-fake-llm"

        def stream(self, messages, max_new_tokens, prefix=""):
            yield " Le code est 4321 [1]."

    answer = Pipeline(settings, embedder=Embedder(), generator=Generator()).ask(
        "Quel est le code du coffre de Zorglub ?")
    return bool(answer.passages)


def leftovers(work: Path) -> list[str]:
    index = work / "index"
    found = [str(p.relative_to(work)) for p in index.glob(".CURRENT.*")]
    found += [str(p.relative_to(work)) for p in (index / "builds").glob(".*.partial")]
    builds = [p for p in (index / "builds").iterdir() if not p.name.startswith(".")]
    if len(builds) > 1:
        found += [str(p.relative_to(work)) for p in builds]
    found += [str(p.relative_to(work)) for p in (work / "cache").rglob("*.tmp")]
    return found


def memory_entries(work: Path) -> dict:
    path = next((work / "cache" / "translations").glob("*.json"), None) if (work / "cache").exists() else None
    if path is None or not path.exists():
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))  # must be whole JSON: raises otherwise
    if not isinstance(data, dict):
        raise ValueError("the translation memory is not a JSON object")
    return data


def write_docs(work: Path, count: int) -> list[Path]:
    folder = work / "docs"
    folder.mkdir(exist_ok=True)
    paths = []
    for n in range(count):
        path = folder / f"doc{n:02d}.txt"
        sentences = " ".join(f"Le document {n} parle du sujet {n}-{k} et du coffre de Zorglub." for k in range(60))
        path.write_text(f"{sentences}\nLe code du coffre de Zorglub est 4321 selon le document {n}.\n",
                        encoding="utf-8")
        paths.append(path)
    return paths


def trials(operation: str, count: int, seed: int, log=print) -> dict:
    """`count` killed runs of `operation`, each checked; returns the figures."""
    rng = random.Random(f"{operation}-{seed}")
    failures: list[str] = []
    completed = killed = 0
    with tempfile.TemporaryDirectory(prefix=f"crash-{operation}-") as tmp:
        work = Path(tmp)
        docs = write_docs(work, 12)
        command(work, ["index", str(docs[0]), str(docs[1])], None)
        # calibration: how long one command runs once its imports are done
        probe = {"add": ["docs", "add", str(docs[2])], "remove": ["docs", "remove", docs[2].name],
                 "index": ["index", *map(str, docs[:4])], "translate": ["translate", "--to", "en"]}
        spans = []
        for name in ("add", "remove", "index") if operation != "translate" else ("translate",):
            spans.append(command(work, probe[name], None)[1])
        if operation == "translate":
            translations = work / "cache" / "translations"
            for p in translations.glob("*.json"):
                p.unlink()
        span = max(spans)
        command(work, ["index", str(docs[0]), str(docs[1])], None)
        for trial in range(count):
            before = library_names(work)
            memory_before = memory_entries(work)
            if operation == "add":
                fresh = [d for d in docs[:-1] if d.name not in before]
                if not fresh:  # every document is in: start again from two
                    command(work, ["index", str(docs[0]), str(docs[1])], None)
                    before = library_names(work)
                    fresh = [d for d in docs[:-1] if d.name not in before]
                argv, after = ["docs", "add", str(fresh[0])], before + [fresh[0].name]
            elif operation == "remove":
                if len(before) < 2:
                    command(work, ["docs", "add", *[str(d) for d in docs if d.name not in before][:3]], None)
                    before = library_names(work)
                argv, after = ["docs", "remove", before[-1]], before[:-1]
            elif operation == "index":
                chosen = rng.sample(docs, 3)
                argv, after = ["index", *map(str, chosen)], [d.name for d in chosen]
            else:
                argv, after = ["translate", "--to", "en"], before
                if trial % 5 == 0:  # start again from an empty memory now and then
                    for p in (work / "cache" / "translations").glob("*.json"):
                        p.unlink()
                    memory_before = {}
            moment = rng.uniform(0.0, span * 1.1)
            done, _ = command(work, argv, moment)
            completed += done
            killed += not done
            problem = None
            try:
                now = library_names(work)
                if now not in (before, after):
                    problem = f"lists {now}, neither {before} nor {after}"
                elif done and now != after:
                    problem = f"completed but lists {now}, not {after}"
                elif not answers(work):
                    problem = "no passage retrieved"
                memory = memory_entries(work)
                if not set(memory_before) <= set(memory):
                    problem = "translations lost"
            except Exception as error:  # any failure to load is a failed trial
                problem = f"{type(error).__name__}: {error}"
            # the next completed write must leave no temporary files behind
            if operation == "translate":
                command(work, ["translate", "--to", "en"], None)
            elif docs[-1].name in library_names(work):
                command(work, ["docs", "remove", docs[-1].name], None)
            else:
                command(work, ["docs", "add", str(docs[-1])], None)
            left = leftovers(work)
            if problem is None and left:
                problem = f"left behind: {left}"
            if problem:
                failures.append(f"trial {trial} (killed at {moment:.2f}s): {problem}")
                log(f"  {operation} trial {trial}: FAILED {problem}")
    return {"operation": operation, "trials": count, "killed": killed, "completed": completed,
            "failures": failures, "window_s": round(span * 1.1, 2)}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        return child(argv[1:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20, help="trials per operation (default 20)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--operations", nargs="+", choices=OPERATIONS, default=list(OPERATIONS))
    parser.add_argument("--json", type=Path, help="write the figures here too")
    args = parser.parse_args(argv)
    results = []
    for operation in args.operations:
        started = time.monotonic()
        result = trials(operation, args.trials, args.seed)
        result["seconds"] = round(time.monotonic() - started, 1)
        results.append(result)
        print(f"{operation}: {result['trials']} trials, {result['killed']} killed mid-way, "
              f"{result['completed']} completed before the kill, {len(result['failures'])} failed "
              f"(kill window {result['window_s']} s after imports; {result['seconds']} s)", flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1), encoding="utf-8")
    return 1 if any(r["failures"] for r in results) else 0


if __name__ == "__main__":
    raise SystemExit(main())
