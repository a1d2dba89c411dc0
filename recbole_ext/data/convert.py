"""Convert public session logs into RecBole atomic files (``session_id item_id timestamp``).

    python -m recbole_ext.data.convert rsc15 yoochoose-clicks.dat data
    python -m recbole_ext.data.convert diginetica train-item-views.csv data

Formats: RSC15 ``yoochoose-clicks.dat`` (no header, ``SessionID,Timestamp,ItemID,Category``, ISO 8601
times) and Diginetica ``train-item-views.csv`` (``;``-separated with a header,
``sessionId;userId;itemId;timeframe;eventdate``, ``timeframe`` in ms since the session start).
The input is read in chunks of lines; a row with the wrong number of fields or an unparseable value
is skipped and counted. GRU4Rec's filters are applied in its order: sessions shorter than
``--min_session_length``, then items with fewer than ``--min_item_support`` events, then short
sessions again. Times are written in seconds since the first event of the log (float32, which
RecBole uses for float fields, keeps about 1 s over six months). The output folder
``OUTPUT_DIR/NAME/`` (``NAME.inter`` and ``NAME.yaml``) appears only once complete; an existing one
is replaced only with ``--overwrite`` (and only if it holds nothing else); train with
``python run.py --model=DwellGRU4Rec --dataset=NAME --config_files=OUTPUT_DIR/NAME/NAME.yaml``.
"""

import argparse
import os
import sys
from itertools import islice
from pathlib import Path

import numpy as np
import pandas as pd

from recbole_ext.data.atomic import NAME_RULE, check_output, write_sessions
from recbole_ext.cli import bad_input
from recbole_ext.errors import DataError, RecBoleExtError


def _ids(text):
    """Whole-number ids of a column of text; anything else (``1.5``, ``inf``, past int64) is missing,
    so its row is skipped and counted as malformed rather than written as a wrapped-around id."""
    values = pd.to_numeric(text, errors="coerce")
    return values.where((values == np.floor(values)) & (values.abs() < 2.0**63))


def _rsc15(parts):
    session = _ids(parts[0])
    item = _ids(parts[2])
    stamp = pd.to_datetime(parts[1], errors="coerce", utc=True, format="ISO8601")
    seconds = (stamp - pd.Timestamp(0, tz="UTC")).dt.total_seconds()
    return session, item, seconds


def _diginetica(parts):
    session = _ids(parts[0])
    item = _ids(parts[2])
    offset_ms = pd.to_numeric(parts[3], errors="coerce")
    day = pd.to_datetime(parts[4], errors="coerce", utc=True, format="%Y-%m-%d")
    seconds = (day - pd.Timestamp(0, tz="UTC")).dt.total_seconds() + offset_ms / 1000.0
    return session, item, seconds


FORMATS = {
    # name: (separator, fields per row, header line, parser)
    "rsc15": (",", 4, False, _rsc15),
    "diginetica": (";", 5, True, _diginetica),
}


BLOCK = 1 << 20  # rows handled at once where a step need not see the whole log


def _resized(array, rows, capacity, dtype=None):
    """A new array of ``capacity`` values (and ``dtype``) whose first ``rows`` are ``array``'s."""
    new = np.empty(capacity, array.dtype if dtype is None else dtype)
    new[:rows] = array[:rows]
    return new


class _Columns:
    """The session, item and time columns of a log, filled chunk by chunk into arrays sized ahead.

    Each chunk is copied in as it is parsed rather than kept and joined at the end: a kept chunk sits
    in the heap among the freed text of later chunks, where glibc keeps the pages, so joining held
    the numbers twice (benchmarks/results/scaling/streaming-data-tools.md). The capacity is
    estimated from the share of the file read so far and grows by at least a quarter when short;
    arrays this large are mapped pages, so capacity never written costs address space, not memory.
    Ids are int32 while every one fits (the same values), then int64.
    """

    def __init__(self, file_size):
        self.file_size = file_size
        self.arrays = [np.empty(0, np.int32), np.empty(0, np.int32), np.empty(0, np.float64)]
        self.rows = 0

    def add(self, chunk, bytes_read):
        """Append ``chunk`` (int64 sessions, int64 items, float64 seconds) after ``bytes_read`` bytes."""
        end = self.rows + len(chunk[0])
        if end > len(self.arrays[0]):
            expected = int(end * max(self.file_size / max(bytes_read, 1), 1.0) * 1.05) + 1024
            capacity = max(end, expected, len(self.arrays[0]) + len(self.arrays[0]) // 4)
            for column in range(3):
                self.arrays[column] = _resized(self.arrays[column], self.rows, capacity)
        int32 = np.iinfo(np.int32)
        for column, values in enumerate(chunk):
            array = self.arrays[column]
            if array.dtype == np.int32 and len(values) and (values.min() < int32.min or values.max() > int32.max):
                self.arrays[column] = array = _resized(array, self.rows, len(array), np.int64)
            array[self.rows: end] = values
        self.rows = end

    def result(self):
        return [array[: self.rows] for array in self.arrays]


def read_log(path, log_format, chunk_lines=250_000):
    """Return (sessions, items, seconds, rows read, rows skipped) of a whole log.

    The log is read ``chunk_lines`` lines at a time: the text of one chunk is held at once, and the
    parsed numbers of all (:class:`_Columns`). Session and item ids come back as int32 when all of
    them fit, else int64 (the same values either way); seconds as float64.
    """
    separator, n_fields, header, parse = FORMATS[log_format]
    read = skipped = 0
    with open(path, encoding="utf-8", errors="replace") as f:
        columns = _Columns(os.fstat(f.fileno()).st_size)
        if header:
            f.readline()
        while lines := list(islice(f, chunk_lines)):
            text = pd.Series(lines, dtype=str).str.rstrip("\r\n")
            del lines
            text = text[text != ""]
            read += len(text)
            parts = text.str.split(separator, expand=True, regex=False)
            del text
            well_formed = parts.notna().sum(axis=1) == n_fields
            parts = parts[well_formed]
            session, item, time = parse(parts) if len(parts) else (pd.Series(dtype=float),) * 3
            del parts
            valid = session.notna() & item.notna() & time.notna()
            skipped += len(well_formed) - int(valid.sum())  # well_formed has a row per non-empty line
            columns.add((session[valid].to_numpy(np.int64), item[valid].to_numpy(np.int64),
                         time[valid].to_numpy(np.float64)), f.buffer.tell())
            del session, item, time, valid
    return (*columns.result(), read, skipped)


def _in_order(sessions, seconds):
    """Whether rows are sorted by session, then time, so np.lexsort would keep them as they are
    (a NaN within a session counts as out of order)."""
    for start in range(0, len(sessions) - 1, BLOCK):
        stop = min(len(sessions), start + BLOCK + 1)
        before, after = sessions[start: stop - 1], sessions[start + 1: stop]
        if not (after >= before).all():
            return False
        same = after == before
        if not (seconds[start + 1: stop][same] >= seconds[start: stop - 1][same]).all():
            return False
    return True


def _session_blocks(sessions):
    """Row ranges of about BLOCK rows that start and end at session boundaries (``sessions`` sorted)."""
    start, n = 0, len(sessions)
    while start < n:
        stop = min(n, start + BLOCK)
        if stop < n:
            stop = int(np.searchsorted(sessions, sessions[stop], side="left"))  # back to the session's start
            if stop <= start:  # one session of more than BLOCK rows
                stop = int(np.searchsorted(sessions, sessions[start], side="right"))
        yield start, stop
        start = stop


def _long_sessions(sessions, min_session_length, kept=None):
    """Rows of the sessions with at least ``min_session_length`` rows (of ``kept``, if given), as a
    new mask; ``sessions`` sorted, handled a block of whole sessions at a time."""
    long = np.empty(len(sessions), dtype=bool)
    for start, stop in _session_blocks(sessions):
        block = sessions[start:stop]
        firsts = np.flatnonzero(np.r_[True, block[1:] != block[:-1]])
        lengths = np.diff(firsts, append=len(block))
        counts = lengths if kept is None else np.add.reduceat(kept[start:stop], firsts, dtype=np.int64)
        long[start:stop] = np.repeat(counts >= min_session_length, lengths)
    return long


def _supported_items(items, kept, min_item_support):
    """Rows of ``kept`` whose item has at least ``min_item_support`` kept rows, as a new mask; a
    block of rows at a time."""
    blocks = [slice(start, start + BLOCK) for start in range(0, len(items), BLOCK)]
    ids = np.unique(np.concatenate([np.unique(items[rows]) for rows in blocks] or [items[:0]]))
    counts = np.zeros(len(ids), dtype=np.int64)
    for rows in blocks:
        counts += np.bincount(np.searchsorted(ids, items[rows][kept[rows]]), minlength=len(ids))
    supported = counts >= min_item_support
    kept = kept.copy()
    for rows in blocks:
        at = np.flatnonzero(kept[rows])
        kept[rows][at] = supported[np.searchsorted(ids, items[rows][at])]
    return kept


def _filter_columns(columns, min_session_length, min_item_support):
    """GRU4Rec's filters on ``columns`` = [sessions, items, seconds], a list whose arrays are replaced.

    Sorting first and filtering the sorted rows keeps the rows, in the order, that filtering first
    and sorting the rest would (np.lexsort is stable). Each column is replaced in turn, so the old
    one is freed (if the caller holds it nowhere else) before the next is copied.
    """
    if not _in_order(columns[0], columns[2]):
        order = np.lexsort((columns[2], columns[0]))
        for column in range(3):
            columns[column] = columns[column][order]
        del order
    sessions, items = columns[0], columns[1]
    keep = _long_sessions(sessions, min_session_length)
    keep = _supported_items(items, keep, min_item_support)
    keep &= _long_sessions(sessions, min_session_length, keep)  # at most two row masks at once
    del sessions, items
    if not keep.all():
        for column in range(3):
            columns[column] = columns[column][keep]


def gru4rec_filters(sessions, items, seconds, min_session_length=2, min_item_support=5):
    """GRU4Rec's preprocessing filters; returns the kept events sorted by session, then time.

    Sessions shorter than ``min_session_length`` go, then items with fewer than
    ``min_item_support`` events, then sessions the item filter left too short.
    """
    columns = [sessions, items, seconds]
    _filter_columns(columns, min_session_length, min_item_support)
    # new arrays, as always: where nothing moved, the columns are still the caller's own
    return tuple(new.copy() if new is old else new for new, old in zip(columns, (sessions, items, seconds)))


def convert(log_format, input_path, output_dir, name=None, min_session_length=2, min_item_support=5,
            chunk_lines=250_000, overwrite=False):
    """Convert one log; returns (path of the dataset YAML, summary line).

    Memory: the text of one chunk of ``chunk_lines`` lines, plus the numeric columns (4 + 4 + 8
    bytes a row when the ids fit in int32), plus, while filtering, two row masks (1 byte a row each)
    and, where rows are dropped, a copy of one column; a log not sorted by session and time also
    needs an int64 sort order and a copy of one column while it is sorted.
    """
    name = log_format if name is None else name
    check_output(output_dir, name, overwrite)  # before reading a log that may take minutes
    *columns, read, skipped = read_log(input_path, log_format, chunk_lines)
    _filter_columns(columns, min_session_length, min_item_support)
    sessions, items, seconds = columns
    del columns
    if len(sessions) == 0:
        raise DataError(
            f"{input_path}: no events left after the filters (read {read} rows, skipped {skipped} malformed); "
            "check the format or lower --min_session_length / --min_item_support"
        )
    seconds -= seconds.min()  # in place: the same values as a subtraction into a new array
    config = write_sessions(sessions, items, seconds, output_dir, name, overwrite)
    n_sessions = 1 + int(np.count_nonzero(sessions[1:] != sessions[:-1]))  # sorted by session
    del sessions, seconds  # np.unique sorts a copy of the items: not on top of all three columns
    summary = (
        f"{log_format}: read {read} rows, skipped {skipped} malformed, kept {len(items)} events in "
        f"{n_sessions} sessions over {len(np.unique(items))} items; wrote {config.parent}"
    )
    return config, summary


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("format", choices=sorted(FORMATS), help="log format")
    parser.add_argument("input", help="the log file")
    parser.add_argument("output_dir", help="the dataset goes to OUTPUT_DIR/NAME/")
    parser.add_argument("--name", default=None, help=f"dataset name, {NAME_RULE} (default: the format's name)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing OUTPUT_DIR/NAME written by this tool (NAME.inter and NAME.yaml only)")
    parser.add_argument("--min_session_length", type=int, default=2)
    parser.add_argument("--min_item_support", type=int, default=5)
    parser.add_argument("--chunk_lines", type=int, default=250_000, help="lines read at once")
    args = parser.parse_args(argv)
    if not Path(args.input).is_file():
        parser.error(f"input: {args.input!r} is not a file")
    for key in ("min_session_length", "min_item_support", "chunk_lines"):
        if getattr(args, key) < 1:
            parser.error(f"--{key}: {getattr(args, key)} is not allowed; use a positive integer")
    try:
        _, summary = convert(args.format, args.input, args.output_dir, args.name, args.min_session_length,
                             args.min_item_support, args.chunk_lines, args.overwrite)
    except RecBoleExtError as error:
        return bad_input("convert", error)  # exit 2; 1 for an output that could not be written
    print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
