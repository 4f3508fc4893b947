"""Concurrent visitors (issue 18, part 4): N simultaneous visitors of the web page, each in their
own conversation, asking different questions in French and English while one of them uploads a
large PDF and then asks about it.

    HF_HUB_OFFLINE=1 QA_THREADS=1 .venv/bin/python bench/load.py [--visitors 8] [--questions 2]
        [--pages 100] [--style direct] [--json PATH]

`app.py` runs as a subprocess with the real default models, on a free loopback port, with a
temporary index and `--library private` (each visitor's upload is theirs alone). Visitors call
the page's own API (`/ask`, `/add_documents`) with gradio_client, all starting at once. Recorded:
each answer's time from submission to its verified answer (queueing included: the page answers
one question at a time), p50/p95, errors, whether each answer is right and in its own
conversation (its history holds only that visitor's questions; only the uploader's library holds
the PDF), the server's peak RSS, and whether it is still up at the end.
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


class Server:
    """`python app.py` on a free port with a temporary index; its peak RSS sampled meanwhile."""

    def __init__(self, work: Path, style: str, log_path: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False",
               "HF_HUB_DISABLE_TELEMETRY": "1", "QA_INDEX_DIR": str(work / "index"), "QA_ANSWER_STYLE": style}
        env.setdefault("QA_THREADS", "1")
        self.log_path = log_path
        with open(log_path, "w") as log:
            self.process = subprocess.Popen([sys.executable, "app.py", "--port", str(self.port), "--library",
                                             "private"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        self.peak_rss = 0
        self._stop = threading.Event()
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()

    def _rss(self) -> int:
        try:
            import psutil

            process = psutil.Process(self.process.pid)
            return process.memory_info().rss + sum(c.memory_info().rss for c in process.children(recursive=True))
        except ImportError:
            for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        except Exception:  # the process is gone: nothing to sample
            return 0
        return 0

    def _sample(self) -> None:
        while not self._stop.wait(0.5):
            self.peak_rss = max(self.peak_rss, self._rss())

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
        self._stop.set()
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def visitor(url: str, number: int, questions: list[tuple[str, list[str]]], style: str,
            start: threading.Barrier, pdf: Path | None = None, outsider: bool = False) -> dict:
    """One visitor: its own client (session), its questions one after another in its own
    conversation; the uploader adds the PDF first and asks about it last; an `outsider` asks
    about it too, last, and must not get its answer (the uploader's library is theirs alone)."""
    from gradio_client import Client, handle_file

    client = Client(url, verbose=False, download_files=False)
    out = {"visitor": number, "answers": [], "errors": [], "upload_s": None}
    history: list = []
    start.wait()
    try:
        if pdf is not None:
            began = time.monotonic()
            result = client.submit([handle_file(str(pdf))], api_name="/add_documents").result(timeout=ANSWER_TIMEOUT)
            out["upload_s"] = round(time.monotonic() - began, 2)
            out["upload_note"] = " ".join(re.sub(r"<[^>]+>", " ", str(result)).split())[-200:]
            questions = [*questions, PDF_QUESTION]
        if outsider:
            questions = [*questions, (PDF_QUESTION[0], [])]
        for k, (question, expect) in enumerate(questions):
            began = time.monotonic()
            try:
                chat, _, _ = client.submit(question, history, 4, 128, style, api_name="/ask").result(
                    timeout=ANSWER_TIMEOUT)
            except Exception as error:  # recorded, and the visitor goes on
                out["errors"].append(f"{question}: {type(error).__name__}: {error}"[:300])
                continue
            seconds = time.monotonic() - began
            answer = message_text(chat[-1])
            asked = [message_text(m).strip() for m in chat if m["role"] == "user"]
            own = [q for q, _ in questions[:k + 1]]
            out["answers"].append({"question": question, "answer": answer[:300], "seconds": round(seconds, 2),
                                   "correct": holds(answer, expect) if expect else not holds(answer, PDF_QUESTION[1]),
                                   "own_conversation": asked[-1] == question and set(asked) <= set(own)
                                   and len(chat) == 2 * len(asked)})
            history = chat
    finally:
        client.close()
    return out


def run(visitors: int, per_visitor: int, pages: int, style: str, work: Path) -> dict:
    load_before = list(os.getloadavg())
    pdf = work / "rapport-long.pdf"
    pdf.write_bytes(large_pdf(pages))
    server = Server(work, style, work / "server.log")
    try:
        started = time.monotonic()
        server.wait_ready()
        ready_s = time.monotonic() - started
        start = threading.Barrier(visitors)
        results: list[dict] = [{} for _ in range(visitors)]

        def one(i: int) -> None:
            chosen = [QUESTIONS[(i * per_visitor + k) % len(QUESTIONS)] for k in range(per_visitor)]
            try:
                results[i] = visitor(server.url, i, chosen, style, start, pdf if i == 0 else None,
                                     outsider=i == visitors - 1 and i > 0)
            except Exception as error:
                results[i] = {"visitor": i, "answers": [], "errors": [f"{type(error).__name__}: {error}"[:300]]}

        threads = [threading.Thread(target=one, args=(i,)) for i in range(visitors)]
        began = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall_s = time.monotonic() - began
        up = server.process.poll() is None and server.up()
    finally:
        server.stop()
    answers = [a for r in results for a in r.get("answers", [])]
    times = sorted(a["seconds"] for a in answers)
    expected = visitors * per_visitor + 1 + (visitors > 1)
    leaked = [a for r in results if r.get("visitor") != 0 for a in r.get("answers", [])
              if a["question"] == PDF_QUESTION[0] and not a["correct"]]
    return {
        "cpu": _cpu(), "cores": os.cpu_count(), "load_before": load_before, "visitors": visitors,
        "questions_per_visitor": per_visitor, "pdf_pages": pages, "pdf_bytes": pdf.stat().st_size, "style": style,
        "server_ready_s": round(ready_s, 1), "wall_s": round(wall_s, 1),
        "answers": len(answers), "expected_answers": expected,
        "errors": sum(len(r.get("errors", [])) for r in results),
        "correct": sum(a["correct"] for a in answers),
        "own_conversation": sum(a["own_conversation"] for a in answers),
        "p50_s": round(statistics.median(times), 1) if times else None,
        "p95_s": round(times[min(len(times) - 1, int(0.95 * len(times)))], 1) if times else None,
        "max_s": times[-1] if times else None,
        "upload_s": results[0].get("upload_s"), "pdf_not_in_others_libraries": not leaked,
        "peak_rss_mb": round(server.peak_rss / 2**20), "server_up_after": up,
        "load_after": list(os.getloadavg()), "visitors_detail": results,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--visitors", type=int, default=8)
    parser.add_argument("--questions", type=int, default=2, help="questions each visitor asks")
    parser.add_argument("--pages", type=int, default=100, help="pages of the uploaded PDF")
    parser.add_argument("--style", default="direct", choices=("direct", "extractive", "generative"))
    parser.add_argument("--json", type=Path, default=Path("load.json"))
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="qa-load-") as tmp:
        figures = run(args.visitors, args.questions, args.pages, args.style, Path(tmp))
    args.json.write_text(json.dumps(figures, ensure_ascii=False, indent=1), encoding="utf-8")
    print(json.dumps({k: v for k, v in figures.items() if k != "visitors_detail"}, ensure_ascii=False, indent=1))
    ok = (figures["errors"] == 0 and figures["answers"] == figures["expected_answers"]
          and figures["own_conversation"] == figures["answers"] and figures["server_up_after"])
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
