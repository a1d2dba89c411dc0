"""Run one recbole-ext command in this process with a fault planted: the child process of the fault
injection tests (tests/test_faults.py). Test-only code: the package knows nothing of it.

    PYTHONPATH=REPO python -m tests.fault_child COMMAND [ARG ...]     COMMAND: run | hyper | benchmark | convert | synth

Faults, from the environment (seeded by what the command does, never by time):

``FAULT_KILL=EVENT:N[:NAME]``  SIGKILL this process at the Nth EVENT (counting only files named NAME,
    a glob, if given):
    ``batch``    a training batch's backward pass (named ``epochE``: ``batch:5:epoch2`` is the fifth
                 batch of the third epoch);
    ``write``    a file write, part-way: half of its first block is on disk (the staged writes of
                 recbole_ext.files and the dataset files of recbole_ext.data.atomic);
    ``rename``   a written file or dataset folder, just before it is renamed into place;
    ``renamed``  just after that rename;
    ``result``   hyper: the Nth trial result the search's driver receives (a Ray Tune callback).
``FAULT_FSIZE=BYTES[:N[:NAME]]``  from the Nth file write on (of files named NAME, if given; default:
    the first write), no file this process writes may grow beyond BYTES (``RLIMIT_FSIZE``, with
    ``SIGXFSZ`` ignored, so the write fails with EFBIG as on a full disk).
``FAULT_WEIGHTS=PATH``  run: save the trained model's ``state_dict`` to PATH when the run is done.
"""

import fnmatch
import os
import resource
import signal
import sys
from pathlib import Path


def _parse_kill():
    text = os.environ.get("FAULT_KILL")
    if not text:
        return None, 0, "*"
    event, count, *name = text.split(":", 2)
    return event, int(count), name[0] if name else "*"


KILL_EVENT, KILL_AT, KILL_NAME = _parse_kill()
FSIZE = os.environ.get("FAULT_FSIZE")
counts = {}


def die():
    sys.stdout.flush()
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def event(kind, name="*"):
    """Count an event; SIGKILL this process if it is the planted one."""
    if kind != KILL_EVENT or not fnmatch.fnmatch(name, KILL_NAME):
        return
    counts[kind] = counts.get(kind, 0) + 1
    if counts[kind] == KILL_AT:
        die()


writes = [0]


def on_write(name):
    """Before each file write: apply the file size limit from the Nth write on."""
    if not FSIZE:
        return
    parts = FSIZE.split(":", 2)
    limit, start, pattern = parts[0], parts[1] if len(parts) > 1 else "1", parts[2] if len(parts) > 2 else "*"
    if not fnmatch.fnmatch(name, pattern):
        return
    writes[0] += 1
    if writes[0] == int(start):
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (int(limit), int(limit)))


class KilledPartWay:
    """A file whose first write puts half its data on disk, then the process is killed."""

    def __init__(self, f):
        self._f = f

    def write(self, data):
        self._f.write(data[: max(1, len(data) // 2)])
        self._f.flush()
        os.fsync(self._f.fileno())
        die()

    def __getattr__(self, name):
        return getattr(self._f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return self._f.__exit__(*exc)


def opener(target_name):
    """``open`` for a module whose writes are counted: ``target_name(path)`` is the file's final name."""

    def counted_open(path, mode="r", *args, **kwargs):
        if not any(flag in mode for flag in "wax"):
            return open(path, mode, *args, **kwargs)
        name = target_name(Path(path))
        on_write(name)
        f = open(path, mode, *args, **kwargs)
        if KILL_EVENT == "write" and fnmatch.fnmatch(name, KILL_NAME):
            counts["write"] = counts.get("write", 0) + 1
            if counts["write"] == KILL_AT:
                return KilledPartWay(f)
        return f

    return counted_open


class OsWithCountedRename:
    """The ``os`` module of one recbole-ext module, whose ``replace`` counts renames."""

    def __getattr__(self, name):
        return getattr(os, name)

    @staticmethod
    def replace(source, target):
        name = Path(target).name
        event("rename", name)
        os.replace(source, target)
        event("renamed", name)


def plant():
    import torch

    import recbole_ext  # noqa: F401
    from recbole_ext import files
    from recbole_ext.data import atomic

    if KILL_EVENT == "batch":
        from recbole.trainer import Trainer

        backward, train_epoch, epoch = torch.Tensor.backward, Trainer._train_epoch, [0]

        def counted_backward(self, *args, **kwargs):
            event("batch", f"epoch{epoch[0]}")
            return backward(self, *args, **kwargs)

        def tracked_epoch(self, train_data, epoch_idx, *args, **kwargs):
            epoch[0] = epoch_idx
            return train_epoch(self, train_data, epoch_idx, *args, **kwargs)

        torch.Tensor.backward = counted_backward
        Trainer._train_epoch = tracked_epoch

    def staged_target(path):
        match = files._STAGING.match(path.name)
        return match["name"] if match else path.name

    files.open = opener(staged_target)
    files.os = OsWithCountedRename()
    atomic.open = opener(lambda path: path.name)
    atomic.os = OsWithCountedRename()

    weights = os.environ.get("FAULT_WEIGHTS")
    if weights:
        from recbole_ext.trainer import ResumableTraining

        finish = ResumableTraining.finish

        def finish_and_keep_weights(self):
            torch.save({k: v.detach().cpu() for k, v in self.model.state_dict().items()}, weights)
            finish(self)

        ResumableTraining.finish = finish_and_keep_weights


def kill_on_result():
    """A Ray Tune callback that kills the search's driver at the Nth trial result. Ray keeps it with
    the experiment (tuner.pkl), by reference to this module (see the end of the file): a resumed
    search reads its own FAULT_KILL."""
    from ray import tune

    class KillOnResult(tune.Callback):
        def on_trial_result(self, iteration, trials, trial, result, **info):
            if os.environ.get("FAULT_KILL", "").startswith("result:"):
                event("result")

    return KillOnResult()


def main(argv):
    command, args = argv[0], argv[1:]
    plant()
    if command in ("run", "benchmark"):
        from recbole_ext.__main__ import main as command_main

        return command_main([command, *args])
    if command == "hyper":
        from recbole_ext import hyper

        return hyper.main(args, prog="python -m recbole_ext hyper", callbacks=[kill_on_result()])
    if command == "convert":
        from recbole_ext.data.convert import main as convert_main

        return convert_main(args)
    if command == "synth":
        from recbole_ext.data.synth import main as synth_main

        return synth_main(args)
    raise SystemExit(f"fault_child: unknown command {command!r}")


if __name__ == "__main__":
    # run as tests.fault_child, not __main__: what Ray pickles from here is then found by name, not
    # copied with this process's fault settings
    from tests import fault_child

    sys.exit(fault_child.main(sys.argv[1:]))
