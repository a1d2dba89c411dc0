"""Writing session data as RecBole atomic files plus the dataset YAML that reads them.

The dataset folder ``OUT/NAME/`` holds ``NAME.inter`` and ``NAME.yaml`` and nothing else. Rules that
keep a typo from costing data:

* ``NAME`` is one plain folder name (:data:`NAME_RULE`): no ``.``/``..``, no separators, nothing
  hidden, so ``OUT/NAME`` is always a new entry directly inside ``OUT``;
* an existing ``OUT/NAME`` is replaced only with ``overwrite=True`` (``--overwrite``), and only when
  it is a dataset folder as written here: a real folder holding nothing but ``NAME.inter`` and
  ``NAME.yaml`` (regular files). Anything else is left alone and reported;
* nothing is removed outside a staging folder created for this write: the new dataset is written
  there and renamed into place; the folder it replaces is first moved into the staging folder, and
  only its two files are deleted, by name. No recursive delete;
* the staging folder's name holds the writer's process id: the next write of ``OUT/NAME`` finishes
  what a killed writer left (:func:`recover_killed_writes`).
"""

import contextlib
import os
import re
import tempfile
from itertools import islice
from pathlib import Path

import numpy as np
import yaml

from recbole_ext import files
from recbole_ext.errors import DataError, OutputError

INTER_HEADER = "session_id:token\titem_id:token\ttimestamp:float\n"
WRITE_CHUNK_ROWS = 65536  # rows formatted at once by write_sessions
NAME_RULE = "one plain folder name of at most 100 letters, digits, '.', '_' or '-' that starts with a letter or digit"
_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def dataset_config(data_path):
    """The RecBole settings for a session dataset written by :func:`write_sessions`."""
    return {
        "data_path": str(Path(data_path).resolve()),
        "USER_ID_FIELD": "session_id",
        "ITEM_ID_FIELD": "item_id",
        "TIME_FIELD": "timestamp",
        "load_col": {"inter": ["session_id", "item_id", "timestamp"]},
        "normalize_all": False,
    }


def dataset_files(name):
    """The files of a dataset folder written by :func:`write_sessions`."""
    return (f"{name}.inter", f"{name}.yaml")


def check_name(name):
    """Raise :class:`DataError` unless ``name`` is one plain path component (see :data:`NAME_RULE`)."""
    if not isinstance(name, str) or not _NAME_PATTERN.fullmatch(name):
        raise DataError(f"--name: {name!r} is not allowed; use {NAME_RULE} (e.g. rsc15)")


def check_output(out_dir, name, overwrite=False):
    """Check, before any work, that ``out_dir/name`` may be written; returns that path.

    Raises :class:`DataError` for a bad name, an ``out_dir`` that is a file, or an existing
    ``out_dir/name`` that is not ours to replace (or is not to be replaced: ``overwrite`` False).
    """
    check_name(name)
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise DataError(f"output folder {str(out_dir)!r} is a file; give a folder (it is created if missing)")
    recover_killed_writes(out_dir, name)
    final = out_dir / name
    if os.path.lexists(final):
        if not overwrite:
            raise DataError(f"{str(final)!r} already exists; pass --overwrite to replace it "
                            f"(allowed only for a dataset folder holding nothing but {name}.inter and {name}.yaml)")
        _check_ours(final, name, final)
    return final


def _check_ours(folder, name, shown):
    """Raise unless ``folder`` is a real folder holding only our dataset's regular files."""
    files = dataset_files(name)
    allowed = f"--overwrite replaces only a folder holding nothing but {' and '.join(files)}; move it away yourself"
    if folder.is_symlink() or not folder.is_dir():
        kind = "a link" if folder.is_symlink() else "a file"
        raise DataError(f"{str(shown)!r} is {kind}, not a dataset folder written by recbole-ext; {allowed}")
    others = sorted(entry for entry in os.listdir(folder)
                    if entry not in files or (folder / entry).is_symlink() or not (folder / entry).is_file())
    if others:
        listed = ", ".join(others[:3]) + (f" and {len(others) - 3} more" if len(others) > 3 else "")
        raise DataError(f"{str(shown)!r} holds {listed}, so it is not a dataset folder written by recbole-ext; "
                        f"{allowed}")


def recover_killed_writes(out_dir, name):
    """Finish what killed writers of ``out_dir/name`` left: a dataset folder that an ``--overwrite``
    had moved aside and not yet replaced goes back to ``out_dir/name``; their staging folders'
    files (our two, by name) and the then empty folders are removed."""
    final = Path(out_dir) / name
    for staging in files.stale_staging_dirs(out_dir, name):
        replaced = staging / "replaced"
        if os.path.lexists(replaced) and not os.path.lexists(final):
            os.replace(replaced, final)  # the earlier dataset, untouched
        _remove_ours(staging / name, name)
        if os.path.isdir(replaced) and not os.path.islink(replaced):
            _remove_ours(replaced, name)  # the earlier dataset, already replaced by the new one
        with contextlib.suppress(OSError):
            staging.rmdir()  # left in place if anything unexpected is inside


def _remove_ours(folder, name):
    """Delete our dataset's files in ``folder`` by name, then the folder if that left it empty."""
    for file in dataset_files(name):
        with contextlib.suppress(FileNotFoundError):
            (folder / file).unlink()
    with contextlib.suppress(FileNotFoundError, OSError):
        folder.rmdir()


def _row(session, item, time):
    """One row of the ``.inter`` file: the format :func:`_inter_chunks` reproduces byte for byte."""
    return f"{session}\t{item}\t{time:.3f}\n"


def _as_column(values, kinds):
    """``values`` as a 1-D numpy array if it is one (or a pandas Series/Index) of a dtype kind in
    ``kinds``, else None."""
    dtype = getattr(values, "dtype", None)
    if not isinstance(dtype, np.dtype) or dtype.kind not in kinds or dtype.itemsize > 8:
        return None
    if getattr(values, "ndim", 0) != 1:
        return None
    return np.asarray(values)


def _inter_chunks(sessions, items, times, chunk_rows):
    """The rows of the ``.inter`` file (no header) as strings of at most ``chunk_rows`` rows each.

    Integer session/item arrays and integer or float time arrays are formatted a chunk at a time
    by one ``%`` operation (``"%d"`` of a Python int is its ``str``, ``"%.3f"`` of a float is its
    ``f"{:.3f}"``): the bytes of :func:`_row`, several times faster. Anything else (lists,
    iterators, other dtypes) goes row by row through :func:`_row`. Like ``zip``, stops at the
    shortest input.
    """
    arrays = [_as_column(sessions, "iu"), _as_column(items, "iu"), _as_column(times, "iuf")]
    if any(array is None for array in arrays):
        rows = zip(sessions, items, times)
        while chunk := list(islice(rows, chunk_rows)):
            yield "".join(_row(*row) for row in chunk)
        return
    n = min(len(array) for array in arrays)
    for start in range(0, n, chunk_rows):
        stop = min(n, start + chunk_rows)
        values = [None] * (3 * (stop - start))
        for column, array in enumerate(arrays):
            values[column::3] = array[start:stop].tolist()
        yield ("%d\t%d\t%.3f\n" * (stop - start)) % tuple(values)


def write_sessions(sessions, items, times, out_dir, name, overwrite=False, chunk_rows=WRITE_CHUNK_ROWS):
    """Write ``out_dir/name/name.inter`` and ``out_dir/name/name.yaml`` and return the YAML's path.

    ``sessions``, ``items`` and ``times`` are equal-length sequences (times in seconds); numpy
    arrays are written ``chunk_rows`` rows at a time (memory: one chunk's text besides the
    arrays). The folder appears only complete: it is written in a staging folder and renamed. An
    existing ``out_dir/name`` is replaced only with ``overwrite`` and only if it is one of ours
    (module doc).
    """
    out_dir = Path(out_dir)
    final = check_output(out_dir, name, overwrite)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=files.staging_dir_prefix(name), dir=out_dir))
    except OSError as error:
        raise DataError(f"output folder {str(out_dir)!r}: cannot write there ({error.strerror})") from error
    new, replaced = staging / name, staging / "replaced"
    replaced_is_ours = False  # set once the folder moved aside is checked to hold only our files
    try:
        new.mkdir()
        inter_file, yaml_file = (new / file for file in dataset_files(name))
        with open(inter_file, "w", encoding="utf-8") as f:
            f.write(INTER_HEADER)
            for text in _inter_chunks(sessions, items, times, chunk_rows):
                f.write(text)
        with open(yaml_file, "w", encoding="utf-8") as f:
            yaml.safe_dump(dataset_config(out_dir), f, sort_keys=False)
        if os.path.lexists(final):
            if not overwrite:
                check_output(out_dir, name, overwrite)  # appeared meanwhile: the same error as before
            os.replace(final, replaced)
            _check_ours(replaced, name, final)  # again, now that nobody else can add to it
            replaced_is_ours = True
        os.replace(new, final)
    except BaseException as error:
        replaced_is_ours = False  # kept whole if it cannot go back
        if os.path.lexists(replaced) and not os.path.lexists(final):
            os.replace(replaced, final)  # the old folder goes back untouched
        if isinstance(error, OSError):  # a full disk, a file size limit: nothing of the new dataset is left
            raise OutputError(f"cannot write {final}: {error.strerror or error}; "
                              f"{'the earlier dataset is kept' if os.path.lexists(final) else 'nothing was written'}"
                              ) from error
        raise
    finally:
        _remove_ours(new, name)
        if replaced_is_ours:
            _remove_ours(replaced, name)
        with contextlib.suppress(OSError):
            staging.rmdir()  # left in place if anything unexpected is inside
    return final / f"{name}.yaml"
