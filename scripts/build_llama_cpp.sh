#!/usr/bin/env bash
# Build llama-cpp-python for this machine's CPU and install it into .venv.
# PyPI has only its source; a build compiled for another CPU dies with an illegal instruction, so
# the wheel is kept per set of CPU flags in the model cache and rebuilt on a machine that differs.
set -euo pipefail
cd "$(dirname "$0")/.."
version=0.3.36
cache=${QA_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/qa-sources}
flags=$(grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' | grep -E '^(avx|avx2|fma|f16c|avx512[a-z0-9_]*|amx[a-z0-9_]*|avx_vnni)$' | sort | tr '\n' ' ')
key=$(printf '%s %s %s' "$version" "$(uname -m)" "$flags" | sha256sum | cut -c1-16)
wheels="$cache/wheels/llama-cpp-python-$key"
if ! ls "$wheels"/llama_cpp_python-$version-*.whl >/dev/null 2>&1; then
  echo "Building llama.cpp for this CPU (once per machine; about 10 minutes on 2 cores)…"
  echo "CPU flags: $flags"
  mkdir -p "$wheels.tmp"
  # GGML_NATIVE: compiled for this CPU's instruction sets (AVX2, AVX-512, VNNI, BF16, AMX where present);
  # llama.cpp then picks its weight-repacking kernels at run time among those.
  CMAKE_ARGS="-DLLAVA_BUILD=OFF -DGGML_NATIVE=ON -DGGML_OPENMP=ON -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF" \
  CMAKE_BUILD_PARALLEL_LEVEL=$(nproc) \
    .venv/bin/python -m pip wheel --quiet --no-deps --no-cache-dir -w "$wheels.tmp" "llama-cpp-python==$version"
  rm -rf "$wheels" && mv "$wheels.tmp" "$wheels"
  printf '%s\n' "$flags" > "$wheels/cpu-flags.txt"
fi
# the wheel built here (a wheel beats the source of the same version), its small dependencies from PyPI
.venv/bin/python -m pip install --quiet --no-cache-dir --find-links "$wheels" "llama-cpp-python==$version"
