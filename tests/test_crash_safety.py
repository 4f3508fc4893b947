"""Crash safety (issue 18): what a killed write leaves behind is cleaned by the next one, and
`bench/crash_trials.py` (kill -9 at random moments in real `qa` subprocesses) finds no failure."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from qa.index import POINTER, load_index, save_index
from qa.library import index_sources
from qa.loading import BUNDLED
from qa.translations import TranslationMemory

ROOT = Path(__file__).resolve().parent.parent


def test_a_save_removes_what_killed_saves_left_behind(settings, embedder):
    index = index_sources([BUNDLED], embedder, settings)
    builds = settings.index_dir / "builds"
    (builds / ".20990101-000000-dead00.partial").mkdir()  # killed while writing its build
    (builds / ".20990101-000000-dead00.partial" / "vectors.faiss").write_bytes(b"half")
    (settings.index_dir / f".{POINTER}.20990101-000000-dead01").write_text("x\n")  # killed before its switch
    save_index(index, settings.index_dir)
    assert [p.name for p in builds.iterdir()] == [(settings.index_dir / POINTER).read_text().strip()]
    assert not list(settings.index_dir.glob(f".{POINTER}.*"))
    assert len(load_index(settings.index_dir).chunks) == len(index.chunks)


def test_the_translation_memory_removes_partials_of_dead_writers_only(tmp_path):
    path = tmp_path / "m.prompt2.json"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    stale = tmp_path / f"m.prompt2.{dead}.tmp"
    stale.write_text("{")
    alive = tmp_path / f"m.prompt2.{os.getppid()}.tmp"  # a live writer's: kept
    alive.write_text("{")
    memory = TranslationMemory(path)
    memory.put("Bonjour.", "en", "Hello.")
    assert json.loads(path.read_text()) and not stale.exists() and alive.exists()


def test_a_translation_memory_that_cannot_be_written_leaves_no_partial(tmp_path):
    path = tmp_path / "m.prompt2.json"
    path.mkdir()  # a folder where the file should be
    TranslationMemory(path).put("Bonjour.", "en", "Hello.")
    assert not list(tmp_path.glob("*.tmp"))


@pytest.mark.slow
def test_kill_9_at_random_moments_loses_nothing(tmp_path):
    """Three killed runs of each operation (the full run: `bench/crash_trials.py --trials 20`)."""
    out = tmp_path / "crash.json"
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "crash_trials.py"), "--trials", "3",
                           "--json", str(out)], capture_output=True, text=True, timeout=1800,
                          env=dict(os.environ, QA_THREADS="1", HF_HUB_OFFLINE="1"))
    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads(out.read_text())
    assert [r["operation"] for r in results] == ["add", "remove", "index", "translate"]
    assert all(r["trials"] == 3 and not r["failures"] for r in results)
