#!/usr/bin/env bash
# Gator Studio: `./launch.sh` runs the app (creating .venv on first run); `./launch.sh test` runs the suite.
set -euo pipefail
cd "$(dirname "$0")"

PYTHON="${PYTHON:-python3}"
VENV="${GATOR_VENV:-.venv}"

if [ ! -x "$VENV/bin/python" ]; then
  echo "Creating $VENV ..."
  "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"

# OpenAI's CLIP vocabulary ships in this wheel: it is downloaded, not installed (no dependencies, torch stays
# as it is), and engine/clip_vocab.py builds the tokenizers' vocab.json/merges.txt from it.
CLIP_VOCAB_WHEEL="open-clip-torch==3.3.0"
# Model upscalers (ESRGAN family) load through spandrel; it lists torchvision as a dependency, which does not import
# beside the pinned torch, so it is installed without dependencies (its others, einops included, are in
# requirements.txt; engine/backends/upscale_models.py imports it without torchvision).
SPANDREL="spandrel==0.4.2"
stamp="$VENV/.requirements.sha"
want=$( { cat requirements.txt; echo "$CLIP_VOCAB_WHEEL"; echo "$SPANDREL"; } | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  "$PY" -m pip install -q --upgrade pip >/dev/null 2>&1 || true
  # torch first and pinned: a CPU wheel where there is no GPU; an existing torch is kept.
  if ! "$PY" -c "import torch" >/dev/null 2>&1; then
    echo "Installing torch ..."
    "$PY" -m pip install -q "torch==${GATOR_TORCH_VERSION:-2.13.0}"
  fi
  echo "Installing requirements ..."
  "$PY" -m pip install -q -r requirements.txt
  "$PY" -m pip install -q --no-deps "$SPANDREL"
  "$PY" -m pip download -q --no-deps "$CLIP_VOCAB_WHEEL" -d "$VENV/share/gator-studio"
  echo "$want" > "$stamp"
fi

if [ "${1:-}" = "test" ]; then
  shift
  if [ ! -x /usr/bin/chromium ] && [ -z "${GATOR_SKIP_BROWSER:-}" ]; then
    echo "Browser tests need Debian's chromium: apt-get install -y chromium" >&2
  fi
  if [ $# -eq 0 ]; then
    # The whole suite: the engine's tests, then the browser suite (each a Chromium and apps of its own, test files
    # kept together), each in two processes: one alone leaves a core idle while its test waits (the bounds of the
    # tests that time what they test leave room for the other). Each process's torch gets its share of the cores:
    # more threads than cores made both suites slower (15 % for the browser's, 10 % for the engine's, on 2 cores).
    export OMP_NUM_THREADS="${OMP_NUM_THREADS:-$(( $(nproc) > 3 ? $(nproc) / 2 : 1 ))}"
    status=0
    # (the engine's tests by work stealing: a process that runs out takes the other's queued tests, so the long
    # ones at the end do not leave it idle; 238 s against 343 s here)
    "$PY" -m pytest --ignore=tests/ui --numprocesses 2 --dist worksteal || status=$?
    "$PY" -m pytest tests/ui --numprocesses 2 --dist loadfile || status=$?
    exit "$status"
  fi
  exec "$PY" -m pytest "$@"
fi
exec "$PY" app.py "$@"
