"""What the fault injection tests share: running a command in a child process with a fault planted
(tests/fault_child.py), and checking that every output file it left is complete or absent."""

import csv
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import torch
import yaml

from recbole_ext import files
from recbole_ext.checkpoints import allow_checkpoint_model_class, check_checkpoint

REPO = Path(__file__).resolve().parents[1]
KILLED = -signal.SIGKILL


def child(command, *args, cwd, env=None, timeout=300):
    """Run ``command`` through tests/fault_child.py in ``cwd`` (its own session, one CPU thread) with
    the fault ``env`` names; returns (exit code, stdout, stderr). Every process the child left (Ray's,
    after a kill) is ended: the child's session is its own."""
    return finish(start(command, *args, cwd=cwd, env=env), timeout)


def start(command, *args, cwd, env=None):
    """Start :func:`child` without waiting for it; :func:`finish` waits. Its output is read through
    pipes (a file would count against a planted file size limit)."""
    cwd = Path(cwd)
    cwd.mkdir(parents=True, exist_ok=True)
    # RAY_ADDRESS=local: hyper starts its own Ray even where `ray start` left a cluster address behind
    environment = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
                   "RAY_ADDRESS": "local", **(env or {})}
    for name in ("FAULT_KILL", "FAULT_FSIZE", "FAULT_WEIGHTS"):
        if env is None or name not in env:
            environment.pop(name, None)
    process = subprocess.Popen([sys.executable, "-m", "tests.fault_child", command, *map(str, args)], cwd=cwd,
                               env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               start_new_session=True)
    process.output = {}
    process.readers = [threading.Thread(target=_read, args=(stream, process.output, name), daemon=True)
                       for name, stream in (("out", process.stdout), ("err", process.stderr))]
    for reader in process.readers:
        reader.start()
    return process


def _read(stream, output, name):
    output[name] = stream.read().decode("utf-8", errors="replace")


def finish(process, timeout=300):
    """Wait for a :func:`start`-ed child; returns (exit code, stdout, stderr). The pipes close once
    every process of its session has ended (:func:`end_session`)."""
    try:
        code = process.wait(timeout=timeout)
    finally:
        end_session(process)
        for reader in process.readers:
            reader.join(timeout=60)
    return code, process.output.get("out", ""), process.output.get("err", "")


def end_session(process):
    """End the processes left in ``process``'s session (process group): Ray's, when the driver was
    killed. Waits until none is left (Ray's own reaper usually ends them first)."""
    if process.poll() is None:
        process.kill()
        process.wait()
    for _ in range(100):
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        time.sleep(0.1)


def last_line(stderr):
    lines = stderr.strip().splitlines()
    return lines[-1] if lines else ""


def leftovers(folder):
    """Staging files and folders of recbole-ext's writers anywhere under ``folder``."""
    found = []
    for root, dirs, names in os.walk(folder):
        found += [str(Path(root, name).relative_to(folder)) for name in dirs + names if files.writer_pid(name) is not None]
    return sorted(found)


def load_checkpoint(path):
    """A checkpoint loaded weights-only, after recbole-ext's own check; fails the test otherwise."""
    allow_checkpoint_model_class(str(path))
    check_checkpoint(str(path))
    return torch.load(path, weights_only=True, map_location="cpu")


def check_csv(path):
    """A CSV written whole: ends with a newline, every row has the header's number of fields."""
    text = Path(path).read_text(encoding="utf-8")
    assert text.endswith("\n"), path
    rows = list(csv.reader(text.splitlines()))
    assert rows and all(len(row) == len(rows[0]) for row in rows), path
    return rows


def check_text(path):
    text = Path(path).read_text(encoding="utf-8")
    assert text.endswith("\n"), path
    return text


def check_png(path):
    data = Path(path).read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and data.endswith(b"IEND\xaeB`\x82"), path


def check_dataset_folder(folder, name):
    """A dataset folder of recbole_ext.data.atomic: both files, each whole, or no folder at all."""
    folder = Path(folder)
    if not folder.exists():
        return False
    assert sorted(os.listdir(folder)) == sorted([f"{name}.inter", f"{name}.yaml"]), folder
    lines = check_text(folder / f"{name}.inter").splitlines()
    assert lines[0] == "session_id:token\titem_id:token\ttimestamp:float"
    assert len(lines) > 1 and all(len(line.split("\t")) == 3 for line in lines)
    assert yaml.safe_load((folder / f"{name}.yaml").read_text())["load_col"]
    return True


CHECKS = {".csv": check_csv, ".md": check_text, ".tex": check_text, ".png": check_png,
          ".json": lambda path: json.loads(Path(path).read_text(encoding="utf-8")), ".pth": load_checkpoint}


def check_outputs(folder, names=None):
    """Check every file directly in ``folder`` (those of ``names`` only, if given) by its kind; staging
    files are not outputs and are left to :func:`leftovers`. Returns the names checked."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    checked = []
    for entry in sorted(os.listdir(folder)):
        path = folder / entry
        if files.writer_pid(entry) is not None or not path.is_file() or (names is not None and entry not in names):
            continue
        suffix = ".pth" if entry.endswith(".pth") else path.suffix
        if suffix in CHECKS:
            CHECKS[suffix](path)
            checked.append(entry)
    return checked
