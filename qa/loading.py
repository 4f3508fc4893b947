"""Reading documents from files into `Document`s, the bundled article by default."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from qa.documents import UPLOAD_SUFFIXES, make_document, read_upload
from qa.errors import CorpusError
from qa.types import Document

BUNDLED_NAME = "strategie-ia-open-source-chine.txt"
BUNDLED = "bundled:" + BUNDLED_NAME
TEXT_SUFFIXES = set(UPLOAD_SUFFIXES)
MAX_FILE_BYTES = 20 * 1024 * 1024


def _bundled_text() -> str:
    return resources.files("qa").joinpath("data", BUNDLED_NAME).read_text(encoding="utf-8")


def bundled_document() -> Document:
    return make_document(BUNDLED_NAME, _bundled_text())


def read_file(path: Path) -> Document:
    """Read one text, Markdown, PDF, HTML or Word file; raise CorpusError with the reason when it
    can't be used (missing, too big, not UTF-8, empty, not what its name says)."""
    if not path.is_file():
        raise CorpusError(f"{path} does not exist or is not a file")
    return read_upload(path, max_bytes=MAX_FILE_BYTES)


def expand_paths(paths: Iterable[str | Path]) -> list[Path]:
    """Files as given, folders expanded to their text and Markdown files (sorted, recursive)."""
    files: list[Path] = []
    for raw in paths:
        path = Path(raw).expanduser()
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in TEXT_SUFFIXES)
            if not found:
                raise CorpusError(f"{path} holds no {'/'.join(sorted(TEXT_SUFFIXES))} files")
            files.extend(found)
        elif path.exists():
            files.append(path)
        else:
            raise CorpusError(f"{path} does not exist")
    return files


@dataclass(frozen=True)
class Source:
    """A document read from where it came from."""

    document: Document
    origin: str  # BUNDLED or the file's absolute path
    size: int  # bytes of the file (of the text, for the bundled article)


def read_sources(sources: Iterable[str | Path]) -> list[Source]:
    """Read every source (files, folders, `bundled:...` for the article shipped with the
    package); an empty list of sources means the bundled article."""
    sources = list(sources) or [BUNDLED]
    read: list[Source] = []
    plain: list[str | Path] = []
    for source in sources:
        if str(source).startswith("bundled:"):
            read.append(Source(bundled_document(), BUNDLED, len(_bundled_text().encode())))
        else:
            plain.append(source)
    for path in expand_paths(plain):
        document = read_file(path)
        read.append(Source(document, str(path.resolve()), path.stat().st_size))
    if not read:
        raise CorpusError("no documents to index")
    return read


def load_documents(sources: Iterable[str | Path]) -> list[Document]:
    """The documents of `read_sources`."""
    return [source.document for source in read_sources(sources)]


def files_stamp(sources: Iterable[str | Path]) -> str:
    """A digest of the sources' file names, sizes and modification times (the bundled article's
    text, which is small): when it is unchanged, the files need not be read again to know that
    the index still matches them. Raises CorpusError when a source is gone."""
    h = hashlib.sha256()
    plain: list[str | Path] = []
    for source in sources:
        if str(source).startswith("bundled:"):
            h.update(_bundled_text().encode())
        else:
            plain.append(source)
    for path in expand_paths(plain):
        try:
            stat = path.stat()
        except OSError as error:
            raise CorpusError(f"{path} can't be read ({error.strerror or error})") from None
        h.update(f"\0{path.resolve()}\0{stat.st_size}\0{stat.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def corpus_hash(docs: Iterable[Document]) -> str:
    return ids_hash(doc.doc_id for doc in docs)


def ids_hash(doc_ids: Iterable[str]) -> str:
    """A digest of a set of document ids (each id derives from its document's text)."""
    h = hashlib.sha256()
    for doc_id in sorted(set(doc_ids)):
        h.update(doc_id.encode())
        h.update(b"\0")
    return h.hexdigest()[:16]
