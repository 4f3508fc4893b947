"""The web page's functions, called as plain Python with the fake embedder and generator.

`app.chat` is a generator like the one Gradio drives: each yield is (chat messages, sources
HTML, session, text box). Uploads go through `app.upload` with files written to tmp_path.
"""

from __future__ import annotations

import html
import re
import shutil
import subprocess
import sys
from pathlib import Path

import gradio as gr
import pytest

import app
from qa import ui
from qa.chunking import chunk_documents
from qa.documents import MAX_UPLOAD_BYTES, read_upload, safe_filename
from qa.errors import IndexMismatchError, ModelError
from qa.index import extend_index, load_index
from qa.loading import make_document
from qa.pipeline import ABSTENTION
from qa.retrieval import Retriever
from tests.fakes import FakeEmbedder, FakeGenerator
from tests.files import minimal_docx, minimal_pdf

pytestmark = pytest.mark.usefixtures("model_always_drafts")  # the scripted drafts are used

QWEN = "Combien de modèles dérivés ont été construits sur Qwen ?"
QWEN_REPLY = " la famille Qwen compte plus de 100 000 modèles dérivés [1]."
XSS = '<script>window.__xss=1</script><img src=x onerror="window.__xss=2">'


def make_engine(settings, *replies: str) -> app.Engine:
    return app.Engine(settings, embedder=FakeEmbedder(), generator=FakeGenerator(replies=list(replies)))


def ask(engine, question, history=None, session=None, top_k=4, max_new_tokens=64):
    return list(app.chat(engine, question, history or [], session, top_k, max_new_tokens))


def last_message(outputs) -> str:
    return outputs[-1][0][-1]["content"]


def text_of(fragment: str) -> str:
    """What a person reads in an HTML fragment."""
    return html.unescape(re.sub(r"<[^>]+>", "", fragment))


# -- chat --------------------------------------------------------------------------------------


def test_the_answer_streams_as_growing_text_then_is_replaced_by_the_verified_answer(settings):
    settings = settings.with_(answer_style="generative")  # the draft is what streams
    engine = make_engine(settings, " Qwen d’Alibaba et Hunyuan de Tencent sont des exemples [1]. "
                                   "Le président de Baidu adore la pêche à la ligne [2].")
    outputs = ask(engine, "Quels modèles ont été publiés par les géants chinois ?")
    streamed = [history[-1]["content"] for history, *_ in outputs[:-1]]
    assert all(s.endswith(ui.CURSOR) for s in streamed)
    texts = [s.removesuffix(ui.CURSOR) for s in streamed]
    assert len(texts) > 5
    assert all(b.startswith(a) and len(b) >= len(a) for a, b in zip(texts, texts[1:], strict=False))
    assert "pêche" in texts[-1]  # the draft had the unsupported sentence...
    final = last_message(outputs)
    assert ui.CURSOR not in final and "Hunyuan" in final and "pêche" not in final  # ...not the answer
    assert re.search(r"\[\d\]", final)
    history, sources, session, box = outputs[-1]
    assert box == "" and [m["role"] for m in history] == ["user", "assistant"]
    assert history[0]["content"] == "Quels modèles ont été publiés par les géants chinois ?"
    assert session.questions == ("Quels modèles ont été publiés par les géants chinois ?",)


def test_extractive_answer_streams_the_quoted_evidence_not_the_draft(settings):
    engine = make_engine(settings, " Qwen compte 100 000 modèles [3].")
    outputs = ask(engine, QWEN)
    streamed = [text_of(history[-1]["content"]).removesuffix(ui.CURSOR) for history, *_ in outputs[:-1]]
    assert not any("Qwen compte" in s for s in streamed)  # the draft only decided; never shown
    final = text_of(last_message(outputs))
    assert "D’après les sources" in final and "100 000 modèles dérivés" in final and "«" in final
    assert re.search(r"» \[\d\]", final)
    assert "100 000 modèles dérivés" in outputs[-1][1].split("<mark>")[1].split("</mark>")[0]


def test_direct_answer_shows_the_best_evidence_before_the_model_writes(settings):
    engine = make_engine(settings.with_(answer_style="direct"), "Plus de 100 000 modèles dérivés [1].")
    outputs = ask(engine, QWEN)
    first_sources = next(sources for history, sources, *_ in outputs if "qa-preview" in sources)
    index = next(i for i, (_, sources, *_) in enumerate(outputs) if "qa-preview" in sources)
    assert "100 000 modèles dérivés" in first_sources.split("<mark>")[1].split("</mark>")[0]
    assert not text_of(outputs[index][0][-1]["content"]).removesuffix(ui.CURSOR).strip()  # nothing written yet
    final = text_of(last_message(outputs))
    assert final.startswith("Plus de 100 000 modèles dérivés") and "«" not in final


def test_the_answer_style_setting_is_honoured_per_request(settings):
    engine = make_engine(settings, QWEN_REPLY, QWEN_REPLY)
    quoted = text_of(last_message(list(app.chat(engine, QWEN, [], None, 4, 64, "extractive"))))
    written = text_of(last_message(list(app.chat(engine, QWEN, [], None, 4, 64, "generative"))))
    assert "«" in quoted and quoted.startswith("D’après les sources :")
    assert "«" not in written and "la famille Qwen compte plus de 100 000 modèles dérivés" in written


def test_sources_show_each_cited_passage_with_its_supporting_span_marked(settings):
    outputs = ask(make_engine(settings, QWEN_REPLY), QWEN)
    sources = outputs[-1][1]
    assert '<span class="qa-n">[1]</span>' in sources
    assert "strategie-ia-open-source-chine.txt" in sources
    marked = sources.split("<mark>")[1].split("</mark>")[0]
    assert "100 000 modèles dérivés" in marked
    assert "<details" in sources and "Autres passages retrouvés (3)" in sources  # uncited: folded
    assert "100 000" in last_message(outputs) and "[1]" in last_message(outputs)
    assert "Recherche dans les sources" in outputs[0][1]  # the panel says it is working


def test_an_abstention_is_styled_apart_in_the_question_language_with_the_closest_passages(settings):
    outputs = ask(make_engine(settings, " the sources do not say."), "Who founded Moonshot AI?")
    message = last_message(outputs)
    assert 'class="qa-abstention"' in message and "No answer in the sources" in message
    assert html.escape(ABSTENTION["en"]) in message
    assert "Closest passages: [1] strategie-ia-open-source-chine.txt" in message
    sources = outputs[-1][1]
    assert "Closest passages" in sources and "<mark>" not in sources
    assert sources.count('class="qa-source"') >= 2


def test_a_french_abstention_is_in_french(settings):
    outputs = ask(make_engine(settings, " DeepSeek propose un salaire de 250 000 dollars [1]."),
                  "Quel salaire exact DeepSeek propose-t-il ?")
    assert "Pas de réponse dans les sources" in last_message(outputs)
    assert "Passages les plus proches" in outputs[-1][1]


def test_a_follow_up_is_rewritten_before_retrieval_and_generation(settings, monkeypatch):
    retrieved: list[str] = []
    original = Retriever.retrieve

    def spy(self, question, language, top_k):
        retrieved.append(question)
        return original(self, question, language, top_k)

    monkeypatch.setattr(Retriever, "retrieve", spy)
    engine = make_engine(settings, QWEN_REPLY, " Hunyuan de Tencent est un exemple [1].")
    first = ask(engine, QWEN)
    history, _, session, _ = first[-1]
    second = ask(engine, "Et Hunyuan ?", history, session)
    standalone = "Combien de modèles dérivés ont été construits sur Hunyuan ?"
    assert retrieved == [QWEN, standalone]
    prompt = engine.base().generator.messages[-1][-1]["content"]
    assert prompt.endswith(f"Question : {standalone}")
    message = last_message(second)
    assert "Question comprise : " + standalone in text_of(message)
    assert [m["role"] for m in second[-1][0]] == ["user", "assistant"] * 2
    assert second[-1][2].questions == (QWEN, standalone)


def test_a_standalone_question_shows_no_rewrite(settings):
    assert "qa-rewrite" not in last_message(ask(make_engine(settings, QWEN_REPLY), QWEN))


def test_each_session_keeps_its_own_conversation(settings):
    engine = make_engine(settings, QWEN_REPLY, QWEN_REPLY, " Qwen est un modèle d’Alibaba [1].")
    a = ask(engine, QWEN)[-1][2]
    b = ask(engine, "Quels modèles Alibaba a-t-il publiés ?")[-1][2]
    outputs = ask(engine, "Et Qwen ?", session=b)
    assert outputs[-1][2].questions[-1] == "Quels modèles Qwen a-t-il publiés ?"
    assert a.questions == (QWEN,)


def test_the_settings_reach_the_pipeline(settings):
    engine = make_engine(settings, QWEN_REPLY)
    outputs = ask(engine, QWEN, top_k=2, max_new_tokens=32)
    assert len(re.findall(r'class="qa-source[ "]', outputs[-1][1])) == 2
    assert engine.base().settings.top_k == 4  # the shared pipeline is not changed


def test_clearing_the_chat_forgets_the_conversation(settings):
    session = ask(make_engine(settings, QWEN_REPLY), QWEN)[-1][2]
    cleared, sources = app.clear_chat(session)
    assert cleared.questions == () and "qa-empty" in sources


@pytest.mark.parametrize("question,message", [
    ("", "Type a question"), ("   ", "Type a question"),
    ("x" * 1001, "1001 characters long; the limit is 1000"),
])
def test_bad_questions_are_a_gr_error_before_anything_is_shown(settings, question, message):
    engine = make_engine(settings, "unused")
    with pytest.raises(gr.Error, match=message):
        ask(engine, question)
    assert engine._base.index is None  # nothing was loaded


class BrokenGenerator:
    name = "broken"

    def __init__(self, error: Exception) -> None:
        self.error = error

    def stream(self, messages, max_new_tokens, prefix=""):
        yield " la famille"
        raise self.error


@pytest.mark.parametrize("error,message", [
    (ModelError("generation failed: out of memory"), "generation failed: out of memory"),
    (RuntimeError("secret internals"), r"unexpected error \(RuntimeError\); see the server log"),
])
def test_failures_while_answering_are_one_line_gr_errors(settings, error, message):
    engine = app.Engine(settings, embedder=FakeEmbedder(), generator=BrokenGenerator(error))
    with pytest.raises(gr.Error, match=message) as raised:
        ask(engine, QWEN)
    assert "Traceback" not in str(raised.value) and "secret" not in str(raised.value)


# -- HTML safety -------------------------------------------------------------------------------


def test_document_and_model_markup_is_shown_as_text_never_as_html(settings, tmp_path):
    engine = make_engine(settings, f" Le mot de passe est {XSS} selon Zorglub [1].")
    evil = tmp_path / "evil<b>.txt"
    evil.write_text(f"{XSS}\nLe mot de passe du coffre de Zorglub est 4321.", encoding="utf-8")
    session, documents, _ = app.upload(engine, [str(evil)], None)
    assert "evil_b_.txt" in documents
    outputs = ask(engine, f"Quel est le mot de passe de Zorglub ? {XSS}", session=session)
    history, sources, *_ = outputs[-1]
    rendered = [m["content"] for m in history] + [sources, documents]
    rendered += [h[-1]["content"] for h, *_ in outputs]  # while streaming too
    for fragment in rendered:
        assert "<script" not in fragment and "<img" not in fragment and "onerror=\"" not in fragment
    assert html.escape(XSS) in sources  # shown, literally
    assert XSS in text_of(history[0]["content"])


def test_esc_and_highlight_escape_every_piece():
    assert ui.highlight("<i>a</i> b", 0, 8) == "<mark>&lt;i&gt;a&lt;/i&gt;</mark> b"
    assert ui.highlight("abc", 5, 9) == "abc"  # out of range: no mark, text intact
    assert ui.esc('"><script>') == "&quot;&gt;&lt;script&gt;"


# -- uploads -----------------------------------------------------------------------------------


SENTENCE = "Le coffre de Zorglub s'ouvre avec le code 4321."


@pytest.fixture
def good_files(tmp_path) -> dict[str, Path]:
    files = {
        "txt": tmp_path / "notes.txt", "md": tmp_path / "notes.md", "html": tmp_path / "page.html",
        "pdf": tmp_path / "rapport.pdf", "docx": tmp_path / "memo.docx",
    }
    files["txt"].write_text(SENTENCE, encoding="utf-8")
    files["md"].write_text(f"# Titre\n\n{SENTENCE} *Fin.*", encoding="utf-8")
    files["html"].write_text(f"<html><head><script>steal()</script></head><body><p>{SENTENCE}"
                             "</p></body></html>", encoding="utf-8")
    files["pdf"].write_bytes(minimal_pdf("Le coffre de Zorglub s'ouvre avec le code 4321."))
    minimal_docx(files["docx"], [SENTENCE])
    return files


@pytest.mark.parametrize("kind", ["txt", "md", "html", "pdf", "docx"])
def test_each_supported_type_is_read_to_its_text(good_files, kind):
    doc = read_upload(good_files[kind])
    assert "code 4321" in doc.text and doc.source == good_files[kind].name
    assert "steal" not in doc.text and "<" not in doc.text


def test_uploaded_documents_become_citable_sources_for_that_session_only(settings, good_files):
    engine = make_engine(settings, " le code du coffre de Zorglub est 4321 [1].",
                         " le code du coffre de Zorglub est 4321 [1].")
    steps = []
    session, documents, cleared = app.upload(
        engine, [str(p) for p in good_files.values()], None,
        progress=lambda fraction, desc=None: steps.append((fraction, desc)))
    assert cleared is None
    assert session.documents == tuple(p.name for p in good_files.values())
    for name in session.documents:
        assert name in documents
    assert steps and steps[-1][0] == 1.0 and any("Embedding" in (d or "") for _, d in steps)
    outputs = ask(engine, "Quel est le code du coffre de Zorglub ?", session=session)
    assert outputs[-1][2].pipeline is not None
    sources = outputs[-1][1]
    cited = sources.split("<details")[0]
    assert "4321" in cited and any(name in cited for name in session.documents)
    # another visitor, and the saved default index, still have the article alone
    saved = load_index(settings.index_dir)
    assert {c.source for c in saved.chunks} == {"strategie-ia-open-source-chine.txt"}
    assert {c.source for c in engine.base().index.chunks} == {"strategie-ia-open-source-chine.txt"}
    other = ask(engine, "Quel est le code du coffre de Zorglub ?")
    assert not any(name in other[-1][1] for name in session.documents)


def test_the_same_document_twice_is_added_once(settings, good_files):
    engine = make_engine(settings)
    session, _, _ = app.upload(engine, [str(good_files["txt"])], None)
    again, documents, _ = app.upload(engine, [str(good_files["txt"])], session)
    assert again is session and "Already there: notes.txt" in documents


def test_a_different_document_with_the_same_name_gets_a_distinct_name(settings, tmp_path):
    engine = make_engine(settings)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "notes.txt").write_text("Premier texte sur Zorglub.", encoding="utf-8")
    (tmp_path / "b" / "notes.txt").write_text("Second texte sur Zorglub.", encoding="utf-8")
    session, _, _ = app.upload(engine, [str(tmp_path / "a" / "notes.txt")], None)
    session, _, _ = app.upload(engine, [str(tmp_path / "b" / "notes.txt")], session)
    assert session.documents == ("notes.txt", "notes (2).txt")


def test_resetting_returns_to_the_default_documents_and_keeps_the_conversation(settings, good_files):
    engine = make_engine(settings, QWEN_REPLY)
    session = ask(engine, QWEN)[-1][2]
    session, _, _ = app.upload(engine, [str(good_files["txt"])], session)
    reset, documents = app.reset_documents(engine, session)
    assert reset.pipeline is None and reset.documents == () and reset.questions == (QWEN,)
    assert "notes.txt" not in documents and "strategie-ia-open-source-chine.txt" in documents


def bad_files(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("Le café de Zorglub coûte 4 €.".encode("latin-1", errors="replace"))
    fake_pdf = tmp_path / "fake.pdf"
    fake_pdf.write_text("this is not a PDF", encoding="utf-8")
    broken_pdf = tmp_path / "broken.pdf"
    broken_pdf.write_bytes(b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 9 0 R >> endobj\n%%EOF")
    fake_docx = tmp_path / "fake.docx"
    fake_docx.write_bytes(b"PK\x03\x04 not really a zip")
    old_doc = tmp_path / "old.docx"
    old_doc.write_bytes(b"\xd0\xcf\x11\xe0 an OLE2 .doc renamed")
    exe = tmp_path / "tool.exe"
    exe.write_bytes(b"MZ")
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    blank_pdf = tmp_path / "scan.pdf"
    blank_pdf.write_bytes(minimal_pdf(""))
    huge = tmp_path / "huge.txt"
    with open(huge, "wb") as f:  # sparse: no disk used
        f.truncate(MAX_UPLOAD_BYTES + 1)
    return {
        "non-utf8": (latin1, "latin1.txt is not UTF-8 text"),
        "fake pdf": (fake_pdf, "fake.pdf is not a PDF file"),
        "broken pdf": (broken_pdf, "broken.pdf"),
        "fake docx": (fake_docx, "fake.docx is not a readable .docx file"),
        "old doc": (old_doc, "old.docx is not a .docx file"),
        "exe": (exe, "tool.exe: unsupported file type '.exe'"),
        "empty": (empty, "empty.txt is empty"),
        # a blank page: read by OCR to nothing, or refused for the OCR a fresh machine lacks
        "scanned pdf": (blank_pdf, "scan.pdf has no text to index" if shutil.which("tesseract")
                        else "scan.pdf is a scanned PDF (no text layer) and OCR is not installed"),
        "too big": (huge, "huge.txt is 10.5 MB; the limit is 10 MB per file"),
    }


@pytest.mark.parametrize("case", ["non-utf8", "fake pdf", "broken pdf", "fake docx", "old doc",
                                  "exe", "empty", "scanned pdf", "too big"])
def test_an_unusable_file_is_a_gr_error_and_changes_nothing(settings, tmp_path, good_files, case):
    engine = make_engine(settings)
    session, _, _ = app.upload(engine, [str(good_files["txt"])], None)
    before = session.pipeline.index
    path, message = bad_files(tmp_path)[case]
    # with a good file in the same upload: all or nothing
    with pytest.raises(gr.Error, match="Nothing was added") as raised:
        app.upload(engine, [str(good_files["md"]), str(path)], session)
    assert message in str(raised.value)
    assert session.pipeline.index is before and before.vectors.ntotal == len(before.chunks)
    assert session.documents == ("notes.txt",)
    assert len(engine.base().index.chunks) == engine.base().index.vectors.ntotal


def test_no_files_is_no_change(settings):
    engine = make_engine(settings)
    session, documents, _ = app.upload(engine, None, None)
    assert session.documents == () and "strategie-ia-open-source-chine.txt" in documents


def test_too_much_text_in_one_session_is_refused(settings, tmp_path):
    big = tmp_path / "big.txt"
    big.write_text("Zorglub. " * 20, encoding="utf-8")
    with pytest.raises(gr.Error, match="the limit is 100"):
        app.upload(make_engine(settings.with_(max_session_chars=100)), [str(big)], None)


def test_a_visitor_may_upload_so_many_files_of_so_many_bytes(settings, tmp_path):
    files = []
    for n in range(3):
        files.append(tmp_path / f"n{n}.txt")
        files[-1].write_text(f"Note {n} sur Zorglub. " * 3, encoding="utf-8")
    engine = make_engine(settings.with_(max_uploads=2, max_upload_bytes=100))
    session, _, _ = app.upload(engine, [str(files[0])], None)
    with pytest.raises(gr.Error, match="you may add 2 documents in a session and have 1: remove some first"):
        app.upload(engine, [str(files[1]), str(files[2])], session)
    session, _, _ = app.upload(engine, [str(files[1])], session)
    assert session.documents == ("n0.txt", "n1.txt")
    big = tmp_path / "big.txt"
    big.write_text("Zorglub. " * 20, encoding="utf-8")
    with pytest.raises(gr.Error, match=r"big.txt is 0.0 MB; the limit is 0 MB per file"):
        app.upload(make_engine(settings.with_(max_upload_bytes=100)), [str(big)], None)


def test_a_visitor_asking_too_fast_is_told_when_to_try_again(settings, monkeypatch):
    clock = iter([100.0, 101.0, 102.0, 161.5, 0.0])
    monkeypatch.setattr(app, "clock", lambda: next(clock))
    engine = make_engine(settings.with_(questions_per_minute=2), QWEN_REPLY, QWEN_REPLY, QWEN_REPLY)
    session = ask(engine, QWEN)[-1][2]
    session = ask(engine, QWEN, session=session)[-1][2]
    with pytest.raises(gr.Error, match="Too many questions: at most 2 a minute; try again in 58 s"):
        ask(engine, QWEN, session=session)
    assert ask(engine, QWEN, session=session)[-1][0][-1]["content"]  # a minute later
    other = ask(make_engine(settings.with_(questions_per_minute=2), QWEN_REPLY), QWEN)  # another visitor
    assert other[-1][0][-1]["content"]


def test_the_visitor_limits_come_from_the_environment():
    from qa.settings import Settings

    s = Settings.from_env(env={"QA_MAX_UPLOADS": "3", "QA_QUESTIONS_PER_MINUTE": "5",
                               "QA_MAX_UPLOAD_BYTES": "1000", "QA_MAX_SESSION_CHARS": "500"})
    assert (s.max_uploads, s.questions_per_minute, s.max_upload_bytes, s.max_session_chars) == (3, 5, 1000, 500)
    with pytest.raises(Exception, match="questions_per_minute must be a positive integer, got 0"):
        Settings.from_env(env={"QA_QUESTIONS_PER_MINUTE": "0"})


@pytest.mark.parametrize("given,expected", [
    ("../../etc/passwd", "passwd"),
    ("..\\..\\Windows\\win.ini", "win.ini"),
    ("/abs/path/rapport.pdf", "rapport.pdf"),
    ("....txt", "document.txt"),
    (".hidden.md", "hidden.md"),
    ("a\x00b\x1b[31m;.txt", "ab[31m_.txt"),
    ("<script>.html", "_script_.html"),
    ("Étude d’impact (v2).docx", "Étude d_impact (v2).docx"),
    ("", "document"),
    ("x" * 300 + ".pdf", "x" * 76 + ".pdf"),
])
def test_file_names_are_made_safe_display_names(given, expected):
    assert safe_filename(given) == expected


def test_the_upload_name_not_the_path_names_the_document(tmp_path):
    path = tmp_path / "upload.txt"
    path.write_text(SENTENCE, encoding="utf-8")
    doc = read_upload(path, name="../../../../etc/cron.d/evil.txt")
    assert doc.source == "evil.txt" and "/" not in doc.doc_id


def test_extending_an_index_leaves_the_original_untouched(settings):
    engine = make_engine(settings)
    base = engine.base().index
    doc = make_document("z.txt", SENTENCE)
    chunks = chunk_documents([doc], 600, 150)
    extended = extend_index(base, chunks, FakeEmbedder())
    assert extended.vectors.ntotal == base.vectors.ntotal + len(chunks) == len(extended.chunks)
    assert base.vectors.ntotal == len(base.chunks)


def test_an_index_from_another_embedder_dimension_is_refused(settings):
    base = make_engine(settings).base().index
    doc = make_document("z.txt", SENTENCE)
    with pytest.raises(IndexMismatchError, match="dimensions"):
        extend_index(base, chunk_documents([doc], 600, 150), FakeEmbedder(dimension=64))


# -- follow-up rewriting -----------------------------------------------------------------------


@pytest.mark.parametrize("question,previous,expected", [
    ("Et Tencent ?", "Quels modèles Alibaba a-t-il publiés ?", "Quels modèles Tencent a-t-il publiés ?"),
    ("Et pour Baidu ?", "Quels modèles Alibaba a-t-il publiés ?", "Quels modèles Baidu a-t-il publiés ?"),
    ("Qu’en est-il de Tencent ?", "Quels modèles Alibaba a-t-il publiés ?",
     "Quels modèles Tencent a-t-il publiés ?"),
    ("And Tencent?", "Which models did Alibaba release?", "Which models did Tencent release?"),
    ("What about DeepSeek?", "How many models are built on Qwen?", "How many models are built on DeepSeek?"),
    ("Tencent ?", "Quels modèles Alibaba a-t-il publiés ?", "Quels modèles Tencent a-t-il publiés ?"),
    ("Et la Chine ?", "Quel rôle joue l’open source pour les États-Unis ?",
     "Quel rôle joue l’open source pour la Chine ?"),
    ("Which of them is from Alibaba?", "Which Chinese models lead the rankings?",
     "Which Chinese models lead the rankings? Which of them is from Alibaba?"),
    ("A-t-il été bien reçu ?", "Quand le plan d’action a-t-il été publié ?",
     "Quand le plan d’action a-t-il été publié ? A-t-il été bien reçu ?"),
    ("Pourquoi ?", "Quels modèles Alibaba a-t-il publiés ?",
     "Quels modèles Alibaba a-t-il publiés ? Pourquoi ?"),
    ("Et en 2024 ?", "Combien de modèles Qwen compte-t-il ?",
     "Combien de modèles Qwen compte-t-il ? Et en 2024 ?"),
    ("Et Tencent ?", "Combien de modèles Qwen compte-t-il ? Et en 2024 ?",
     "Combien de modèles Tencent compte-t-il ? Et en 2024 ?"),
    # standalone questions are left alone
    ("Quels modèles Alibaba a-t-il publiés ?", "Qui a publié le plan ?", "Quels modèles Alibaba a-t-il publiés ?"),
    ("When was the US AI Action Plan published?", "Who made Qwen?",
     "When was the US AI Action Plan published?"),
    ("Et Tencent ?", None, "Et Tencent ?"),
    # the answer must be in the language asked: no rewrite across languages
    ("What about Tencent?", "Quels modèles Alibaba a-t-il publiés ?", "What about Tencent?"),
])
def test_follow_up_questions_are_made_standalone(question, previous, expected):
    assert ui.standalone_question(question, previous) == expected


def test_a_chain_of_follow_ups_stays_short():
    question = "Quels modèles Alibaba a-t-il publiés ?"
    for _ in range(30):
        question = ui.standalone_question("Pourquoi ?", question)
    assert len(question) <= ui.MAX_CONTEXT_CHARS + 20


# -- the page ----------------------------------------------------------------------------------


def test_the_page_builds_without_loading_anything(settings):
    engine = make_engine(settings)
    demo = app.build_demo(engine)
    assert engine._base.index is None
    names = {fn.api_name for fn in demo.fns.values()}
    assert {"ask", "add_documents", "reset_documents"} <= names
    ask_fn = next(fn for fn in demo.fns.values() if fn.api_name == "ask")
    assert ask_fn.concurrency_limit == 1 and ask_fn.concurrency_id == "model"
    chatbot = next(b for b in demo.blocks.values() if isinstance(b, gr.Chatbot))
    assert chatbot.render_markdown is False and chatbot.sanitize_html is True
    assert chatbot.latex_delimiters == [] and chatbot.allow_tags is False


def test_the_page_events_work_for_a_new_visitor(settings):
    """A visitor's state is None until their first event: every handler must accept that."""
    demo = app.build_demo(make_engine(settings))
    state_only = [fn for fn in demo.fns.values()
                  if [type(b).__name__ for b in fn.inputs] == ["State"]]
    assert len(state_only) >= 4  # page load, reset, clear, failed upload
    for fn in state_only:
        outputs = fn.fn(None)
        assert outputs is not None


def test_importing_app_loads_no_model_and_not_gradio():
    code = ("import sys, app; print(sorted(m for m in ('gradio', 'torch', 'transformers', 'faiss')"
            " if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(app.__file__).parent)
    assert out.stdout.strip() == "[]"


def test_command_line_options():
    args = app.build_parser().parse_args([])
    assert (args.host, args.port, args.share) == ("127.0.0.1", 7860, False)
    args = app.build_parser().parse_args(["--port", "9000", "--host", "0.0.0.0", "--share"])
    assert (args.host, args.port, args.share) == ("0.0.0.0", 9000, True)


# ---------------------------------------------------------------------------------------------
# The library on the page: shared (saved) or per visitor, and the document viewer
# ---------------------------------------------------------------------------------------------


def shared_engine(settings, *replies: str) -> app.Engine:
    return app.Engine(settings, embedder=FakeEmbedder(), generator=FakeGenerator(replies=list(replies)),
                      shared_library=True)


def test_a_shared_library_keeps_uploads_across_a_restart_and_removes_them(settings, tmp_path):
    pdf = tmp_path / "rapport.pdf"
    pdf.write_bytes(minimal_pdf("Introduction du rapport.", "Le coffre de Zorglub s'ouvre avec le code 4321."))
    engine = shared_engine(settings)
    session, documents, _ = app.upload(engine, [str(pdf)], None)
    assert session.pipeline is None and "rapport.pdf" in documents and "2 p." in documents
    assert "rapport.pdf" in {e.name for e in load_index(settings.index_dir).manifest.documents}

    restarted = shared_engine(settings, " le code du coffre de Zorglub est 4321 [1].")
    assert "rapport.pdf" in app.removable(restarted, None)
    sources = ask(restarted, "Quel est le code du coffre de Zorglub ?")[-1][1]
    cited = sources.split("<details")[0]
    assert "rapport.pdf" in cited and "p. 2" in cited

    session, documents = app.remove_documents(restarted, ["rapport.pdf"], None)
    assert "rapport.pdf" not in documents.split("qa-note")[0] and "Removed: rapport.pdf" in documents
    assert "rapport.pdf" not in {e.name for e in load_index(settings.index_dir).manifest.documents}


def test_the_article_removed_from_a_shared_library_is_restored_with_one_click(settings):
    engine = shared_engine(settings)
    article = "strategie-ia-open-source-chine.txt"
    app.remove_documents(engine, [article], None)
    assert app.removable(engine, None) == []
    _, documents = app.restore_article(engine, None)
    assert app.removable(engine, None) == [article] and article in documents


def test_a_private_visitor_removes_only_their_own_documents(settings, good_files):
    engine = make_engine(settings)
    session, _, _ = app.upload(engine, [str(good_files["txt"]), str(good_files["md"])], None)
    assert app.removable(engine, session) == ["notes.txt", "notes.md"]
    with pytest.raises(gr.Error, match="only the documents you added"):
        app.remove_documents(engine, ["strategie-ia-open-source-chine.txt"], session)
    session, documents = app.remove_documents(engine, ["notes.txt"], session)
    assert session.documents == ("notes.md",) and "notes.txt" not in documents.split("qa-note")[0]
    names = {c.source for c in session.pipeline.index.chunks}
    assert names == {"strategie-ia-open-source-chine.txt", "notes.md"}
    with pytest.raises(gr.Error, match="Choose the documents"):
        app.remove_documents(engine, [], session)


def test_a_cited_source_opens_its_whole_document_at_the_span_escaped(settings, tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# Accès\n\nLe code <b>secret</b> de Zorglub est 4321.\n\n# Suite\n\nAutre chose.",
                    encoding="utf-8")
    engine = make_engine(settings, " le code de Zorglub est 4321 [1].")
    session, _, _ = app.upload(engine, [str(page)], None)
    outputs = ask(engine, "Quel est le code de Zorglub ?", session=session)
    sources = outputs[-1][1]
    target = html.unescape(re.search(r'data-qa-open="([^"]+)"', sources).group(1))
    viewer = app.open_document(engine, outputs[-1][2], target)
    marked = re.search(r'<mark id="qa-viewer-mark">(.*?)</mark>', viewer, re.S).group(1)
    assert "4321" in html.unescape(marked)
    assert "&lt;b&gt;secret&lt;/b&gt;" in viewer and "<b>" not in viewer  # text, never markup
    assert "Autre chose." in viewer and "§ Accès" in viewer  # the whole document, where it is
    with pytest.raises(gr.Error, match="no longer in the library"):
        app.open_document(engine, None, target)  # another visitor: not in their library
    with pytest.raises(gr.Error, match="does not point"):
        app.open_document(engine, session, "nonsense")


def test_the_library_is_shared_only_on_loopback_unless_asked():
    parse = app.build_parser().parse_args
    assert app.shares_library(parse([]))
    assert not app.shares_library(parse(["--host", "0.0.0.0"]))
    assert app.shares_library(parse(["--host", "0.0.0.0", "--library", "shared"]))
    assert not app.shares_library(parse(["--library", "private"]))


def test_the_sources_panel_click_reaches_the_viewer_with_its_target(settings):
    from gradio.helpers import special_args

    engine = make_engine(settings)
    demo = app.build_demo(engine)
    [fn] = [f for f in demo.fns.values() if f.name == "open_fn"]
    event = gr.EventData(None, {"open": "nowhere:0:1"})
    inputs, *_ = special_args(fn.fn, inputs=[None], event_data=event)
    assert inputs[1]._data == {"open": "nowhere:0:1"}  # Gradio hands the button's target over
    with pytest.raises(gr.Error, match="no longer in the library"):
        fn.fn(*inputs)
