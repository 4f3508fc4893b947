"""The OpenAI-compatible server generator against a tiny fake server (stdlib http.server in a
thread, on loopback): what it sends, retries, timeouts and its one-line errors. The real server
(llama.cpp's) is in test_scaleout_generation.py."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from qa.errors import ModelError, SettingsError
from qa.generation import Likelihoods, OpenAIGenerator, make_generator
from qa.pipeline import Pipeline
from qa.settings import Settings
from tests.fakes import FakeEmbedder

Behaviour = Callable[[BaseHTTPRequestHandler], None]


def chunk(text: str) -> bytes:
    event = {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "m",
             "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]}
    return f"data: {json.dumps(event)}\n\n".encode()


def _start_events(handler: BaseHTTPRequestHandler) -> None:
    handler.send_response(200)
    handler.send_header("Content-Type", "text/event-stream")
    handler.send_header("Transfer-Encoding", "chunked")
    handler.end_headers()


def _send(handler: BaseHTTPRequestHandler, data: bytes) -> None:
    handler.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
    handler.wfile.flush()


def replies(*pieces: str) -> Behaviour:
    def behave(handler):
        _start_events(handler)
        for piece in pieces:
            _send(handler, chunk(piece))
        _send(handler, b"data: [DONE]\n\n")
        handler.wfile.write(b"0\r\n\r\n")
    return behave


def fails(status: int, message: str) -> Behaviour:
    def behave(handler):
        body = json.dumps({"error": {"message": message, "type": "server_error"}}).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)
    return behave


def hangs(seconds: float) -> Behaviour:
    def behave(handler):
        time.sleep(seconds)
        replies("late")(handler)
    return behave


def drops_after(*pieces: str) -> Behaviour:
    """Streams `pieces`, then the connection is cut mid-body (no end chunk)."""
    def behave(handler):
        _start_events(handler)
        for piece in pieces:
            _send(handler, chunk(piece))
        handler.close_connection = True
        handler.connection.shutdown(socket.SHUT_RDWR)
    return behave


class FakeServer:
    """Answers POST /v1/chat/completions with the next behaviour; records each request's JSON
    body and headers."""

    def __init__(self, *behaviours: Behaviour) -> None:
        self.behaviours = list(behaviours)
        self.requests: list[dict] = []
        self.headers: list[dict] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):  # noqa: N802 (http.server's naming)
                length = int(self.headers.get("Content-Length") or 0)
                server.requests.append(json.loads(self.rfile.read(length) or b"{}"))
                server.headers.append(dict(self.headers))
                behave = server.behaviours.pop(0) if server.behaviours else replies("?")
                try:
                    behave(self)
                except OSError:  # the client gave up (a timeout): nothing to answer
                    pass

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def serve():
    servers: list[FakeServer] = []

    def start(*behaviours: Behaviour) -> FakeServer:
        servers.append(FakeServer(*behaviours))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def generator(url: str, **options) -> OpenAIGenerator:
    return OpenAIGenerator("qwen", url, **{"backoff": 0.0, "read_timeout": 5.0, **options})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_reply_streams_in_pieces_decoded_greedily_with_the_engine_s_stop_sequences(serve):
    server = serve(replies("Qwen", " compte", " 100 000", " modèles [1]."))
    pieces = list(generator(server.url).stream([{"role": "user", "content": "Combien ?"}], 32))
    assert pieces == ["Qwen", " compte", " 100 000", " modèles [1]."]
    sent = server.requests[0]
    assert sent["model"] == "qwen" and sent["stream"] is True and sent["max_tokens"] == 32
    assert sent["messages"] == [{"role": "user", "content": "Combien ?"}]
    assert sent["temperature"] == 0 and sent["top_k"] == 1 and sent["repeat_penalty"] == 1.0
    assert sent["stop"] == ["\n\n", "<|im_end|>", "<|endoftext|>"]


def test_a_reply_that_repeats_the_prefix_put_in_the_model_s_mouth_is_not_yielded_twice(serve):
    server = serve(replies("D'après", " les sources,", " Qwen", " [1]."), replies("Qwen [1]."))
    g = generator(server.url)
    assert "".join(g.stream([{"role": "user", "content": "?"}], 8, prefix="D’après les sources,")) == " Qwen [1]."
    assert "".join(g.stream([{"role": "user", "content": "?"}], 8, prefix="D’après les sources,")) == " Qwen [1]."


def test_a_server_that_is_down_is_one_line_naming_it_and_how_to_start_it_after_the_retries(caplog):
    url = f"http://127.0.0.1:{free_port()}/v1"
    with caplog.at_level(logging.INFO, logger="qa.generation"), pytest.raises(ModelError) as error:
        list(generator(url, retries=2).stream([{"role": "user", "content": "?"}], 8))
    message = str(error.value)
    assert message.startswith(f"cannot reach the generation server at {url}") and "\n" not in message
    assert "3 tries" in message and "llama_cpp.server" in message
    assert sum("trying again" in r.message for r in caplog.records) == 2


def test_a_busy_server_is_asked_again_before_the_first_token(serve):
    server = serve(fails(503, "loading model"), replies("Qwen [1]."))
    assert list(generator(server.url, retries=1).stream([{"role": "user", "content": "?"}], 8)) == ["Qwen [1]."]
    assert len(server.requests) == 2


def test_an_error_reply_is_one_line_with_the_server_s_message_and_not_retried(serve):
    server = serve(fails(400, "the prompt is\ntoo long"))
    with pytest.raises(ModelError, match=r"server at http://127\.0\.0\.1:\d+/v1 answered 400: the prompt is too long$"):
        list(generator(server.url, retries=2).stream([{"role": "user", "content": "?"}], 8))
    assert len(server.requests) == 1


def test_a_server_that_sends_nothing_within_the_read_timeout_is_one_line_and_not_asked_again(serve):
    server = serve(hangs(1.5))
    started = time.perf_counter()
    with pytest.raises(ModelError, match=r"sent nothing for 0\.3 s.*QA_SERVER_READ_TIMEOUT") as error:
        list(generator(server.url, read_timeout=0.3, retries=2).stream([{"role": "user", "content": "?"}], 8))
    assert "\n" not in str(error.value)
    assert time.perf_counter() - started < 1.4 and len(server.requests) == 1


def test_a_stream_cut_after_tokens_were_shown_is_never_sent_again(serve):
    server = serve(drops_after("Qwen", " compte"), replies("never sent"))
    received = []
    with pytest.raises(ModelError, match="stopped mid-answer.*not sent again"):
        for piece in generator(server.url, retries=2).stream([{"role": "user", "content": "?"}], 8):
            received.append(piece)
    assert received == ["Qwen", " compte"] and len(server.requests) == 1


def test_the_api_key_comes_from_qa_openai_api_key_else_openai_api_key(serve, monkeypatch):
    server = serve(replies("a"), replies("b"), replies("c"))
    monkeypatch.delenv("QA_OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    list(generator(server.url).stream([{"role": "user", "content": "?"}], 1))
    monkeypatch.setenv("OPENAI_API_KEY", "sk-general")
    list(generator(server.url).stream([{"role": "user", "content": "?"}], 1))
    monkeypatch.setenv("QA_OPENAI_API_KEY", "sk-qa")
    list(generator(server.url).stream([{"role": "user", "content": "?"}], 1))
    keys = [{k.lower(): v for k, v in h.items()}["authorization"] for h in server.headers]
    assert keys == ["Bearer none", "Bearer sk-general", "Bearer sk-qa"]


def test_openai_model_at_url_names_a_server_generator_with_the_settings_timeouts(tmp_path):
    g = make_generator("openai:Qwen/Qwen2.5-1.5B-Instruct@http://127.0.0.1:8080/v1/", tmp_path,
                       connect_timeout=2.0, read_timeout=30.0, retries=4)
    assert isinstance(g, OpenAIGenerator)
    assert (g.model, g.base_url, g.name) == ("Qwen/Qwen2.5-1.5B-Instruct", "http://127.0.0.1:8080/v1",
                                             "openai:Qwen/Qwen2.5-1.5B-Instruct@http://127.0.0.1:8080/v1")
    assert (g.connect_timeout, g.read_timeout, g.retries) == (2.0, 30.0, 4)


@pytest.mark.parametrize("name", ["openai:qwen", "openai:@http://x/v1", "openai:qwen@127.0.0.1:8080"])
def test_a_malformed_server_name_is_refused_with_the_spelling(tmp_path, name):
    with pytest.raises(ModelError, match="openai:<model>@<base-url>, e.g. openai:qwen@http://127.0.0.1:8080/v1"):
        make_generator(name, tmp_path)


def test_server_timeouts_and_retries_come_from_qa_variables():
    s = Settings.from_env(env={"QA_SERVER_READ_TIMEOUT": "2.5", "QA_SERVER_CONNECT_TIMEOUT": "1",
                               "QA_SERVER_RETRIES": "0"})
    assert (s.server_read_timeout, s.server_connect_timeout, s.server_retries) == (2.5, 1.0, 0)
    with pytest.raises(SettingsError, match="QA_SERVER_READ_TIMEOUT must be a number, got 'soon'"):
        Settings.from_env(env={"QA_SERVER_READ_TIMEOUT": "soon"})
    with pytest.raises(SettingsError, match="server_read_timeout must be a positive number of seconds, got 0.0"):
        Settings.from_env(env={"QA_SERVER_READ_TIMEOUT": "0"})


def test_without_likelihoods_the_extractive_style_says_it_skips_the_rerank(settings, caplog):
    g = OpenAIGenerator("qwen", f"http://127.0.0.1:{free_port()}/v1")
    assert not isinstance(g, Likelihoods)
    with caplog.at_level(logging.INFO, logger="qa.pipeline"):
        Pipeline(settings, embedder=FakeEmbedder(), generator=g).load()  # no request: nothing to warm
    assert any("skips its query-likelihood rerank" in r.message for r in caplog.records)
