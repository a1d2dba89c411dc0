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
import sys
from itertools import islice
from pathlib import Path

import numpy as np
import pandas as pd

from recbole_ext.data.atomic import NAME_RULE, check_output, write_sessions
from recbole_ext.cli import bad_input
from recbole_ext.errors import DataError, RecBoleExtError


def _rsc15(parts):
    session = pd.to_numeric(parts[0], errors="coerce")
    item = pd.to_numeric(parts[2], errors="coerce")
    stamp = pd.to_datetime(parts[1], errors="coerce", utc=True, format="ISO8601")
    seconds = (stamp - pd.Timestamp(0, tz="UTC")).dt.total_seconds()
    return session, item, seconds


def _diginetica(parts):
    session = pd.to_numeric(parts[0], errors="coerce")
    item = pd.to_numeric(parts[2], errors="coerce")
    offset_ms = pd.to_numeric(parts[3], errors="coerce")
    day = pd.to_datetime(parts[4], errors="coerce", utc=True, format="%Y-%m-%d")
    seconds = (day - pd.Timestamp(0, tz="UTC")).dt.total_seconds() + offset_ms / 1000.0
    return session, item, seconds


FORMATS = {
    # name: (separator, fields per row, header line, parser)
    "rsc15": (",", 4, False, _rsc15),
    "diginetica": (";", 5, True, _diginetica),
}


def read_log(path, log_format, chunk_lines=1_000_000):
    """Return (sessions, items, seconds, rows read, rows skipped) of a whole log."""
    separator, n_fields, header, parse = FORMATS[log_format]
    sessions, items, seconds = [], [], []
    read = skipped = 0
    with open(path, encoding="utf-8", errors="replace") as f:
        if header:
            f.readline()
        while lines := list(islice(f, chunk_lines)):
            text = pd.Series(lines, dtype=str).str.rstrip("\r\n")
            text = text[text != ""]
            parts = text.str.split(separator, expand=True, regex=False)
            well_formed = parts.notna().sum(axis=1) == n_fields
            parts = parts[well_formed]
            session, item, time = parse(parts) if len(parts) else (pd.Series(dtype=float),) * 3
            valid = session.notna() & item.notna() & time.notna()
            read += len(text)
            skipped += len(text) - int(valid.sum())
            sessions.append(session[valid].to_numpy(np.int64))
            items.append(item[valid].to_numpy(np.int64))
            seconds.append(time[valid].to_numpy(np.float64))
    concat = lambda arrays, dtype: np.concatenate(arrays) if arrays else np.array([], dtype)  # noqa: E731
    return concat(sessions, np.int64), concat(items, np.int64), concat(seconds, np.float64), read, skipped


def gru4rec_filters(sessions, items, seconds, min_session_length=2, min_item_support=5):
    """GRU4Rec's preprocessing filters; returns the kept events sorted by session, then time."""

    def long_sessions(s):
        ids, counts = np.unique(s, return_counts=True)
        return np.isin(s, ids[counts >= min_session_length])

    keep = long_sessions(sessions)
    sessions, items, seconds = sessions[keep], items[keep], seconds[keep]
    ids, counts = np.unique(items, return_counts=True)
    keep = np.isin(items, ids[counts >= min_item_support])
    sessions, items, seconds = sessions[keep], items[keep], seconds[keep]
    keep = long_sessions(sessions)
    sessions, items, seconds = sessions[keep], items[keep], seconds[keep]
    order = np.lexsort((seconds, sessions))
    return sessions[order], items[order], seconds[order]


def convert(log_format, input_path, output_dir, name=None, min_session_length=2, min_item_support=5,
            chunk_lines=1_000_000, overwrite=False):
    """Convert one log; returns (path of the dataset YAML, summary line)."""
    name = log_format if name is None else name
    check_output(output_dir, name, overwrite)  # before reading a log that may take minutes
    sessions, items, seconds, read, skipped = read_log(input_path, log_format, chunk_lines)
    sessions, items, seconds = gru4rec_filters(sessions, items, seconds, min_session_length, min_item_support)
    if len(sessions) == 0:
        raise DataError(
            f"{input_path}: no events left after the filters (read {read} rows, skipped {skipped} malformed); "
            "check the format or lower --min_session_length / --min_item_support"
        )
    config = write_sessions(sessions, items, seconds - seconds.min(), output_dir, name, overwrite)
    summary = (
        f"{log_format}: read {read} rows, skipped {skipped} malformed, kept {len(sessions)} events in "
        f"{len(np.unique(sessions))} sessions over {len(np.unique(items))} items; wrote {config.parent}"
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
    parser.add_argument("--chunk_lines", type=int, default=1_000_000, help="lines read at once")
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
