"""Where the library is kept: the `Store` protocol and the FAISS folder, the default.

A store keeps one library (an `Index`: manifest and entries, passages, vectors, documents' texts)
and replaces it as a whole with `save`: the library functions (qa.library) compute the new
`Index` in memory, the store writes it so that a crash mid-write leaves the previous library.
`make_store` picks the store from `Settings.store`: empty for the folder `Settings.index_dir`,
`postgresql://...` for PostgreSQL with pgvector (qa.pgstore), which several processes can share.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from qa.index import Index, Manifest, load_index, read_manifest, restamp, save_index
from qa.settings import Settings


class Store(Protocol):
    where: str  # for messages: "index/" or "postgresql://host/db"

    def read_manifest(self) -> Manifest:
        """The library's manifest (with its entries); IndexNotFoundError when there is none."""
        ...

    def load(self) -> Index:
        """The library; its `vectors` answer `Index.search`."""
        ...

    def save(self, index: Index) -> Index:
        """Make `index` the library, atomically; returns the library as now stored."""
        ...

    def restamp(self, files_stamp: str) -> None:
        """Record the watched files' new stamp (touched, not changed)."""
        ...

    def is_current(self, index: Index) -> bool:
        """False when another process has changed the library since `index` was loaded."""
        ...


class FolderStore:
    """The FAISS folder (qa.index): builds written whole, then the CURRENT pointer switched."""

    def __init__(self, index_dir: Path) -> None:
        self.index_dir = Path(index_dir)
        self.where = f"{self.index_dir}/"

    def read_manifest(self) -> Manifest:
        return read_manifest(self.index_dir)

    def load(self) -> Index:
        return load_index(self.index_dir)

    def save(self, index: Index) -> Index:
        save_index(index, self.index_dir)
        return index

    def restamp(self, files_stamp: str) -> None:
        restamp(self.index_dir, files_stamp)

    def is_current(self, index: Index) -> bool:
        return True  # one process writes a folder's library; the web page shares it in memory


def is_postgresql(url: str) -> bool:
    return url.startswith(("postgresql://", "postgres://"))


def make_store(settings: Settings) -> Store:
    if settings.store and is_postgresql(settings.store):
        from qa.pgstore import PostgresStore

        return PostgresStore.connect(settings.store)
    return FolderStore(settings.index_dir)
