"""Translations of document sentences, remembered per model in a JSON file."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from qa.prompting import TRANSLATION_PROMPT_VERSION
from qa.types import Language

log = logging.getLogger(__name__)


def translation_memory_path(cache_dir: Path, model: str) -> Path:
    """Where `model`'s translations are remembered: one file per model and translation prompt
    version (a changed prompt's translations aren't mixed with the old ones)."""
    name = re.sub(r"[^\w.-]+", "_", model).strip("_")[-80:]
    return cache_dir / "translations" / f"{name}.prompt{TRANSLATION_PROMPT_VERSION}.json"


class TranslationMemory:
    """Translations of document sentences by one model, kept in a JSON file (`path`; None: in
    memory only), so a sentence is translated once per machine, not once per question.

    A file that can't be read or parsed is logged and started afresh: an answer never fails for
    it. Writes merge what the file holds now (another process, `qa translate` say, may have added
    entries) and replace it atomically, so a crash can't corrupt it; two processes writing at
    the same instant may still lose one entry, which is then translated again. A file changed by
    another process is read again before the next look-up.
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._entries: dict[str, str] = {}
        self._seen: tuple[int, int] | None = None  # (mtime_ns, size) of the file when last read
        self._unsaved = 0
        self._deferred: int | None = None

    @staticmethod
    def _key(text: str, target: Language) -> str:
        return hashlib.sha256(f"{target}\0{text}".encode()).hexdigest()[:32]

    def _stamp(self) -> tuple[int, int] | None:
        try:
            stat = self.path.stat() if self.path is not None else None
        except OSError:
            return None
        return (stat.st_mtime_ns, stat.st_size) if stat else None

    def _on_disk(self) -> dict[str, str]:
        if self.path is None or not self.path.is_file():
            return {}
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
            return {k: v for k, v in data.items() if isinstance(v, str)}
        except (OSError, ValueError) as error:
            log.warning("translation memory %s can't be read (%s): starting afresh", self.path, error)
            return {}

    def _refresh(self) -> dict[str, str]:
        stamp = self._stamp()
        if stamp != self._seen:
            self._seen = stamp
            self._entries = {**self._on_disk(), **self._entries}
        return self._entries

    def get(self, text: str, target: Language) -> str | None:
        return self._refresh().get(self._key(text, target))

    def __len__(self) -> int:
        return len(self._refresh())

    def detached(self) -> TranslationMemory:
        """A copy of what this memory holds now, kept in memory only: never written back."""
        copy = TranslationMemory(None)
        copy._entries = dict(self._refresh())
        return copy

    def put(self, text: str, target: Language, translation: str) -> None:
        if not translation:
            return
        self._refresh()[self._key(text, target)] = translation
        self._unsaved += 1
        if self._deferred is None or self._unsaved >= self._deferred:
            self.save()

    @contextmanager
    def deferred(self, every: int = 25) -> Iterator[None]:
        """Write the file every `every` new entries and at the end, not after each one."""
        self._deferred = every
        try:
            yield
        finally:
            self._deferred = None
            self.save()

    def save(self) -> None:
        if self.path is None or not self._unsaved:
            return
        self._entries = {**self._on_disk(), **self._entries}
        self._unsaved = 0
        partial = self.path.with_suffix(f".{os.getpid()}.tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            partial.write_text(json.dumps(self._entries, ensure_ascii=False), encoding="utf-8")
            os.replace(partial, self.path)
            self._seen = self._stamp()
            self._remove_stale_partials()
        except OSError as error:
            partial.unlink(missing_ok=True)
            log.warning("translation memory %s can't be written (%s): kept in memory only", self.path, error)


    def _remove_stale_partials(self) -> None:
        """Delete the `<name>.<pid>.tmp` files of writers that were killed (their pid is gone)."""
        for stale in self.path.parent.glob(f"{self.path.stem}.*.tmp"):
            pid = stale.suffixes[-2].lstrip(".") if len(stale.suffixes) >= 2 else ""
            if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
                stale.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process: alive
        return True
    return True
