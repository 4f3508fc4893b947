"""Generation through a real OpenAI-compatible server: llama-cpp-python's own server (the
`scaleout` extra) with the packaged 0.5B GGUF, on a free loopback port, against the in-process
llama.cpp engine reading the same file. Greedy decoding on both sides: the same questions must get
the same answers and citations.

Marked scaleout: they start a real server and load real models. CI runs them (`.ci/run` installs
the extra); they are never skipped, so a missing server package is an error, not a skip.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from qa.errors import ModelError
from qa.generation import OpenAIGenerator
from qa.models import PACKAGED, prepare_gguf
from qa.pipeline import Pipeline
from qa.settings import Settings
from qa.translations import TranslationMemory

pytestmark = pytest.mark.scaleout

MODEL = "qwen2.5-coder-0.5b"  # the faster packaged model
# From tests/data/testset.jsonl: a French question, an English one over the French article, and an
# unanswerable one that the model has to decline.
QUESTIONS = {
    "fr-027": "Combien de modèles dérivés ont été construits à partir de la famille Qwen d'Alibaba ?",
    "en-007": "On which platform's leaderboards do Chinese open-source models reach the top positions?",
    "en-033": "Who is the CEO of DeepSeek?",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(gguf, threads: int, log_path) -> tuple[subprocess.Popen, str]:
    """llama-cpp-python's server on a free loopback port, once it answers; (process, base URL)."""
    port = free_port()
    command = [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--host", "127.0.0.1",
               "--port", str(port), "--n_threads", str(threads), "--n_threads_batch", str(threads),
               "--n_ctx", "4096", "--logits_all", "False", "--verbose", "False"]
    log = open(log_path, "wb")  # noqa: SIM115 (the server writes to it until the session ends)
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the llama.cpp server exited ({process.returncode}): see {log_path}")
        try:
            with urllib.request.urlopen(f"{url}/models", timeout=2) as response:
                json.load(response)
            return process, url
        except OSError:
            time.sleep(0.5)
    process.kill()
    raise RuntimeError(f"the llama.cpp server did not answer within 180 s: see {log_path}")


@pytest.fixture(scope="session")
def stack_settings(tmp_path_factory) -> Settings:
    return Settings.from_env(index_dir=tmp_path_factory.mktemp("scaleout") / "index", llm=MODEL,
                             engine="llama.cpp")


@pytest.fixture(scope="session")
def llama_server(stack_settings, tmp_path_factory):
    """The base URL of a llama.cpp server reading the packaged 0.5B GGUF."""
    gguf = prepare_gguf(stack_settings.cache_dir, PACKAGED[MODEL], progress=False)
    process, url = start_server(gguf, stack_settings.threads, tmp_path_factory.mktemp("server") / "server.log")
    yield url
    process.terminate()
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()


@pytest.fixture(scope="session")
def embedded(stack_settings) -> Pipeline:
    """The embedded stack: the 0.5B in process (translations in memory only, from empty)."""
    return Pipeline(stack_settings, translations=TranslationMemory(None)).load()


@pytest.fixture(scope="session")
def served(stack_settings, embedded, llama_server) -> Pipeline:
    """The same stack (embedder, index) with generation sent to the server."""
    settings = stack_settings.with_(llm=f"openai:qwen@{llama_server}")
    return Pipeline(settings, embedder=embedded.embedder, evidence_embedder=embedded.evidence_embedder,
                    index=embedded.index,
                    translations=TranslationMemory(None)).load()


@pytest.mark.parametrize("qid", list(QUESTIONS))
def test_the_server_gives_the_same_answer_and_citations_as_the_in_process_engine(embedded, served, qid):
    here, there = embedded.ask(QUESTIONS[qid]), served.ask(QUESTIONS[qid])
    assert there.models["llm"].startswith("openai:qwen@http://127.0.0.1:")
    assert there.draft == here.draft
    assert there.text == here.text and there.abstained == here.abstained
    assert [(c.n, c.chunk.chunk_id, c.quote) for c in there.citations] == \
        [(c.n, c.chunk.chunk_id, c.quote) for c in here.citations]
    if qid == "en-033":  # the model declined through the server too (the pipeline may still quote evidence)
        assert there.draft == "NOT FOUND"


def test_the_server_s_reply_arrives_in_pieces_as_it_is_written(served):
    arrivals = []
    for piece in served.generator.stream([{"role": "user", "content": "Count from one to twenty in words."}], 40):
        arrivals.append((time.perf_counter(), piece))
    assert len(arrivals) >= 10
    assert arrivals[-1][0] - arrivals[0][0] > 0.05  # not one block at the end


def test_a_server_that_is_down_is_one_line_from_the_cli(stack_settings, embedded):
    url = f"http://127.0.0.1:{free_port()}/v1"
    result = subprocess.run(
        [sys.executable, "-m", "qa", "ask", "Combien de modèles dérivés ?", "--llm", f"openai:qwen@{url}",
         "--index-dir", str(stack_settings.index_dir)],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "QA_SERVER_RETRIES": "1", "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 1
    assert result.stderr.startswith(f"qa: error: cannot reach the generation server at {url}")
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def test_a_server_slower_than_the_read_timeout_is_one_line(llama_server):
    # a prompt the server has not cached takes far longer than 0.05 s to read before its first token
    slow = OpenAIGenerator("qwen", llama_server, read_timeout=0.05, retries=2)
    prompt = [{"role": "user", "content": " ".join(f"mot{i}" for i in range(150)) + " Résume."}]
    with pytest.raises(ModelError, match=r"sent nothing for 0\.05 s") as error:
        list(slow.stream(prompt, 4))
    assert "\n" not in str(error.value)
