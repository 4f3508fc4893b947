"""The document library: adding, replacing and removing documents of an index.

Each function takes an `Index` and returns a new one (nothing is saved here; the pipeline and
the web page save what they keep). Only the documents that change are embedded: removing one
reads the other vectors back from the store, adding one embeds its passages alone.

A document is recognised by its name and text (its id): adding it again is skipped.
Adding a file from the same path again replaces the earlier version; another document that
happens to have the same name (an upload: browsers don't tell where a file was) is kept under
"name (2).ext".
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from qa.chunking import chunk_documents
from qa.embedding import Embedder
from qa.errors import CorpusError, IndexMismatchError, IndexNotFoundError
from qa.index import (
    FORMAT_VERSION,
    Entry,
    Index,
    Manifest,
    build_index,
    extend_index,
    without_documents,
)
from qa.loading import BUNDLED, Source, corpus_hash, expand_paths, files_stamp, read_sources
from qa.settings import Settings
from qa.stores import make_store

log = logging.getLogger(__name__)

UPLOAD = "upload"  # the origin of a document added from the web page
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Change:
    """What adding documents did."""

    index: Index
    added: tuple[str, ...] = ()
    replaced: tuple[str, ...] = ()
    skipped: tuple[str, ...] = ()  # their text is already in the library (under these names)


def unique_name(name: str, taken: set[str]) -> str:
    """`name`, or `name (2).ext`... when a different document already has that name.

    >>> unique_name("notes.txt", {"notes.txt", "notes (2).txt"})
    'notes (3).txt'
    """
    if name not in taken:
        return name
    stem, dot, suffix = name.rpartition(".")
    if not dot:
        stem, suffix = name, ""
    n = 2
    while (candidate := f"{stem} ({n}){dot}{suffix}") in taken:
        n += 1
    return candidate


def _entry(source: Source, name: str, passages: int) -> Entry:
    doc = source.document
    kind = Path(name).suffix.lower().lstrip(".") or "txt"
    return Entry(name=name, doc_id=doc.doc_id, origin=source.origin, kind=kind, size=source.size,
                 pages=len(doc.pages), passages=passages,
                 added=time.strftime("%Y-%m-%dT%H:%M:%S%z"))


def new_library(sources: Sequence[Source], embedder: Embedder, *, chunk_size: int, chunk_overlap: int,
                watched: Sequence[str] = (), files_stamp: str = "", progress: bool = False) -> Index:
    """An index holding exactly `sources`; `watched` are the paths and folders to re-read when
    their files change (`open_library`)."""
    sources = _distinct(sources)
    chunks = chunk_documents([s.document for s in sources], chunk_size, chunk_overlap)
    counts = _passages(chunks)
    entries = [_entry(s, s.document.source, counts.get(s.document.doc_id, 0)) for s in sources]
    return build_index(chunks, embedder, chunk_size=chunk_size, chunk_overlap=chunk_overlap,
                       corpus_hash=corpus_hash(s.document for s in sources), sources=list(watched),
                       files_stamp=files_stamp, progress=progress,
                       documents=[s.document for s in sources], entries=entries)


def add(index: Index, sources: Sequence[Source], embedder: Embedder,
        on_batch: Progress | None = None) -> Change:
    """`index` with `sources` added (see the module's rules on same text and same origin)."""
    known = {e.doc_id: e.name for e in index.manifest.documents}
    by_origin = {e.origin: e for e in index.manifest.documents if e.origin != UPLOAD}
    fresh: list[Source] = []
    replaced: list[Entry] = []
    skipped: list[str] = []
    for source in sources:
        key = source.document.doc_id
        if key in known:
            skipped.append(known[key])
            continue
        old = by_origin.get(source.origin)
        if old is not None:
            replaced.append(old)
        known[key] = source.document.source
        fresh.append(source)
    if not fresh:
        return Change(index, skipped=tuple(skipped))
    if replaced:
        index = without_documents(index, {e.doc_id for e in replaced})
    taken = {e.name for e in index.manifest.documents}
    named: list[Source] = []
    for source in fresh:
        name = unique_name(source.document.source, taken)
        taken.add(name)
        named.append(replace(source, document=replace(source.document, source=name)))
    m = index.manifest
    chunks = chunk_documents([s.document for s in named], m.chunk_size, m.chunk_overlap)
    if not chunks:
        raise CorpusError("the documents gave no passages to index")
    counts = _passages(chunks)
    entries = [_entry(s, s.document.source, counts.get(s.document.doc_id, 0)) for s in named]
    extended = extend_index(index, chunks, embedder, on_batch, documents=[s.document for s in named],
                            entries=entries)
    replaced_names = {e.name for e in replaced}
    return Change(extended, added=tuple(e.name for e in entries if e.name not in replaced_names),
                  replaced=tuple(sorted(replaced_names)), skipped=tuple(skipped))


def remove(index: Index, names: Sequence[str]) -> Index:
    """`index` without the documents called `names` (as `entries` lists them); an unknown name
    is refused with the names there are."""
    by_name = {e.name: e for e in index.manifest.documents}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        there = ", ".join(sorted(by_name)) or "none"
        raise CorpusError(f"no document called {unknown[0]!r} in the library (there are: {there}); "
                          "see `qa docs list`")
    gone = {by_name[n].doc_id for n in names}
    watched = _unwatched(index.manifest.sources, {by_name[n].origin for n in names})
    smaller = without_documents(index, gone)
    return replace(smaller, manifest=replace(smaller.manifest, sources=watched, files_stamp=""))


def rebuilt(index: Index, embedder: Embedder, *, chunk_size: int, chunk_overlap: int,
            progress: bool = False) -> Index:
    """The same library cut and embedded again (another embedder or passage size), from the
    texts it keeps: the files need not be there any more."""
    entries = {e.doc_id: e for e in index.manifest.documents}
    sources = [Source(d, entries[d.doc_id].origin, entries[d.doc_id].size) for d in index.documents]
    if not sources:
        raise CorpusError("the library is empty: add documents with `qa docs add PATH...`")
    fresh = new_library(sources, embedder, chunk_size=chunk_size, chunk_overlap=chunk_overlap,
                        watched=index.manifest.sources, files_stamp=index.manifest.files_stamp,
                        progress=progress)
    kept = tuple(replace(e, passages=f.passages)
                 for e, f in zip(index.manifest.documents, fresh.manifest.documents, strict=True))
    return replace(fresh, manifest=replace(fresh.manifest, documents=kept))


def entries(manifest: Manifest) -> list[dict]:
    """The library as `qa docs list --json` prints it."""
    return [{"name": e.name, "type": e.kind, "pages": e.pages or None, "passages": e.passages,
             "added": e.added, "size": e.size,
             "origin": e.origin if e.origin.startswith(("bundled:", UPLOAD)) else "file"}
            for e in manifest.documents]


def _unwatched(watched: Sequence[str], origins: set[str]) -> tuple[str, ...]:
    """`watched` without `origins`; a watched folder holding one of them is replaced by its other
    files, so a removed document doesn't come back with its folder's next change."""
    out: list[str] = []
    files = [Path(o) for o in origins if not o.startswith(("bundled:", UPLOAD))]
    for source in watched:
        if source in origins:
            continue
        folder = Path(source)
        if not source.startswith("bundled:") and folder.is_dir() and \
                any(f.is_relative_to(folder.resolve()) for f in files):
            out.extend(str(f.resolve()) for f in expand_paths([folder]) if str(f.resolve()) not in origins)
        else:
            out.append(source)
    return tuple(out)


def _passages(chunks) -> dict[str, int]:
    counts: dict[str, int] = {}
    for chunk in chunks:
        counts[chunk.doc_id] = counts.get(chunk.doc_id, 0) + 1
    return counts


def _distinct(sources: Sequence[Source]) -> list[Source]:
    """`sources` without repeated texts, names made unique."""
    seen: set[str] = set()
    taken: set[str] = set()
    out: list[Source] = []
    for source in sources:
        key = source.document.doc_id
        if key in seen:
            continue
        seen.add(key)
        name = unique_name(source.document.source, taken)
        taken.add(name)
        out.append(replace(source, document=replace(source.document, source=name)))
    return out


# ---------------------------------------------------------------------------------------------
# The saved library: what `qa index`, `qa docs` and the pipeline open and change
# ---------------------------------------------------------------------------------------------

EMPTY = "the library is empty: add documents with `qa docs add PATH...` (`qa docs add --bundled` for the article)"


def index_sources(sources: Sequence[str], embedder: Embedder, settings: Settings,
                  progress: bool = False) -> Index:
    """`qa index`: a library of exactly `sources` (the bundled article when empty), saved as the
    current index; the files and folders named are watched for changes."""
    resolved = [s if s.startswith("bundled:") else str(Path(s).resolve()) for s in sources] or [BUNDLED]
    index = build_from_sources(resolved, embedder, settings, progress)
    return make_store(settings).save(index)


def build_from_sources(sources: Sequence[str], embedder: Embedder, settings: Settings,
                       progress: bool = False) -> Index:
    """A library of exactly `sources` (the bundled article when empty), not saved."""
    sources = list(sources) or [BUNDLED]
    stamp = files_stamp(sources)  # before reading: a file changed meanwhile is re-read next time
    return new_library(read_sources(sources), embedder, chunk_size=settings.chunk_size,
                       chunk_overlap=settings.chunk_overlap, watched=sources, files_stamp=stamp,
                       progress=progress)


def open_library(settings: Settings, embedder: Embedder, progress: bool = False,
                 sync: bool = True) -> Index:
    """The saved library, ready for `embedder` and the settings' passages: made over the bundled
    article when there is none, re-embedded from its own texts when the embedder or the passage
    size changed, and brought up to date with its watched files that changed."""
    store = make_store(settings)
    try:
        manifest = store.read_manifest()
    except IndexNotFoundError:
        log.info("no index in %s: building one over the bundled article", store.where)
        return index_sources([BUNDLED], embedder, settings, progress)
    if manifest.format_version != FORMAT_VERSION:  # an older index: read its files again
        log.info("rebuilding the index (format %s, this version reads %s)", manifest.format_version,
                 FORMAT_VERSION)
        try:
            return index_sources(list(manifest.sources), embedder, settings, progress)
        except CorpusError as error:
            raise IndexMismatchError(f"the index is of an older format and its documents can't be "
                                     f"read again ({error}): run `qa index PATH...`") from None
    index = store.load()
    reasons = manifest.mismatches(embedder.name, settings.chunk_size, settings.chunk_overlap)
    if reasons:
        log.info("re-embedding the library: %s", "; ".join(reasons))
        index = store.save(rebuilt(index, embedder, chunk_size=settings.chunk_size,
                                   chunk_overlap=settings.chunk_overlap, progress=progress))
    return _synced(index, settings, embedder) if sync else index


def open_index(settings: Settings, embedder: Embedder, progress: bool = False) -> Index:
    """The library to answer from (`open_library`); an empty one is refused with the fix."""
    index = open_library(settings, embedder, progress)
    if not index.chunks:
        raise CorpusError(EMPTY)
    return index


def _synced(index: Index, settings: Settings, embedder: Embedder) -> Index:
    """`index` with its watched files' changes: a changed file replaces its earlier text, a new
    file in a watched folder is added, a file gone stays in the library (no longer watched).
    Unchanged names, sizes and times are trusted without reading the files."""
    watched = index.manifest.sources
    present = tuple(s for s in watched if s.startswith("bundled:") or Path(s).exists())
    for gone in set(watched) - set(present):
        log.info("%s is gone: the library keeps its copy (remove it with `qa docs remove`)", gone)
    try:
        stamp = files_stamp(present)
    except CorpusError:
        stamp = ""
    if stamp and stamp == index.manifest.files_stamp and present == watched:
        return index
    try:
        change = add(index, read_sources(present) if present else [], embedder)
    except CorpusError as error:
        log.warning("the library's files can't be read again (%s); using it as it is", error)
        return index
    if change.added or change.replaced:
        log.info("library updated: added %s, replaced %s", change.added, change.replaced)
    index = replace(change.index, manifest=replace(change.index.manifest, sources=present,
                                                   files_stamp=stamp))
    if change.added or change.replaced or present != watched:
        index = make_store(settings).save(index)
    elif stamp:  # touched but unchanged (a copy, a checkout): remembered, so not read next time
        make_store(settings).restamp(stamp)
    return index


def add_paths(paths: Sequence[str], embedder: Embedder, settings: Settings,
              on_batch: Progress | None = None, progress: bool = False) -> Change:
    """`qa docs add`: read `paths` (files, folders, or BUNDLED), add them to the saved library
    and watch them. Any file that can't be used stops the whole addition: nothing is saved."""
    index = open_library(settings, embedder, progress, sync=False)  # the addition reports changes
    resolved = [p if p.startswith("bundled:") else str(Path(p).resolve()) for p in paths]
    change = add(index, read_sources(resolved), embedder, on_batch)
    watched = tuple(dict.fromkeys(change.index.manifest.sources + tuple(resolved)))
    kept = replace(change.index, manifest=replace(change.index.manifest, sources=watched,
                                                  files_stamp=""))
    if change.added or change.replaced or watched != index.manifest.sources:
        kept = make_store(settings).save(kept)
    return replace(change, index=kept)


def remove_names(names: Sequence[str], settings: Settings) -> Index:
    """`qa docs remove`: the saved library without `names` (nothing is embedded)."""
    store = make_store(settings)
    return store.save(remove(store.load(), names))
