"""The web page end to end: `app.py` with the real default models, driven by headless Chromium.

The server runs as a subprocess on a free loopback port with its index in tmp_path. Chromium
is Debian's (`apt-get install chromium`); Playwright's own browser download is never used.
Screenshots go to `$QA_ARTIFACTS` (default: tmp_path); with `QA_UPDATE_SCREENSHOT=1` the
French answer's screenshot is also copied to docs/screenshot.png.

Answers take seconds each, up to a minute on a loaded 2-core machine: the waits are generous
and nothing asserts a duration.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
ANSWER_TIMEOUT_MS = 240_000
XSS = '<script>window.__xss=1</script><img src=x onerror="window.__xss=2">'
FR_QUESTION = "Combien de modèles dérivés ont été construits sur Qwen ?"
EN_QUESTION = "When was the US AI Action Plan published?"
CITATION = re.compile(r"\[(\d+)\]")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory) -> Path:
    folder = Path(os.environ.get("QA_ARTIFACTS") or tmp_path_factory.mktemp("artifacts"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def server(tmp_path_factory, artifacts) -> str:
    """`python app.py` on a free port, real models, a fresh index; its URL once it serves."""
    port = free_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False",
           "QA_INDEX_DIR": str(tmp_path_factory.mktemp("browser") / "index")}
    log_path = artifacts / "server.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen([sys.executable, "app.py", "--port", str(port)], cwd=ROOT,
                                   env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 600  # first start: index build and model load
    try:
        while True:
            if process.poll() is not None:
                pytest.fail(f"app.py exited with {process.returncode}:\n{log_path.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"app.py did not serve {url} in time:\n{log_path.read_text()[-3000:]}")
            time.sleep(1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: apt-get install -y chromium (CI installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, server):
    """A new visitor (own session) on the page, with outside requests recorded."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, locale="fr-FR")
    page = context.new_page()
    page.outside_requests = []
    page.on("request", lambda r: page.outside_requests.append(r.url)
            if not r.url.startswith((server, "data:", "blob:")) else None)
    page.goto(server)
    page.wait_for_selector("#qa-question textarea", timeout=60_000)
    yield page
    context.close()


def ask(page, question: str) -> str:
    """Type `question`, wait until its verified answer replaced the stream; the answer's text."""
    answers = page.locator("#qa-chat [data-testid='bot']")
    before = answers.count()
    page.fill("#qa-question textarea", question)
    page.press("#qa-question textarea", "Enter")
    page.wait_for_function(
        """n => {
            const bots = document.querySelectorAll("#qa-chat [data-testid='bot']");
            const sources = document.querySelector("#qa-sources");
            return bots.length === n && !bots[n - 1].innerText.includes("\u258d")
                && sources && !sources.querySelector(".qa-pending");
        }""",
        arg=before + 1, timeout=ANSWER_TIMEOUT_MS,
    )
    return answers.nth(before).inner_text()


def assert_cited_with_highlight(page, answer: str) -> None:
    cited = CITATION.findall(answer)
    assert cited, f"no [n] marker in {answer!r}"
    heads = page.locator("#qa-sources .qa-cited .qa-n").all_inner_texts()
    assert f"[{cited[0]}]" in heads
    marks = page.locator("#qa-sources .qa-cited mark")
    assert marks.count() >= 1 and marks.first.inner_text().strip()
    assert marks.first.is_visible()


def test_questions_in_french_and_english_get_cited_answers_with_highlighted_sources(page, artifacts):
    answer = ask(page, FR_QUESTION)
    assert "100 000" in answer.replace("\u202f", " ").replace("\xa0", " ")
    assert_cited_with_highlight(page, answer)
    page.screenshot(path=str(artifacts / "answer-fr.png"), full_page=True)
    if os.environ.get("QA_UPDATE_SCREENSHOT") == "1":
        (ROOT / "docs").mkdir(exist_ok=True)
        shutil.copy(artifacts / "answer-fr.png", ROOT / "docs" / "screenshot.png")

    answer = ask(page, EN_QUESTION)
    assert "2025" in answer and "July" in answer
    assert_cited_with_highlight(page, answer)
    assert len(page.locator("#qa-chat [data-testid='user']").all()) == 2
    page.screenshot(path=str(artifacts / "answer-en.png"), full_page=True)
    assert page.outside_requests == []  # offline: the page fetches nothing from elsewhere


def test_an_uploaded_document_with_markup_is_shown_literally_and_runs_nothing(page, artifacts,
                                                                              tmp_path):
    document = tmp_path / "coffre-zorglub.txt"
    document.write_text(f"{XSS}\nLe coffre-fort de la société Zorglub s’ouvre avec le code 4321.\n",
                        encoding="utf-8")
    fake_pdf = tmp_path / "faux.pdf"
    fake_pdf.write_text("not a PDF", encoding="utf-8")
    page.get_by_text("Vos documents · Your documents").click()
    upload = page.locator("#qa-files input[type='file']")
    upload.set_input_files(str(fake_pdf))  # refused, with the reason, and the box is emptied
    page.get_by_text("faux.pdf is not a PDF file").first.wait_for(timeout=ANSWER_TIMEOUT_MS)
    page.screenshot(path=str(artifacts / "upload-refused.png"))
    upload.set_input_files(str(document))
    page.wait_for_function(
        """() => (document.querySelector('#qa-documents') || {}).innerText?.includes('coffre-zorglub.txt')""",
        timeout=ANSWER_TIMEOUT_MS,
    )
    answer = ask(page, "Quel est le code du coffre-fort de la société Zorglub ?")
    page.wait_for_timeout(1000)  # an onerror handler would have fired by now
    assert page.evaluate("typeof window.__xss") == "undefined"
    sources = page.locator("#qa-sources")
    assert XSS in sources.text_content()  # the markup is there, as text
    assert sources.locator("script, img").count() == 0
    assert page.locator("#qa-chat img, #qa-chat script").count() == 0
    assert "coffre-zorglub.txt" in sources.text_content()
    assert "faux.pdf" not in page.locator("#qa-documents").inner_text()
    for details in sources.locator("details").all():  # show every passage in the screenshot
        details.evaluate("d => d.open = true")
    page.screenshot(path=str(artifacts / "upload-xss.png"), full_page=True)
    assert "4321" in answer or "ne le dit pas" in answer  # cited, or declined: never executed


def test_two_simultaneous_sessions_get_their_own_answers(server, monkeypatch):
    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "False")
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    from gradio_client import Client

    french, english = (Client(server, verbose=False, download_files=False) for _ in range(2))
    jobs = [french.submit(FR_QUESTION, [], 4, 64, "extractive", api_name="/ask"),
            english.submit(EN_QUESTION, [], 4, 64, "extractive", api_name="/ask")]
    (fr_chat, fr_sources, _), (en_chat, en_sources, _) = (j.result(timeout=600) for j in jobs)
    fr_answer, en_answer = message_text(fr_chat[-1]), message_text(en_chat[-1])
    assert "D’après les sources" in fr_answer and "100 000" in fr_answer.replace("\u202f", " ")
    assert "According to the sources" in en_answer and "2025" in en_answer
    assert "<mark>" in fr_sources and "<mark>" in en_sources
    assert len(fr_chat) == len(en_chat) == 2  # neither sees the other's conversation

    # each session remembers its own question: the follow-up is rewritten from it
    chat, _, _ = french.submit("Et Hunyuan ?", fr_chat, 4, 64, "extractive", api_name="/ask").result(timeout=600)
    assert "Question comprise : Combien de modèles dérivés ont été construits sur Hunyuan ?" in \
        message_text(chat[-1])
    for client in (french, english):
        client.close()


def message_text(message: dict) -> str:
    """A chat message's text as gradio_client returns it (a string or a list of parts)."""
    import html

    content = message["content"]
    if isinstance(content, list):
        content = " ".join(part.get("text", "") for part in content if isinstance(part, dict))
    return html.unescape(re.sub(r"<[^>]+>", " ", content))


def test_an_uploaded_pdf_is_cited_by_page_opened_at_the_span_and_removed(page, artifacts, tmp_path):
    """The server runs on loopback, so the page's library is the saved, shared one."""
    from tests.files import minimal_pdf

    pdf = tmp_path / "rapport-zorglub.pdf"
    pdf.write_bytes(minimal_pdf("Rapport annuel de la societe Zorglub.",
                                "Le code du coffre de la societe Zorglub est 4321."))
    page.get_by_text("Vos documents · Your documents").click()
    page.locator("#qa-files input[type='file']").set_input_files(str(pdf))
    page.wait_for_function(
        """() => (document.querySelector('#qa-documents') || {}).innerText?.includes('rapport-zorglub.pdf')""",
        timeout=ANSWER_TIMEOUT_MS,
    )
    answer = ask(page, "Quel est le code du coffre de la société Zorglub ?")
    assert "4321" in answer
    assert_cited_with_highlight(page, answer)
    card = page.locator("#qa-sources .qa-cited").first
    assert "rapport-zorglub.pdf" in card.inner_text() and "p. 2" in card.inner_text()
    page.screenshot(path=str(artifacts / "upload-pdf.png"), full_page=True)

    card.locator(".qa-open").click()  # the whole document, at the cited span
    page.wait_for_function(
        """() => (document.querySelector('#qa-viewer mark') || {}).innerText?.includes('4321')""",
        timeout=60_000,
    )
    viewer = page.locator("#qa-viewer")
    assert "Rapport annuel" in viewer.inner_text() and "p. 2" in viewer.inner_text()
    page.screenshot(path=str(artifacts / "viewer.png"), full_page=True)

    ask(page, FR_QUESTION)
    follow_up = ask(page, "Et Hunyuan ?")
    assert "Combien de modèles dérivés ont été construits sur Hunyuan ?" in follow_up  # shown, discreetly
    page.screenshot(path=str(artifacts / "follow-up.png"), full_page=True)

    names = page.locator("#qa-remove-names input")
    names.click()
    names.fill("rapport")
    page.get_by_role("option", name="rapport-zorglub.pdf").click()
    page.locator("#qa-remove").click()
    page.wait_for_function(
        """() => (document.querySelector('#qa-documents') || {}).innerText?.includes('Removed: rapport-zorglub.pdf')""",
        timeout=ANSWER_TIMEOUT_MS,
    )
    listed = page.locator("#qa-documents ul").inner_text()
    assert "rapport-zorglub.pdf" not in listed and "strategie-ia-open-source-chine.txt" in listed
