"""The library in PostgreSQL with pgvector: one database holds one library, shared by processes.

Tables (schema version `SCHEMA_VERSION`, in `schema_version`; migrations in `MIGRATIONS`):

    library    one row: the manifest without its entries (JSON) and `version`, bumped by each change
    entries    the manifest's entries, in order
    documents  each document's text, pages and headings (JSON)
    passages   each passage (JSON), its document, and its vector: `embedding vector(dim)` with an
               HNSW index for cosine distance (`vector_cosine_ops`)

`save` writes a new library in one transaction: only the passages and documents that changed
are deleted or inserted, so a crash mid-add leaves the previous library, and adding a document
to a large library writes that document alone. A change computed from a library that another
process has changed since is refused (`IndexMismatchError`): it would drop the other's change.
Other processes see a change at their next question: `is_current` compares one integer.

The lexical side (BM25) stays in process over the passages loaded here (qa.retrieval):
docs/retrieval.md compares it with PostgreSQL's full-text search.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Sequence
from dataclasses import asdict
from urllib.parse import urlsplit

import numpy as np

from qa.errors import IndexCorruptError, IndexMismatchError, IndexNotFoundError
from qa.index import HNSW_EF_CONSTRUCTION, HNSW_EF_SEARCH, HNSW_M, Entry, Index, Manifest, _chunk, _document

log = logging.getLogger(__name__)

# Each migration takes the schema from its position to the next version; never edit a released
# one: append another.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE EXTENSION IF NOT EXISTS vector;
    CREATE TABLE library (
        id integer PRIMARY KEY CHECK (id = 1),
        version bigint NOT NULL,
        manifest jsonb NOT NULL
    );
    CREATE TABLE entries (doc_id text PRIMARY KEY, ord integer NOT NULL, entry jsonb NOT NULL);
    CREATE TABLE documents (doc_id text PRIMARY KEY, ord bigserial, document jsonb NOT NULL);
    CREATE TABLE passages (
        id bigserial PRIMARY KEY,
        doc_id text NOT NULL,
        chunk jsonb NOT NULL,
        embedding vector NOT NULL
    );
    CREATE INDEX passages_doc_id ON passages (doc_id);
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)
MAX_EF_SEARCH = 1000  # pgvector's limit; past it (or half the library) the search is exact
_LOCK = 7_316_001  # advisory lock taken while migrating


def _connect(url: str):
    import psycopg

    try:
        return psycopg.connect(url, autocommit=True)
    except psycopg.OperationalError as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise IndexNotFoundError(f"can't reach the library's database {_shown(url)} ({first}): "
                                 "start PostgreSQL or fix QA_STORE / --store") from None


def _shown(url: str) -> str:
    """The URL without its password."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    user = f"{parts.username}@" if parts.username else ""
    port = f":{parts.port}" if parts.port else ""
    return f"postgresql://{user}{host}{port}{parts.path}"


def migrate(connection, url: str = "") -> int:
    """Bring the database's schema to SCHEMA_VERSION (each step in its own transaction); a newer
    schema is refused. Returns the version found."""
    with connection.transaction():
        connection.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK,))
        connection.execute("CREATE TABLE IF NOT EXISTS schema_version (version integer NOT NULL)")
        row = connection.execute("SELECT version FROM schema_version").fetchone()
        found = row[0] if row else 0
        if found > SCHEMA_VERSION:
            raise IndexMismatchError(
                f"the library in {_shown(url) or 'the database'} has schema version {found}, this version of "
                f"qa-sources reads up to {SCHEMA_VERSION}: upgrade qa-sources (or use another database)")
        for version in range(found, SCHEMA_VERSION):
            log.info("migrating the library's schema to version %d", version + 1)
            connection.execute(MIGRATIONS[version])
        if row is None:
            connection.execute("INSERT INTO schema_version VALUES (%s)", (SCHEMA_VERSION,))
        elif found < SCHEMA_VERSION:
            connection.execute("UPDATE schema_version SET version = %s", (SCHEMA_VERSION,))
    return found


class PostgresStore:
    """A `qa.stores.Store` in a PostgreSQL database with pgvector."""

    _open: dict[str, PostgresStore] = {}
    _opening = threading.Lock()

    def __init__(self, url: str) -> None:
        self.url = url
        self.where = _shown(url)
        self._local = threading.local()  # one reading connection per thread
        connection = _connect(url)
        migrate(connection, url)
        _register(connection)  # the vector type exists once migrated
        self._local.connection = connection

    @classmethod
    def connect(cls, url: str) -> PostgresStore:
        """The store of `url`, opened (and migrated) once per process."""
        with cls._opening:
            if url not in cls._open:
                cls._open[url] = cls(url)
            return cls._open[url]

    def _connection(self):
        connection = getattr(self._local, "connection", None)
        if connection is None or connection.closed:
            connection = self._local.connection = _connect(self.url)
            _register(connection)
        return connection

    def version(self) -> int | None:
        row = self._connection().execute("SELECT version FROM library").fetchone()
        return row[0] if row else None

    def read_manifest(self) -> Manifest:
        return self._manifest(self._connection())[0]

    def _manifest(self, connection) -> tuple[Manifest, int]:
        row = connection.execute("SELECT manifest, version FROM library").fetchone()
        if row is None:
            raise IndexNotFoundError(f"no library in {self.where}: run `qa index --store URL` first")
        raw, version = row
        entries = connection.execute("SELECT entry FROM entries ORDER BY ord").fetchall()
        try:
            raw = dict(raw, sources=tuple(raw["sources"]), documents=tuple(Entry(**e) for (e,) in entries))
            return Manifest(**raw), version
        except (TypeError, KeyError) as error:
            raise IndexCorruptError(f"the library's manifest in {self.where} is unreadable "
                                    f"({type(error).__name__}): rebuild it with `qa index`") from None

    def load(self) -> Index:
        connection = self._connection()
        with connection.transaction():  # one snapshot of every table
            connection.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            manifest, version = self._manifest(connection)
            rows = connection.execute("SELECT id, chunk FROM passages ORDER BY id").fetchall()
            documents = connection.execute("SELECT document FROM documents ORDER BY ord").fetchall()
        fix = "rebuild it with `qa index`"
        try:
            chunks = tuple(_chunk(raw) for _, raw in rows)
            texts = tuple(_document(raw) for (raw,) in documents)
        except (TypeError, KeyError) as error:
            raise IndexCorruptError(f"the library's passages in {self.where} are unreadable "
                                    f"({type(error).__name__}): {fix}") from None
        if len(chunks) != manifest.n_chunks or {d.doc_id for d in texts} != {e.doc_id for e in manifest.documents}:
            raise IndexCorruptError(f"the library in {self.where} is inconsistent ({len(chunks)} passages, "
                                    f"manifest says {manifest.n_chunks}): {fix}")
        table = Vectors(self, version, tuple(i for i, _ in rows), manifest.dimension,
                        np.zeros((0, manifest.dimension), dtype=np.float32))
        return Index(manifest, chunks, table, texts)

    def is_current(self, index: Index) -> bool:
        vectors = index.vectors
        return not isinstance(vectors, Vectors) or vectors.store is not self or vectors.version == self.version()

    def restamp(self, files_stamp: str) -> None:
        self._connection().execute(
            "UPDATE library SET manifest = jsonb_set(manifest, '{files_stamp}', to_jsonb(%s::text))",
            (files_stamp,))

    def save(self, index: Index) -> Index:
        vectors = index.vectors
        ours = isinstance(vectors, Vectors) and vectors.store is self
        with _connect(self.url) as connection:  # writes on their own connection: reads go on meanwhile
            _register(connection)
            with connection.transaction():
                row = connection.execute("SELECT version, manifest FROM library FOR UPDATE").fetchone()
                version = row[0] if row else 0
                if ours and vectors.version != version:
                    raise IndexMismatchError(f"the library in {self.where} was changed by another process "
                                             "meanwhile: try again")
                kept = [i for i in vectors.ids if i is not None] if ours else []
                connection.execute("DELETE FROM passages WHERE NOT (id = ANY(%s::bigint[]))", (kept,))
                dimension = index.manifest.dimension
                if row is None or row[1].get("dimension") != dimension or not kept:
                    _retype(connection, dimension)
                self._insert_passages(connection, index, ours)
                _index_vectors(connection)  # after a full COPY: building the graph once is faster
                doc_ids = [d.doc_id for d in index.documents]
                connection.execute("DELETE FROM documents WHERE NOT (doc_id = ANY(%s::text[]))", (doc_ids,))
                present = {r[0] for r in connection.execute("SELECT doc_id FROM documents")}
                with connection.cursor().copy("COPY documents (doc_id, document) FROM STDIN") as copy:
                    for document in index.documents:
                        if document.doc_id not in present:
                            copy.write_row((document.doc_id, json.dumps(asdict(document), ensure_ascii=False)))
                connection.execute("DELETE FROM entries")
                with connection.cursor().copy("COPY entries (doc_id, ord, entry) FROM STDIN") as copy:
                    for n, entry in enumerate(index.manifest.documents):
                        copy.write_row((entry.doc_id, n, json.dumps(asdict(entry), ensure_ascii=False)))
                manifest = {k: v for k, v in asdict(index.manifest).items() if k != "documents"}
                connection.execute(
                    "INSERT INTO library VALUES (1, %s, %s) ON CONFLICT (id) DO UPDATE "
                    "SET version = excluded.version, manifest = excluded.manifest",
                    (version + 1, json.dumps(manifest, ensure_ascii=False)))
        return self.load()

    def _insert_passages(self, connection, index: Index, ours: bool) -> None:
        """COPY the passages the database doesn't hold yet, in the index's order."""
        from psycopg.types.json import Jsonb

        vectors = index.vectors
        if ours:
            fresh = [p for p, i in enumerate(vectors.ids) if i is None]
            rows = vectors.extra
        else:
            fresh = list(range(len(index.chunks)))
            rows = vectors.reconstruct_n(0, vectors.ntotal) if vectors.ntotal else []
        with connection.cursor().copy(
                "COPY passages (doc_id, chunk, embedding) FROM STDIN WITH (FORMAT BINARY)") as copy:
            copy.set_types(["text", "jsonb", "vector"])
            for n, position in enumerate(fresh):
                chunk = index.chunks[position]
                copy.write_row((chunk.doc_id, Jsonb(asdict(chunk)),
                                np.asarray(rows[n], dtype=np.float32)))

    def nearest(self, table: Vectors, query: np.ndarray, k: int) -> list[tuple[int, float]]:
        """(row id, cosine) of the `k` nearest passages: through the HNSW graph (`ef_search` at
        least k), exactly when k exceeds pgvector's limit or half the library."""
        connection = self._connection()
        query = np.asarray(query, dtype=np.float32).reshape(-1)
        with connection.transaction():
            if k > MAX_EF_SEARCH or 2 * k > table.ntotal:
                connection.execute("SET LOCAL enable_indexscan = off")
            else:
                connection.execute(f"SET LOCAL hnsw.ef_search = {max(HNSW_EF_SEARCH, k)}")
            rows = connection.execute(
                "SELECT id, embedding <=> %s AS distance FROM passages ORDER BY distance LIMIT %s",
                (query, k)).fetchall()
        return [(i, 1.0 - float(d)) for i, d in rows]

    def vectors_of(self, ids: Sequence[int], dimension: int) -> np.ndarray:
        rows = dict(self._connection().execute(
            "SELECT id, embedding FROM passages WHERE id = ANY(%s::bigint[])", (list(ids),)).fetchall())
        return np.array([np.asarray(_array(rows[i]), dtype=np.float32) for i in ids],
                        dtype=np.float32).reshape(-1, dimension)


def _array(value) -> np.ndarray:
    return value.to_numpy() if hasattr(value, "to_numpy") else np.asarray(value)


def _register(connection) -> None:
    from pgvector.psycopg import register_vector

    register_vector(connection)


def _retype(connection, dimension: int) -> None:
    """Empty the passages and type their vectors `vector(dimension)`, unindexed until they are
    copied (`_index_vectors`): a new embedder's vectors never mix with the old ones."""
    connection.execute("DELETE FROM passages")
    connection.execute("DROP INDEX IF EXISTS passages_embedding")
    connection.execute(f"ALTER TABLE passages ALTER COLUMN embedding TYPE vector({int(dimension)})")


def _index_vectors(connection) -> None:
    connection.execute(f"CREATE INDEX IF NOT EXISTS passages_embedding ON passages USING hnsw "
                       f"(embedding vector_cosine_ops) WITH (m = {HNSW_M}, ef_construction = {HNSW_EF_CONSTRUCTION})")


class Vectors:
    """A `qa.index.VectorTable` over the `passages` table as loaded at `version`; `ids[position]`
    is the row of each passage, None for a passage added since (its vector in `extra`), which
    `PostgresStore.save` writes."""

    def __init__(self, store: PostgresStore, version: int, ids: tuple[int | None, ...], dimension: int,
                 extra: np.ndarray) -> None:
        self.store, self.version, self.ids, self.d, self.extra = store, version, ids, dimension, extra
        self.ntotal = len(ids)
        self._positions = {i: p for p, i in enumerate(ids) if i is not None}
        self._fresh = [p for p, i in enumerate(ids) if i is None]

    def nearest(self, query: np.ndarray, k: int) -> list[tuple[int, float]]:
        found = [(self._positions[i], s) for i, s in self.store.nearest(self, query, k) if i in self._positions]
        if len(self._fresh):  # passages not saved yet (a visitor's uploads): searched here, exactly
            scores = self.extra @ np.asarray(query, dtype=np.float32).reshape(-1)
            found += [(p, float(s)) for p, s in zip(self._fresh, scores, strict=True)]
            found.sort(key=lambda pair: -pair[1])
        return found[:k]

    def reconstruct(self, position: int) -> np.ndarray:
        return self.reconstruct_n(position, 1)[0]

    def reconstruct_n(self, start: int, n: int) -> np.ndarray:
        out = np.zeros((n, self.d), dtype=np.float32)
        wanted = [(row, self.ids[p]) for row, p in enumerate(range(start, start + n)) if self.ids[p] is not None]
        if wanted:
            out[[row for row, _ in wanted]] = self.store.vectors_of([i for _, i in wanted], self.d)
        for row, p in enumerate(range(start, start + n)):
            if self.ids[p] is None:
                out[row] = self.extra[self._fresh.index(p)]
        return out

    def added(self, vectors: np.ndarray) -> Vectors:
        return Vectors(self.store, self.version, self.ids + (None,) * len(vectors), self.d,
                       np.concatenate([self.extra, np.asarray(vectors, dtype=np.float32)]))

    def kept(self, positions: Sequence[int]) -> Vectors:
        fresh = {p: n for n, p in enumerate(self._fresh)}
        extra = [self.extra[fresh[p]] for p in positions if self.ids[p] is None]
        return Vectors(self.store, self.version, tuple(self.ids[p] for p in positions), self.d,
                       np.array(extra, dtype=np.float32).reshape(-1, self.d))
