"""Concurrent visitors (issue 18, part 4; issue 16, part 4): N simultaneous visitors of the web
page, each in their own conversation, asking different questions in French and English while one
of them uploads a large PDF and then asks about it.

    HF_HUB_OFFLINE=1 QA_THREADS=1 .venv/bin/python bench/load.py [--visitors 8] [--questions 2]
        [--pages 100] [--style direct] [--library private|shared] [--store folder|postgresql]
        [--processes 1] [--json PATH]

`app.py` runs as K subprocesses (`--processes`, each with QA_THREADS=1 unless set) with the real
default models, each on its own free loopback port. The library is a temporary FAISS folder
(`--store folder`, one process) or a temporary PostgreSQL with pgvector (`--store postgresql`:
pgserver's bundled server, the bundled article stored once with `qa index` before the processes
start, all of them on that one database). Visitors are spread round-robin over the processes and
call the page's own API (`/ask`, `/add_documents`) with gradio_client, all starting at once.

With `--library private` each visitor's upload is theirs alone: the last visitor asks about the
PDF too and must not get its answer. With `--library shared` the upload joins the library: the
last visitor (on another process when there are several) waits until the upload is done, asks
about the PDF and must get its answer (the store's "reloaded when another process changed it").

Recorded, per process and overall: answers a minute, each answer's time from submission to its
verified answer (queueing included: a process answers one question at a time), p50/p95, errors,
whether each answer is right and in its own conversation (its history holds only that visitor's
questions), the processes' peak RSS and CPU seconds (per answer: what a dedicated core would
take), PostgreSQL's (its processes' RSS and PSS summed, CPU seconds, the time its backends spent
executing statements: `pg_stat_database.active_time`, and a question's store calls timed from a
process of its own), the load average, and whether every process is still up at the end.
"""

from __future__ import annotations

import argparse
import html
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.large_pdf import NEEDLE, PIAF, _cpu, piaf_pages, text_pdf, wrap  # noqa: E402
from qa.text import fold  # noqa: E402

# (question, words of which the answer must hold one), alternately French and English.
QUESTIONS = [
    ("Combien de modèles dérivés ont été construits sur Qwen ?", ["100 000"]),
    ("When was the US AI Action Plan published?", ["2025"]),
    ("Quelle communauté de modèles la famille Qwen a-t-elle dépassée ?", ["Llama"]),
    ("Which Chinese firms developed Qwen and Hunyuan?", ["Alibaba", "Tencent"]),
    ("De quelles entreprises occidentales la Chine souhaite-t-elle se rendre moins dépendante ?",
     ["OpenAI", "Google", "Microsoft"]),
    ("Which community did the Qwen family of models surpass?", ["Llama"]),
    ("Quel argument DeepSeek utilise-t-il pour recruter les meilleurs profils ?", ["salaire"]),
    ("Which Chinese company offers high salaries to attract AI talent?", ["DeepSeek"]),
    ("Quel modèle Baidu a-t-il publié ?", ["ERNIE"]),
    ("Who created the LMArena platform?", ["Berkeley"]),
    ("Dans quel plan la stratégie open source de la Chine est-elle décrite ?", ["quinquennal"]),
    ("How many derivative models have been built on Qwen?", ["100,000", "100 000"]),
    ("Quand le Plan d’action pour l’IA a-t-il été publié ?", ["2025", "juillet"]),
    ("Which Western companies does China want to depend on less?", ["OpenAI", "Google", "Microsoft"]),
    ("Quel modèle Tencent a-t-il développé ?", ["Hunyuan"]),
    ("Which model did Moonshot AI release?", ["Kimi"]),
]
PDF_QUESTION = ("Quel est le code du coffre de la société Zorglub ?", ["4321"])
ANSWER_TIMEOUT = 3600


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def message_text(message: dict) -> str:
    """A chat message's text as gradio_client returns it (a string or a list of parts)."""
    content = message["content"]
    if isinstance(content, list):
        content = " ".join(part.get("text", "") for part in content if isinstance(part, dict))
    return html.unescape(re.sub(r"<[^>]+>", " ", content))


def holds(text: str, expect: list[str]) -> bool:
    flat = fold(text).replace("\u202f", " ").replace("\u00a0", " ")
    return any(fold(e) in flat for e in expect)


def large_pdf(pages: int) -> bytes:
    """`pages` pages of PIAF paragraphs (or of filler text when PIAF isn't on this machine), the
    Zorglub sentence on the last page."""
    if PIAF.exists():
        return text_pdf(piaf_pages(pages))
    filler = wrap("Ce rapport annuel décrit les activités de la société, ses ateliers et ses équipes. " * 30)
    body = [filler[:20] for _ in range(pages)]
    body[-1] = body[-1][:-2] + [NEEDLE]
    return text_pdf(body)


def tree_memory(pid: int, pss: bool = False) -> int:
    """Bytes of RSS (or PSS, which counts shared pages once) of `pid` and its children; 0 once gone."""
    try:
        import psutil

        process = psutil.Process(pid)
        tree = [process, *process.children(recursive=True)]
        return sum(p.memory_full_info().pss if pss else p.memory_info().rss for p in tree)
    except ImportError:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except Exception:  # the process is gone: nothing to sample
        return 0
    return 0


def tree_cpu(pid: int) -> float:
    """CPU seconds (user and system) used so far by `pid`, its children, and the children it has
    reaped (a PostgreSQL backend that closed); 0 once gone."""
    try:
        import psutil

        process = psutil.Process(pid)
        times = [p.cpu_times() for p in [process, *process.children(recursive=True)]]
        return sum(t.user + t.system + t.children_user + t.children_system for t in times)
    except Exception:  # psutil missing or the process gone
        return 0.0


class PeakMemory:
    """The peak of `tree_memory(pid())`, sampled every half second in a thread until `stop`."""

    def __init__(self, pid, pss: bool = False) -> None:
        self.pid, self.pss, self.peak = pid, pss, 0
        self._stop = threading.Event()
        threading.Thread(target=self._sample, daemon=True).start()

    def _sample(self) -> None:
        while not self._stop.wait(0.5):
            pid = self.pid()
            if pid:
                self.peak = max(self.peak, tree_memory(pid, self.pss))

    def stop(self) -> None:
        self._stop.set()


class Postgres:
    """pgserver's PostgreSQL with pgvector in a temporary folder, one database for the library,
    the bundled article stored in it once with `qa index`."""

    def __init__(self, log_path: Path) -> None:
        import pgserver
        import psycopg

        self.folder = tempfile.mkdtemp(prefix="qa-load-pg-")  # short: the unix socket lives there
        self.server = pgserver.get_server(self.folder, cleanup_mode="delete")
        self.database = "qa_load"
        with psycopg.connect(self.server.get_uri(), autocommit=True) as connection:
            connection.execute(f"CREATE DATABASE {self.database}")
        self.url = self.server.get_uri(self.database)
        self.rss = PeakMemory(self.server.get_pid)
        self.pss = PeakMemory(self.server.get_pid, pss=True)
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "QA_STORE": self.url}
        began = time.monotonic()
        with open(log_path, "w") as log:
            subprocess.run([sys.executable, "-m", "qa", "index"], cwd=ROOT, env=env, stdout=log,
                           stderr=subprocess.STDOUT, check=True)
        self.index_s = time.monotonic() - began

    def statistics(self) -> dict:
        """The library database's counters: milliseconds its backends spent executing statements,
        transactions committed."""
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as connection:
            connection.execute("SELECT pg_stat_force_next_flush()")
            active, commits = connection.execute(
                "SELECT active_time, xact_commit FROM pg_stat_database WHERE datname = %s",
                (self.database,)).fetchone()
        return {"active_ms": float(active), "commits": int(commits)}

    def probe(self, repeat: int = 30) -> dict:
        """Milliseconds (medians) of what the store costs a question as the app asks it, from a
        process of its own: "has the library changed?" plus the dense search for the retriever's
        candidates (a random unit query), and the reload a process does after another's change."""
        import numpy as np

        from qa.pgstore import PostgresStore
        from qa.retrieval import Retriever

        store = PostgresStore(self.url)
        index = store.load()
        k = min(Retriever.candidates, len(index.chunks))
        queries = np.random.default_rng(0).standard_normal((repeat + 1, index.manifest.dimension)).astype(np.float32)
        queries /= np.linalg.norm(queries, axis=1, keepdims=True)

        def question(n: int) -> None:
            store.is_current(index)
            index.search(queries[n], k)

        def median_ms(call) -> float:
            call(repeat)  # warm
            times = []
            for n in range(repeat):
                began = time.perf_counter()
                call(n)
                times.append(time.perf_counter() - began)
            return round(1000 * statistics.median(times), 2)

        return {"passages": len(index.chunks), "candidates": k, "question_ms": median_ms(question),
                "reload_ms": median_ms(lambda n: store.load())}

    def stop(self) -> None:
        self.rss.stop()
        self.pss.stop()
        self.server.cleanup()


class Server:
    """`python app.py` on a free port, on a temporary index folder or the given PostgreSQL store;
    its peak RSS sampled meanwhile."""

    def __init__(self, work: Path, style: str, log_path: Path, library: str = "private",
                 store: str | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False",
               "HF_HUB_DISABLE_TELEMETRY": "1", "QA_INDEX_DIR": str(work / "index"), "QA_ANSWER_STYLE": style}
        env.setdefault("QA_THREADS", "1")
        env.pop("QA_STORE", None)
        if store:
            env["QA_STORE"] = store
        self.log_path = log_path
        with open(log_path, "w") as log:
            self.process = subprocess.Popen([sys.executable, "app.py", "--port", str(self.port), "--library",
                                             library], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        self.memory = PeakMemory(lambda: self.process.pid)

    @property
    def peak_rss(self) -> int:
        return self.memory.peak

    def wait_ready(self, timeout: float = 900) -> None:
        deadline = time.monotonic() + timeout
        while not self.up():
            if self.process.poll() is not None:
                raise RuntimeError(f"app.py exited with {self.process.returncode}:\n"
                                   f"{self.log_path.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"app.py did not serve {self.url} in time")
            time.sleep(1)

    def up(self) -> bool:
        try:
            with urllib.request.urlopen(self.url, timeout=10) as response:
                return response.status == 200
        except OSError:
            return False

    def stop(self) -> None:
        self.memory.stop()
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def visitor(url: str, number: int, questions: list[tuple[str, list[str]]], style: str,
            start: threading.Barrier, pdf: Path | None = None, outsider: bool = False,
            uploaded: threading.Event | None = None, shared: bool = False) -> dict:
    """One visitor: its own client (session), its questions one after another in its own
    conversation; the uploader adds the PDF first (then sets `uploaded`) and asks about it last.
    An `outsider` asks about it too, last: in a private library it must not get its answer (the
    uploader's library is theirs alone); in a `shared` one it waits for the upload and must."""
    from gradio_client import Client, handle_file

    client = Client(url, verbose=False, download_files=False)
    out = {"visitor": number, "url": url, "answers": [], "errors": [], "upload_s": None}
    history: list = []
    start.wait()
    try:
        if pdf is not None:
            began = time.monotonic()
            try:
                result = client.submit([handle_file(str(pdf))], api_name="/add_documents").result(
                    timeout=ANSWER_TIMEOUT)
            finally:
                if uploaded is not None:
                    uploaded.set()  # done or failed: nobody waits for it any longer
            out["upload_s"] = round(time.monotonic() - began, 2)
            out["upload_note"] = " ".join(re.sub(r"<[^>]+>", " ", str(result)).split())[-200:]
            questions = [*questions, PDF_QUESTION]
        if outsider:
            questions = [*questions, (PDF_QUESTION[0], PDF_QUESTION[1] if shared else [])]
        for k, (question, expect) in enumerate(questions):
            if outsider and shared and k == len(questions) - 1 and uploaded is not None:
                uploaded.wait(ANSWER_TIMEOUT)
            began = time.monotonic()
            try:
                chat, _, _ = client.submit(question, history, 4, 128, style, api_name="/ask").result(
                    timeout=ANSWER_TIMEOUT)
            except Exception as error:  # recorded, and the visitor goes on
                out["errors"].append(f"{question}: {type(error).__name__}: {error}"[:300])
                continue
            finished = time.monotonic()
            answer = message_text(chat[-1])
            asked = [message_text(m).strip() for m in chat if m["role"] == "user"]
            own = [q for q, _ in questions[:k + 1]]
            out["answers"].append({"question": question, "answer": answer[:300], "seconds": round(finished - began, 2),
                                   "finished": finished,
                                   "correct": holds(answer, expect) if expect else not holds(answer, PDF_QUESTION[1]),
                                   "own_conversation": asked[-1] == question and set(asked) <= set(own)
                                   and len(chat) == 2 * len(asked)})
            history = chat
    finally:
        client.close()
    return out


def percentiles(times: list[float]) -> tuple[float | None, float | None]:
    """(p50, p95) of `times`, the p95 as the nearest rank below: [1..20] gives (10.5, 20)."""
    times = sorted(times)
    if not times:
        return None, None
    return round(statistics.median(times), 1), round(times[min(len(times) - 1, int(0.95 * len(times)))], 1)


def summary(answers: list[dict], errors: int, began: float) -> dict:
    """Answers, errors, right ones, p50/p95 and answers a minute (over the time from the start to
    the last answer) of one process's answers, or of all of them."""
    p50, p95 = percentiles([a["seconds"] for a in answers])
    span = max((a["finished"] for a in answers), default=began) - began
    return {"answers": len(answers), "errors": errors, "correct": sum(a["correct"] for a in answers),
            "own_conversation": sum(a["own_conversation"] for a in answers), "p50_s": p50, "p95_s": p95,
            "span_s": round(span, 1), "answers_per_minute": round(60 * len(answers) / span, 2) if span else None,
            "seconds_per_answer": round(span / len(answers), 2) if answers else None}


def run(visitors: int, per_visitor: int, pages: int, style: str, work: Path, store: str = "folder",
        processes: int = 1, library: str = "private") -> dict:
    if processes > 1 and store != "postgresql":
        raise ValueError("several processes share a library only in PostgreSQL: use --store postgresql")
    load_before = list(os.getloadavg())
    pdf = work / "rapport-long.pdf"
    pdf.write_bytes(large_pdf(pages))
    postgres = Postgres(work / "index.log") if store == "postgresql" else None
    servers: list[Server] = []
    try:
        started = time.monotonic()
        for p in range(processes):
            servers.append(Server(work, style, work / f"server-{p}.log", library, postgres and postgres.url))
        for server in servers:
            server.wait_ready()
        ready_s = time.monotonic() - started
        time.sleep(11 if postgres else 0)  # the backends report their start-up's statistics when idle 10 s
        before = postgres.statistics() if postgres else None
        cpu_before = [tree_cpu(server.process.pid) for server in servers]
        pg_cpu_before = tree_cpu(postgres.server.get_pid()) if postgres else 0.0
        start = threading.Barrier(visitors)
        uploaded = threading.Event()
        results: list[dict] = [{} for _ in range(visitors)]

        def one(i: int) -> None:
            chosen = [QUESTIONS[(i * per_visitor + k) % len(QUESTIONS)] for k in range(per_visitor)]
            url = servers[i % processes].url  # round-robin
            try:
                results[i] = visitor(url, i, chosen, style, start, pdf if i == 0 else None,
                                     outsider=i == visitors - 1 and i > 0, uploaded=uploaded,
                                     shared=library == "shared")
            except Exception as error:
                results[i] = {"visitor": i, "url": url, "answers": [],
                              "errors": [f"{type(error).__name__}: {error}"[:300]]}

        threads = [threading.Thread(target=one, args=(i,)) for i in range(visitors)]
        began = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall_s = time.monotonic() - began
        load_after = list(os.getloadavg())
        cpu = [tree_cpu(server.process.pid) - b for server, b in zip(servers, cpu_before, strict=True)]
        pg_cpu = tree_cpu(postgres.server.get_pid()) - pg_cpu_before if postgres else 0.0
        up = [server.process.poll() is None and server.up() for server in servers]
    finally:
        for server in servers:
            server.stop()
    try:
        after = postgres.statistics() if postgres else None  # the apps' backends report as they close
        probe = postgres.probe() if postgres else None  # after the counters: not counted in them
        pg_rss, pg_pss = (postgres.rss.peak, postgres.pss.peak) if postgres else (0, 0)
        index_s = postgres.index_s if postgres else None
    finally:
        if postgres:
            postgres.stop()
    answers = [a for r in results for a in r.get("answers", [])]
    expected = visitors * per_visitor + 1 + (visitors > 1)
    others = [a for r in results if r.get("visitor") != 0 for a in r.get("answers", [])
              if a["question"] == PDF_QUESTION[0]]
    per_process = []
    for p, server in enumerate(servers):
        mine = [r for r in results if r.get("url") == server.url]
        per_process.append({"process": p, "visitors": len(mine),
                            **summary([a for r in mine for a in r.get("answers", [])],
                                      sum(len(r.get("errors", [])) for r in mine), began),
                            "cpu_s": round(cpu[p], 1), "peak_rss_mb": round(server.peak_rss / 2**20),
                            "up_after": up[p]})
        detail = per_process[-1]
        detail["cpu_s_per_answer"] = round(cpu[p] / detail["answers"], 2) if detail["answers"] else None
    overall = summary(answers, sum(len(r.get("errors", [])) for r in results), began)
    for r in results:
        for a in r.get("answers", []):
            a["finished_s"] = round(a.pop("finished") - began, 2)
    figures = {
        "cpu": _cpu(), "cores": os.cpu_count(), "load_before": load_before, "visitors": visitors,
        "questions_per_visitor": per_visitor, "pdf_pages": pages, "pdf_bytes": pdf.stat().st_size, "style": style,
        "store": store, "processes": processes, "library": library,
        "server_ready_s": round(ready_s, 1), "wall_s": round(wall_s, 1),
        **overall, "expected_answers": expected,
        "max_s": max((a["seconds"] for a in answers), default=None),
        "answers_per_minute_wall": round(60 * len(answers) / wall_s, 2),
        "upload_s": results[0].get("upload_s"),
        "peak_rss_mb": max(p["peak_rss_mb"] for p in per_process), "server_up_after": all(up),
        "load_after": load_after, "processes_detail": per_process,
    }
    if library == "shared":  # the others must find the PDF (through another process when there are several)
        figures["pdf_found_by_others"] = bool(others) and all(a["correct"] for a in others)
    else:
        figures["pdf_not_in_others_libraries"] = all(a["correct"] for a in others)
    if postgres:
        active_s = (after["active_ms"] - before["active_ms"]) / 1000
        figures["postgres"] = {
            "index_s": round(index_s, 1), "peak_rss_mb": round(pg_rss / 2**20), "peak_pss_mb": round(pg_pss / 2**20),
            "active_s": round(active_s, 2), "commits": after["commits"] - before["commits"],
            "active_share_of_answering": round(active_s / (processes * wall_s), 4),
            "active_s_per_answer": round(active_s / len(answers), 3) if answers else None,
            "cpu_s": round(pg_cpu, 2), "cpu_share": round(pg_cpu / (pg_cpu + sum(cpu)), 4) if sum(cpu) else None,
            "probe": probe}
    figures["visitors_detail"] = results
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--visitors", type=int, default=8)
    parser.add_argument("--questions", type=int, default=2, help="questions each visitor asks")
    parser.add_argument("--pages", type=int, default=100, help="pages of the uploaded PDF")
    parser.add_argument("--style", default="direct", choices=("direct", "extractive", "generative"))
    parser.add_argument("--library", default="private", choices=("private", "shared"),
                        help="app.py's --library: the upload is the uploader's alone, or joins the library")
    parser.add_argument("--store", default="folder", choices=("folder", "postgresql"),
                        help="a temporary FAISS folder, or a temporary PostgreSQL with pgvector (pgserver)")
    parser.add_argument("--processes", type=int, default=1, help="app.py processes (several: --store postgresql)")
    parser.add_argument("--json", type=Path, default=Path("load.json"))
    args = parser.parse_args(argv)
    if args.processes > 1 and args.store != "postgresql":
        parser.error("several processes share a library only in PostgreSQL: add --store postgresql")
    with tempfile.TemporaryDirectory(prefix="qa-load-") as tmp:
        figures = run(args.visitors, args.questions, args.pages, args.style, Path(tmp), args.store,
                      args.processes, args.library)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(figures, ensure_ascii=False, indent=1), encoding="utf-8")
    print(json.dumps({k: v for k, v in figures.items() if k != "visitors_detail"}, ensure_ascii=False, indent=1))
    ok = (figures["errors"] == 0 and figures["answers"] == figures["expected_answers"]
          and figures["own_conversation"] == figures["answers"] and figures["server_up_after"])
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
