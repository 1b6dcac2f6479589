"""A tiny "ComfyUI install" for the managed-ComfyUI tests: main.py runs the project's fake ComfyUI as its own process.

    folder = make_comfyui_folder(tmp_path / "ComfyUI")                 # serves on --listen/--port
    folder = make_comfyui_folder(tmp_path / "Broken", exits=True)      # prints a line and exits at once (code 3)
    folder = make_comfyui_folder(tmp_path / "C", helper=True)          # also starts a `sleep` in its process group

Its venv/bin/python is a shell script that execs this interpreter, so the child's PID is main.py's own. main.py prints
its arguments and CUDA_VISIBLE_DEVICES first (the log shows them); flags other than --listen and --port (--cpu) are
ignored, as the fake has no GPU to leave alone.
"""
from __future__ import annotations

import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]

MAIN = '''import os, subprocess, sys
sys.path.insert(0, {root!r})
args = sys.argv[1:]
print("fake ComfyUI main.py", " ".join(args), "CUDA_VISIBLE_DEVICES=" + os.environ.get("CUDA_VISIBLE_DEVICES", ""),
      flush=True)
if {exits!r}:
    print("boom: this ComfyUI cannot start", flush=True)
    sys.exit(3)
if {helper!r}:
    subprocess.Popen(["sleep", "600"])  # a helper process, in main.py's process group
def flag(name, default):
    return args[args.index(name) + 1] if name in args else default
from tests.support.fake_comfyui import main
main(["--port", flag("--port", "8188"), "--listen", flag("--listen", "127.0.0.1"), "--step-delay", "0.01"])
'''


def make_comfyui_folder(folder: Path, *, exits: bool = False, helper: bool = False) -> Path:
    """Write main.py and venv/bin/python into `folder`; returns it."""
    folder = Path(folder)
    (folder / "venv" / "bin").mkdir(parents=True, exist_ok=True)
    (folder / "main.py").write_text(MAIN.format(root=str(PROJECT_ROOT), exits=exits, helper=helper))
    python = folder / "venv" / "bin" / "python"
    python.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    python.chmod(0o755)
    return folder
