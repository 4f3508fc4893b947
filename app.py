"""The web page: `python app.py [--host 127.0.0.1] [--port 7860] [--library shared|private] [--share]`.

A thin adapter over `qa.pipeline.Pipeline`, `qa.library` and `qa.ui`: the chat function streams
the draft, then puts the verified answer in its place and fills the sources panel; a source's
button opens its document at the cited span. Uploads join the saved library (`--library
shared`, the default on loopback: one person's own machine) or the visitor's own in-memory index
(`private`, the default for any other host, so that visitors never see each other's files).
`QAError`s become `gr.Error`s (one line, no traceback).

The models and the default index load once, in `main()` before the server starts (or at the
first request when `Engine` is used on its own), never at import: `import app` loads neither
the models nor Gradio. Every visitor has their own `qa.ui.Session` (conversation, documents) in
a `gr.State`; they share the loaded embedder and generator. Generation is CPU-bound and the
generator runs one request at a time, so the model events share one queue slot
(`concurrency_limit=1`): the queue shows a waiting visitor their position.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qa import library, ui
from qa.documents import UPLOAD_SUFFIXES, read_upload
from qa.errors import CorpusError, InputError, QAError
from qa.index import Index
from qa.language import detect_language
from qa.loading import BUNDLED, Source, bundled_document
from qa.pipeline import Pipeline, validate_question
from qa.settings import Settings
from qa.stores import make_store
from qa.types import Answer, Preview

if TYPE_CHECKING:
    import gradio as gr

log = logging.getLogger("qa.app")

EXAMPLES = [
    "Combien de modèles dérivés ont été construits sur Qwen ?",
    "Quels modèles Alibaba a-t-il publiés ?",
    "When was the US AI Action Plan published?",
    "Which Chinese companies release open-weight models?",
    "Quel salaire exact DeepSeek propose-t-il ?",
]
HistoryItem = dict[str, Any]
clock = time.monotonic  # when questions are asked, against Settings.questions_per_minute

CSS = """
#qa-chat .qa-abstention { border-left: 4px solid #d97706; background: #fffbeb; color: #78350f;
  padding: .4em .7em; border-radius: 4px; }
#qa-chat .qa-badge { display: inline-block; font-size: .8em; font-weight: 600; background: #fde68a;
  color: #78350f; border-radius: 3px; padding: 0 .4em; margin-right: .3em; }
#qa-chat .qa-closest { font-size: .9em; margin-top: .3em; }
#qa-chat .qa-rewrite { font-size: .8em; opacity: .7; font-style: italic; margin-top: .4em; }
.qa-sources { font-size: .92em; }
.qa-sources-title { font-weight: 600; margin: .2em 0 .5em; }
.qa-empty { opacity: .7; font-style: italic; padding: .5em 0; }
.qa-source { border: 1px solid var(--border-color-primary); border-radius: 6px; padding: .5em .7em;
  margin-bottom: .6em; background: var(--background-fill-secondary); }
.qa-source.qa-cited { border-left: 4px solid #2563eb; }
.qa-source-head { font-size: .9em; margin-bottom: .3em; }
.qa-n { font-weight: 700; color: #2563eb; }
.qa-doc { font-weight: 600; }
.qa-where { opacity: .6; font-size: .85em; }
.qa-passage { white-space: normal; line-height: 1.45; }
.qa-passage mark { background: #fde047; color: inherit; padding: 0 .1em; border-radius: 2px; }
.qa-others summary { cursor: pointer; margin: .4em 0; opacity: .8; }
.qa-documents { margin: 0 0 .5em 1.2em; font-size: .9em; }
.qa-documents .qa-uploaded { font-weight: 600; }
.qa-library-head { font-size: .85em; opacity: .75; margin-bottom: .2em; }
.qa-open { font-size: .8em; margin-left: .4em; padding: 0 .4em; border-radius: 3px; cursor: pointer;
  border: 1px solid var(--border-color-primary); background: var(--background-fill-primary); }
.qa-viewer-head { font-size: .9em; margin-bottom: .4em; }
.qa-viewer-text { white-space: pre-wrap; max-height: 420px; overflow-y: auto; line-height: 1.45;
  font-size: .92em; position: relative; }
.qa-viewer-text mark { background: #fde047; color: inherit; }
"""


class Engine:
    """The models and the default index, loaded once and shared by every visitor.

    With `shared_library`, documents added or removed from the page change the saved library
    (`qa docs` sees them, and they survive a restart); without, a visitor's uploads are theirs
    alone and last as long as their session."""

    def __init__(self, settings: Settings | None = None, embedder=None, generator=None,
                 index=None, shared_library: bool = False) -> None:
        self.settings = settings or Settings.from_env()
        self.shared_library = shared_library
        self._base = Pipeline(self.settings, embedder=embedder, generator=generator, index=index)
        self._lock = threading.Lock()

    def base(self) -> Pipeline:
        """The default pipeline, loaded (once: concurrent first requests wait for one load), with
        the changes other processes made to a shared PostgreSQL library."""
        with self._lock:
            return self._base.load().refresh()

    def change_library(self, change: Callable[[Index, Any], Index]) -> Pipeline:
        """Apply `change(index, embedder)` to the shared library, save it, and answer from it."""
        with self._lock:
            base = self._base.load().refresh()
            index = change(base.index, base.embedder)
            if index is not base.index:
                store = base.store or make_store(self.settings)
                self._base = base.with_index(store.save(index))
                self._base.store = base.store
            return self._base

    def models_line(self) -> str:
        embedder = getattr(self._base.embedder, "name", None) or self.settings.embedder
        evidence = getattr(self._base.evidence_embedder, "name", None) or self.settings.evidence_embedder
        llm = getattr(self._base.generator, "name", None) or self.settings.llm
        evidence = "" if evidence == embedder else f" (evidence: `{evidence}`)"
        return f"Modèles / Models — embedder: `{embedder}`{evidence} · LLM: `{llm}`"


def _gr():
    import gradio as gr

    return gr


def user_error(message: str) -> Exception:
    """What the visitor reads: a `gr.Error` with one line."""
    return _gr().Error(message)


def _pending_sources(language: str) -> str:
    text = "Recherche dans les sources…" if language == "fr" else "Searching the sources…"
    return f'<div class="qa-sources qa-empty qa-pending">{ui.esc(text)}</div>'


def chat(engine: Engine, message: str, history: list[HistoryItem] | None, session: ui.Session | None,
         top_k: float | None = None, max_new_tokens: float | None = None,
         answer_style: str | None = None,
         ) -> Iterator[tuple[list[HistoryItem], str, ui.Session, str]]:
    """Answer `message` in the conversation: yields (chat messages, sources HTML, session,
    text box) as the answer streams; the last yield holds the verified answer."""
    session = session or ui.Session()
    history = list(history or [])
    settings = engine.settings
    try:
        if not (message or "").strip():
            raise InputError("Écrivez une question. / Type a question.")
        asked = validate_question(message, settings.max_question_chars)
        session = ui.check_rate(session, clock(), settings.questions_per_minute)
        settings = settings.with_(top_k=int(top_k) if top_k else None,
                                  max_new_tokens=int(max_new_tokens) if max_new_tokens else None,
                                  answer_style=answer_style or None)
    except QAError as error:
        raise user_error(str(error)) from None
    question = ui.standalone_question(asked, session.previous)
    if len(question) > settings.max_question_chars:
        question = asked
    history.append({"role": "user", "content": ui.user_html(asked)})
    history.append({"role": "assistant", "content": ui.draft_html("")})
    pending = _pending_sources(detect_language(asked, default="fr"))
    yield list(history), pending, session, ""
    draft = ""
    try:
        base = engine.base()
        pipeline = (session.pipeline or base).with_settings(settings)
        answer = None
        for event in pipeline.stream(question):
            if isinstance(event, Answer):
                answer = event
                continue
            if isinstance(event, Preview):  # the best evidence, at once, while the model writes
                pending = ui.preview_html(event)
                yield list(history), pending, session, ""
                continue
            draft += event
            history[-1] = {"role": "assistant", "content": ui.draft_html(draft)}
            yield list(history), pending, session, ""
    except QAError as error:
        raise user_error(str(error)) from None
    except Exception as error:
        log.exception("answering %r failed", question)
        raise user_error(f"unexpected error ({type(error).__name__}); see the server log") from None
    if answer is None:  # the pipeline always ends with an Answer; guard the contract anyway
        raise user_error("no answer was produced; see the server log")
    history[-1] = {"role": "assistant", "content": ui.answer_html(answer, asked)}
    session = replace(session, questions=session.questions + (answer.question,))
    yield history, ui.sources_html(answer), session, ""


def _paths(files: Any) -> list[Path]:
    if not files:
        return []
    if not isinstance(files, (list, tuple)):
        files = [files]
    # gr.File gives paths (str); gradio_client and older versions may give dicts or objects
    out = []
    for f in files:
        if isinstance(f, dict):
            f = f.get("path") or f.get("name")
        out.append(Path(getattr(f, "name", f)))
    return out


def upload(engine: Engine, files: Any, session: ui.Session | None,
           progress: Callable[..., object] | None = None) -> tuple[ui.Session, str, None]:
    """Add uploaded files: to the shared library, or to the visitor's own index; all of them,
    or none when one can't be used.

    Returns (session, documents HTML, None to clear the upload box)."""
    session = session or ui.Session()
    paths = _paths(files)
    try:
        base = engine.base()
        if not paths:
            return session, documents_panel(engine, session), None
        limit = engine.settings.max_uploads
        if not engine.shared_library and len(session.documents) + len(paths) > limit:
            raise CorpusError(f"you may add {limit} documents in a session and have "
                              f"{len(session.documents)}: remove some first")
        docs = []
        for i, path in enumerate(paths):
            if progress is not None:
                progress(i / len(paths), desc=f"Reading {path.name}")
            docs.append(read_upload(path, max_bytes=engine.settings.max_upload_bytes))
        if engine.shared_library:
            change = None

            def adding(index, embedder):
                nonlocal change
                change = ui.add_to_index(index, docs, embedder, progress)
                return change.index

            engine.change_library(adding)
            new, added, skipped = session, list(change.added), list(change.skipped)
        else:
            new, added, skipped = ui.add_documents(session, base, docs, progress,
                                                   max_chars=engine.settings.max_session_chars)
    except QAError as error:
        raise user_error(f"{error}. Nothing was added: your documents are as they were.") from None
    except Exception as error:
        log.exception("adding %s failed", [p.name for p in paths])
        raise user_error(f"unexpected error while reading the files ({type(error).__name__}). "
                         "Nothing was added.") from None
    note = ""
    if added:
        note += f"Ajouté / Added: {', '.join(added)}. "
    if skipped:
        note += f"Déjà là / Already there: {', '.join(skipped)}."
    return new, documents_panel(engine, new, note), None


def remove_documents(engine: Engine, names: Sequence[str] | None, session: ui.Session | None
                     ) -> tuple[ui.Session, str]:
    """Remove documents by name: from the shared library, or from the visitor's own uploads."""
    session = session or ui.Session()
    names = [n for n in (names or []) if n]
    if not names:
        raise user_error("Choisissez les documents à retirer. / Choose the documents to remove.")
    try:
        if engine.shared_library:
            engine.change_library(lambda index, embedder: library.remove(index, names))
        else:
            theirs = [n for n in names if n in session.documents]
            if len(theirs) < len(names) or session.pipeline is None:
                raise CorpusError("only the documents you added can be removed here")
            smaller = library.remove(session.pipeline.index, theirs)
            session = replace(session, pipeline=engine.base().with_index(smaller),
                              documents=tuple(n for n in session.documents if n not in theirs))
    except QAError as error:
        raise user_error(f"{error}. Nothing was removed.") from None
    return session, documents_panel(engine, session, f"Retiré / Removed: {', '.join(names)}.")


def restore_article(engine: Engine, session: ui.Session | None) -> tuple[ui.Session, str]:
    """Put the bundled article back in the shared library."""
    session = session or ui.Session()
    if not engine.shared_library:
        return reset_documents(engine, session)
    bundled = bundled_document()
    article = Source(bundled, BUNDLED, len(bundled.text.encode()))
    engine.change_library(lambda index, embedder: library.add(index, [article], embedder).index)
    return session, documents_panel(engine, session, f"Ajouté / Added: {bundled.source}.")


def reset_documents(engine: Engine, session: ui.Session | None) -> tuple[ui.Session, str]:
    """Back to the default documents; the conversation goes on."""
    session = replace(session or ui.Session(), pipeline=None, documents=(), chars=0)
    return session, documents_panel(engine, session, "Vos documents sont retirés. / Your "
                                                     "documents were removed.")


def clear_chat(session: ui.Session | None) -> tuple[ui.Session, str]:
    return replace(session or ui.Session(), questions=()), ui.sources_html(None)


def documents_panel(engine: Engine, session: ui.Session | None, note: str = "") -> str:
    """The documents a visitor's questions are answered from, and what just happened to them."""
    session = session or ui.Session()
    index = (session.pipeline or engine.base()).index
    return ui.library_html(index.manifest.documents, session.documents, engine.shared_library, note)


def removable(engine: Engine, session: ui.Session | None) -> list[str]:
    """The names a visitor may remove: every document of a shared library, else their own."""
    session = session or ui.Session()
    if engine.shared_library:
        return [e.name for e in engine.base().index.manifest.documents]
    return list(session.documents)


def open_document(engine: Engine, session: ui.Session | None, target: str) -> str:
    """The viewer's HTML for `target` ("doc_id:start:end" from a source's button)."""
    session = session or ui.Session()
    try:
        doc_id, start, end = str(target).rsplit(":", 2)
        start, end = int(start), int(end)
    except ValueError:
        raise user_error("this link does not point at a document") from None
    index = (session.pipeline or engine.base()).index
    doc = index.document(doc_id)
    if doc is None:
        raise user_error("this document is no longer in the library")
    language = session_language(session)
    return ui.document_html(doc, start, end, language)


def session_language(session: ui.Session) -> str:
    last = session.previous
    return detect_language(last, default="fr") if last else "fr"


# The sources panel's "open in the document" buttons: one listener for whatever the panel holds.
OPEN_ON_CLICK = """
element.addEventListener('click', (event) => {
  const button = event.target.closest('[data-qa-open]');
  if (button) trigger('click', {open: button.dataset.qaOpen});
});
"""
# The viewer scrolls to the cited span each time it shows a document.
SCROLL_TO_MARK = """
watch('value', () => {
  const mark = element.querySelector('#qa-viewer-mark');
  const box = element.querySelector('.qa-viewer-text');
  if (mark && box) box.scrollTop = mark.offsetTop - box.offsetTop - box.clientHeight / 3;
});
"""


def build_demo(engine: Engine) -> gr.Blocks:
    """The page. Nothing is loaded here: the first event (or `main`) loads the models."""
    gr = _gr()
    settings = engine.settings

    def chat_fn(message, history, session, top_k, max_new_tokens, answer_style):
        yield from chat(engine, message, history, session, top_k, max_new_tokens, answer_style)

    def upload_fn(files, session, progress=gr.Progress()):  # noqa: B008 (Gradio's idiom)
        return upload(engine, files, session, progress)

    with gr.Blocks(title="qa-sources", analytics_enabled=False) as demo:
        session = gr.State(None)  # each visitor's ui.Session, made at their first event
        gr.Markdown(
            "## Questions sur vos documents · Ask your documents\n"
            "Posez une question en français ou en anglais : la réponse cite ses sources `[n]`, "
            "vérifiées sur les passages. Ask in French or English: answers cite checked "
            "sources `[n]`, and say so when the documents don't answer."
        )
        with gr.Row(equal_height=False):
            with gr.Column(scale=3):
                chatbot = gr.Chatbot(
                    elem_id="qa-chat", label="Conversation", height=480,
                    # Messages are HTML written by qa.ui with every text escaped: no Markdown,
                    # LaTeX or custom tags are interpreted, and Gradio's sanitiser still runs.
                    render_markdown=False, sanitize_html=True, latex_delimiters=[],
                    allow_tags=False, feedback_options=None, buttons=["copy"],
                    placeholder="Posez une question ci-dessous. · Ask a question below.",
                )
                message = gr.Textbox(
                    elem_id="qa-question", show_label=False, max_lines=4, autofocus=True,
                    placeholder="Votre question… · Your question… (Entrée / Enter)",
                    submit_btn="Envoyer / Send",
                )
                examples = gr.Examples(EXAMPLES, inputs=message,
                                       label="Exemples (cliquer pour demander) · Examples (click to ask)")
            with gr.Column(scale=2):
                sources = gr.HTML(ui.sources_html(None), elem_id="qa-sources", js_on_load=OPEN_ON_CLICK,
                                  label="Sources")
                with gr.Accordion("Document", open=False, elem_id="qa-viewer-box") as viewer_box:
                    viewer = gr.HTML("", elem_id="qa-viewer", js_on_load=SCROLL_TO_MARK)
                with gr.Accordion("Vos documents · Your documents", open=False):
                    gr.Markdown(
                        f"Ajoutez vos fichiers ({', '.join(UPLOAD_SUFFIXES)} ; "
                        f"{settings.max_upload_bytes // 2**20} Mo max chacun). · Add your files (up to "
                        f"{settings.max_upload_bytes // 2**20} MB each). "
                        + ("Ils rejoignent la bibliothèque partagée de ce serveur. · They join this "
                           "server's shared library." if engine.shared_library else
                           "Ils deviennent des sources pour vous seul. · They become sources for "
                           "you only.")
                    )
                    documents = gr.HTML("", elem_id="qa-documents", js_on_load=None)
                    files = gr.File(elem_id="qa-files", file_count="multiple",
                                    file_types=list(UPLOAD_SUFFIXES), label="Fichiers · Files")
                    with gr.Row():
                        to_remove = gr.Dropdown([], value=None, multiselect=True, elem_id="qa-remove-names",
                                                label="Retirer · Remove", scale=3)
                        remove = gr.Button("Retirer · Remove", elem_id="qa-remove", size="sm", scale=1)
                    if engine.shared_library:
                        reset = gr.Button("Remettre l’article de départ · Restore the bundled article",
                                          elem_id="qa-restore", size="sm")
                    else:
                        reset = gr.Button("Revenir aux documents de départ · Back to the default "
                                          "documents", elem_id="qa-reset", size="sm")
                with gr.Accordion("Réglages · Settings", open=False):
                    top_k = gr.Slider(1, 10, value=settings.top_k, step=1,
                                      label="Passages donnés au modèle · Passages given to the model")
                    max_new_tokens = gr.Slider(16, 256, value=settings.max_new_tokens, step=8,
                                               label="Longueur max de la réponse (tokens) · "
                                                     "Answer length (tokens)")
                    answer_style = gr.Radio(
                        [("Réponse directe du modèle, vérifiée, le meilleur passage d’abord · The "
                          "model's direct answer, checked, the best evidence first", "direct"),
                         ("Phrases des sources, citées (ou traduites) · The sources' sentences, "
                          "quoted (or translated)", "extractive"),
                         ("Réponse du modèle sur les passages entiers, vérifiée · The model's "
                          "answer from whole passages, checked", "generative")],
                        value=settings.answer_style, elem_id="qa-style",
                        label="Style de réponse · Answer style")
                    gr.Markdown(engine.models_line(), elem_id="qa-models")

        ask = {"fn": chat_fn, "inputs": [message, chatbot, session, top_k, max_new_tokens, answer_style],
               "outputs": [chatbot, sources, session, message], "concurrency_limit": 1,
               "concurrency_id": "model", "show_progress": "minimal"}
        message.submit(**ask, api_name="ask")
        examples.load_input_event.then(**ask, api_visibility="undocumented")
        def choices(s):
            return gr.Dropdown(choices=removable(engine, s), value=None)

        library_changed = {"fn": choices, "inputs": [session], "outputs": [to_remove],
                           "api_visibility": "undocumented", "concurrency_limit": None}
        uploaded = files.upload(
            upload_fn, inputs=[files, session], outputs=[session, documents, files],
            concurrency_limit=1, concurrency_id="model", api_name="add_documents",
            show_progress_on=[files],
        )
        uploaded.success(**library_changed)
        uploaded.failure(  # empty the upload box, or the refused file would come back with the next one
            lambda s: (documents_panel(engine, s), None), inputs=[session],
            outputs=[documents, files], api_visibility="undocumented", concurrency_limit=None)
        remove.click(lambda names, s: remove_documents(engine, names, s), inputs=[to_remove, session],
                     outputs=[session, documents], api_name="remove_documents",
                     concurrency_limit=1, concurrency_id="model").then(**library_changed)
        if engine.shared_library:
            reset.click(lambda s: restore_article(engine, s), inputs=[session],
                        outputs=[session, documents], api_name="restore_article",
                        concurrency_limit=1, concurrency_id="model").then(**library_changed)
        else:
            reset.click(lambda s: reset_documents(engine, s), inputs=[session],
                        outputs=[session, documents], api_name="reset_documents",
                        concurrency_limit=1, concurrency_id="model").then(**library_changed)

        def open_fn(s, evt=None):
            target = (getattr(evt, "_data", None) or {}).get("open")
            if not target:  # a click elsewhere in the panel
                return gr.skip(), gr.skip()
            return open_document(engine, s, target), gr.Accordion(open=True)

        # Gradio passes the event's data by the parameter's type; set as an object, since this
        # module's annotations are strings and `gr` is not among its globals.
        open_fn.__annotations__ = {"evt": gr.EventData}

        sources.click(open_fn, inputs=[session], outputs=[viewer, viewer_box],
                      api_visibility="undocumented", concurrency_limit=None)
        chatbot.clear(clear_chat, inputs=[session], outputs=[session, sources],
                      api_visibility="undocumented", concurrency_limit=None)
        demo.load(lambda s: (documents_panel(engine, s), choices(s)), inputs=[session],
                  outputs=[documents, to_remove], api_visibility="undocumented", concurrency_limit=None)
    return demo


LOOPBACK = ("127.0.0.1", "localhost", "::1")


def shares_library(args: argparse.Namespace) -> bool:
    """Whether the page changes the saved library: as asked, else only on a loopback address."""
    return args.library == "shared" if args.library else args.host in LOOPBACK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="app.py", description="The qa-sources web page.")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1; 0.0.0.0 for the network)")
    parser.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    parser.add_argument("--library", choices=("shared", "private"),
                        help="shared: documents added on the page join the saved library, for everyone "
                             "(default on 127.0.0.1/localhost); private: each visitor's uploads are "
                             "theirs alone, for their session (default for any other --host)")
    parser.add_argument("--store", help="the library in PostgreSQL (postgresql://..., or $QA_STORE), which "
                                        "several app processes can serve; default: the index folder")
    parser.add_argument("--share", action="store_true",
                        help="also open a public gradio.live link (needs the internet)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log what happens")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # offline: no telemetry calls
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    log.setLevel(logging.INFO)
    try:
        engine = Engine(Settings.from_env(store=args.store), shared_library=shares_library(args))
        log.info("loading the models and the index…")
        engine.base()
    except QAError as error:
        print(f"app.py: error: {error}", file=sys.stderr)
        return 2 if isinstance(error, InputError) else 1
    demo = build_demo(engine)
    demo.queue(default_concurrency_limit=1, max_size=64)
    demo.launch(server_name=args.host, server_port=args.port, share=args.share,
                max_file_size=engine.settings.max_upload_bytes, css=CSS, show_error=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
