"""Output files written whole: every file the commands write (checkpoints, resume states, tables,
``run_hyper.json``) is written to a staging file beside it and renamed over it (``os.replace``), so a
reader, a killed writer or a full disk leaves the previous file or the new one, never part of one.

A staging file is named ``.NAME.PID-TOKEN.partial``: unique per writer (two processes writing the
same file at once never share one), and the writer's process id says whether it can still finish.
A write that fails removes its staging file; a killed writer cannot, so the next writer of that
folder removes the staging files of writers that are no longer running
(:func:`remove_stale_staging`). Nothing else is ever removed here.
"""

import contextlib
import os
import re
import secrets
from pathlib import Path

from recbole_ext.errors import OutputError

STAGING_SUFFIX = ".partial"
_STAGING = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)-(?P<token>[0-9a-f]{8})" + re.escape(STAGING_SUFFIX) + "$")


def staging_path(path):
    """A fresh staging path beside ``path`` for this process (see the module docstring)."""
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}{STAGING_SUFFIX}")


def process_is_running(pid):
    """Whether process ``pid`` exists (on this machine); a pid we may not signal is running."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def writer_pid(name):
    """The writer's process id if ``name`` is a staging name of this module (or of
    :func:`staging_dir_prefix`), else None."""
    match = _STAGING.match(name) or _STAGING_DIR.match(name)
    return int(match["pid"]) if match else None


def remove_stale_staging(folder, name=None):
    """Remove the staging files in ``folder`` (of target ``name`` only, if given) whose writer is no
    longer running: what a killed writer left. Returns the paths removed. Folders, other files and
    the staging files of running writers are left alone."""
    folder = Path(folder)
    removed = []
    try:
        entries = os.listdir(folder)
    except (FileNotFoundError, NotADirectoryError):
        return removed
    for entry in entries:
        match = _STAGING.match(entry)
        if not match or (name is not None and match["name"] != name):
            continue
        if process_is_running(int(match["pid"])):
            continue
        path = folder / entry
        if path.is_file() and not path.is_symlink():
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed.append(path)
    return removed


@contextlib.contextmanager
def staged(path, mode="w", **open_kwargs):
    """``with staged(path) as f: f.write(...)``: ``f`` is a staging file beside ``path``, flushed to
    disk and renamed over ``path`` when the block ends; if the block or the write fails, the staging
    file is removed, ``path`` is untouched and an :class:`OutputError` naming ``path`` is raised for
    an ``OSError`` (a full disk, a file size limit, a missing permission)."""
    path = Path(path)
    if "b" not in mode:
        open_kwargs.setdefault("encoding", "utf-8")
    staging = staging_path(path)
    try:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            remove_stale_staging(path.parent, path.name)
            with open(staging, mode, **open_kwargs) as f:
                yield f
                f.flush()
                os.fsync(f.fileno())
            os.replace(staging, path)
        except (OSError, RuntimeError) as error:
            # torch.save reports the OSError of a failed write as a RuntimeError from its C++ writer
            cause = error if isinstance(error, OSError) else error.__context__
            if not isinstance(cause, OSError) or isinstance(cause, OutputError):
                raise
            raise OutputError(f"cannot write {path}: {cause.strerror or cause}; "
                              f"{'the earlier file is kept' if path.exists() else 'nothing was written'}") from cause
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(staging)


def write_text(path, text):
    """Write ``text`` (UTF-8) to ``path`` whole (:func:`staged`)."""
    with staged(path) as f:
        f.write(text)


# Staging folders (a dataset folder is written in one and renamed): ``.NAME.staging-PID-XXXXXXXX``.
_STAGING_DIR = re.compile(r"^\.(?P<name>.+)\.staging-(?P<pid>\d+)-[A-Za-z0-9_]+$")


def staging_dir_prefix(name):
    """The ``tempfile.mkdtemp`` prefix of a staging folder for ``name``, carrying this process's id."""
    return f".{name}.staging-{os.getpid()}-"


def stale_staging_dirs(folder, name):
    """Staging folders for ``name`` in ``folder`` whose writer is no longer running."""
    folder = Path(folder)
    try:
        entries = os.listdir(folder)
    except (FileNotFoundError, NotADirectoryError):
        return []
    stale = []
    for entry in sorted(entries):
        match = _STAGING_DIR.match(entry)
        if match and match["name"] == name and not process_is_running(int(match["pid"])):
            path = folder / entry
            if path.is_dir() and not path.is_symlink():
                stale.append(path)
    return stale
