"""Checks of a dataset's atomic files before RecBole trains on them (called by :mod:`recbole_ext.hooks.dataset`).

RecBole 1.2.1 reads ``.inter``/``.item``/``.user``/… files with pandas and repairs what it finds:
a missing or NaN value of a float field becomes the column's mean, so an empty timestamp re-orders
the sessions and gives dwell times of days, and repeated rows train and evaluate as if they were
separate events. Other bad files end in a traceback that names neither the file nor the column.
The checks turn each into a :class:`~recbole_ext.errors.DataError` that names the file, the
column and the first bad line, raised while the dataset loads, before any training:

* every atomic file RecBole reads: not empty (0 bytes), bytes that decode with the ``encoding`` key
  (default UTF-8), a header of ``name:type`` columns with a RecBole type, every column ``load_col``
  lists present in the header, every row with one value per header column (pandas would drop an
  extra value, or read a missing one as empty, without a word), values of ``float`` columns that are
  numbers (or empty: RecBole fills those with the mean, except for the time);
* the interaction file's label columns — the rating a rating model regresses (``RATING_FIELD``), the
  field ``threshold`` labels by, ``LABEL_FIELD`` — hold a number in every row: a row whose label is
  empty or ``nan`` is dropped with a :class:`DataWarning` giving the count (RecBole would train and
  test on the column's mean in its place);
* the interaction file: at least one row; when ``TIME_FIELD`` is loaded — RecBole orders by it
  (sequential datasets, ``order: TO`` splits, ``rm_dup_inter``) — it is declared ``:float`` and
  every value is a finite number (leave the column out of ``load_col`` if times are not needed);
* rows repeated exactly (every loaded column equal): a :class:`DataWarning` with the count, or,
  with the ``dedup: True`` key, dropped before anything else sees them. Not checked when the file
  has a time column that ``load_col`` leaves out: then a later click on the same item looks alike;
* sequential datasets: at least one sequence (``USER_ID_FIELD``) of two or more events, else there
  is nothing to train on;
* after the split (``eval_args``): no split that the config asks for is empty — with
  ``{'LS': 'valid_and_test'}`` a sequence needs 3 events for a test sample and 4 for a validation
  sample, and RecBole would otherwise train and report ``None`` as the result.
"""

import codecs
import csv
import math
import os
import re
import warnings

import numpy as np
import pandas
from recbole.data.dataset import SequentialDataset
from recbole.utils import FeatureSource, FeatureType

from recbole_ext.errors import ConfigError, DataError, RecBoleExtWarning

TYPES = sorted(feature_type.value for feature_type in FeatureType)
_CHUNK_BYTES = 1 << 24


class DataWarning(RecBoleExtWarning):
    """Data that trains, but probably not as meant (e.g. repeated rows, rows dropped)."""


class AtomicFile:
    """One atomic file as RecBole will read it: encoding, separator, header columns and types."""

    def __init__(self, path, config):
        self.path = str(path)
        self.encoding = config["encoding"] or "utf-8"  # pandas' default when the key is unset
        self.separator = config["field_separator"]
        try:
            codecs.lookup(self.encoding)
        except LookupError:
            raise ConfigError(
                f"encoding: {self.encoding!r} is not an encoding Python knows; use e.g. 'utf-8'"
            ) from None
        self.columns, self.types = [], []
        self._sniffed = None  # the separator pandas will sniff when field_separator is unset

    def error(self, line, column, problem):
        where = f"{self.path}, line {line}" + (f", column {column!r}" if column is not None else "")
        return DataError(f"{where}: {problem}")

    def read_header(self):
        """Check that the file is not empty and that its header, as RecBole parses it, is
        ``name:type`` columns; keep the columns and types."""
        if os.path.getsize(self.path) == 0:
            raise DataError(f"{self.path}: the file is empty (0 bytes); an atomic file starts with a header "
                            "line of name:type columns, then one row per line")
        with open(self.path, "rb") as f:
            line = f.readline()
        try:
            line = line.decode(self.encoding)
        except UnicodeDecodeError as error:
            raise self._undecodable(1, None, line[error.start:error.end]) from None
        head = line[:-1] if line.endswith("\n") else line  # RecBole drops the last character
        if self.separator is None:
            try:
                self._sniffed = csv.Sniffer().sniff(head).delimiter
            except csv.Error:
                self._sniffed = None
        for column in head.split(self.separator):
            name, colon, declared = column.partition(":")
            if not colon:
                raise self.error(1, column, f"the header column has no type; write each header column as "
                                 f"name:type with type one of {TYPES} (e.g. {column}:token for ids, "
                                 f"{column}:float for numbers and times)")
            if declared not in TYPES:
                raise self.error(1, name, f"type {declared!r} is not a RecBole type; use one of {TYPES}")
            self.columns.append(name)
            self.types.append(declared)

    def _undecodable(self, line, column, bad_bytes):
        return self.error(line, column, f"bytes {bad_bytes!r} are not {self.encoding} (the encoding key); "
                          f"re-encode the file as {self.encoding} or set encoding to the file's encoding")

    def has_rows(self):
        """Whether any non-blank line follows the header; checks that every byte decodes and that
        every row has one value per header column."""
        separator = self._separator_byte()
        with open(self.path, "rb") as f:
            f.readline()  # the header, checked by read_header
            lines_before, rows = 1, False
            while chunk := f.read(_CHUNK_BYTES):
                chunk += f.readline()  # whole lines only, so a multi-byte character is never cut
                try:
                    text = chunk.decode(self.encoding)
                except UnicodeDecodeError as error:
                    line_start = chunk.rfind(b"\n", 0, error.start) + 1
                    line = lines_before + chunk.count(b"\n", 0, error.start) + 1
                    raise self._undecodable(line, self._column_at(chunk[line_start:error.start]),
                                            chunk[error.start:error.end]) from None
                rows = rows or bool(text.strip())
                if separator is not None:
                    self._check_field_counts(chunk, separator, lines_before)
                lines_before += chunk.count(b"\n")
        return rows

    def _separator_byte(self):
        """The separator as one byte when rows can be counted on bytes (one ASCII character in an
        ASCII-compatible encoding), else None (those files are not counted)."""
        separator = self._sniffed if self.separator is None else self.separator
        if not separator or len(separator) != 1 or not separator.isascii():
            return None
        try:
            if "\n".encode(self.encoding) != b"\n" or separator.encode(self.encoding) != separator.encode("ascii"):
                return None
        except (UnicodeError, LookupError):
            return None
        return separator.encode("ascii")[0]

    def _check_field_counts(self, chunk, separator, lines_before):
        """Raise for the first line of ``chunk`` (whole lines) whose number of fields is not the
        header's; blank lines are skipped (pandas does), and a file that quotes fields is not counted."""
        data = np.frombuffer(chunk, dtype=np.uint8)
        newlines = np.flatnonzero(data == 10)
        ends = newlines if len(data) and data[-1] == 10 else np.r_[newlines, len(data)]
        starts = np.r_[0, newlines + 1][: len(ends)]
        found = np.flatnonzero(data == separator)
        fields = np.searchsorted(found, ends) - np.searchsorted(found, starts) + 1
        for index in np.flatnonzero(fields != len(self.columns)):
            line = chunk[starts[index]:ends[index]]
            if not line.strip():
                continue  # blank
            if b'"' in chunk:
                return  # quoted fields may hold the separator: pandas parses those, a count cannot
            number = lines_before + int(index) + 1
            count = int(fields[index])
            shown = ", ".join(self.columns)
            raise self.error(number, None, f"{count} field{'s' if count != 1 else ''}, but the header has "
                             f"{len(self.columns)} columns ({shown}); write one value per header column in "
                             f"every row, separated by {chr(separator)!r} (an empty value is allowed)")

    def _column_at(self, line_start_bytes):
        """The column in which a line starting with these bytes continues."""
        index = len(self.split(line_start_bytes.decode(self.encoding, errors="replace"))) - 1
        return self.columns[index] if index < len(self.columns) else None

    def split(self, text):
        if self.separator is None:
            return text.split(self._sniffed) if self._sniffed else text.split()
        if len(self.separator) == 1:
            return text.split(self.separator)
        return re.split(self.separator, text.strip())  # pandas' python engine: a regex on the stripped line

    def first_bad_row(self, float_columns, time_column):
        """(line, column, problem) of the first row with a float column's value that is not a number
        or a time that is missing or not finite; None if every row is fine."""
        positions = [(self.columns.index(name), name) for name in float_columns]
        with open(self.path, encoding=self.encoding) as f:
            f.readline()
            for line_number, line in enumerate(f, start=2):
                line = line.rstrip("\r\n")
                if not line:
                    continue  # pandas skips blank lines
                fields = self.split(line)
                fields += [""] * (len(self.columns) - len(fields))  # pandas: missing trailing fields are NaN
                for index, name in positions:
                    value = fields[index].strip()
                    if name == time_column and not value:
                        return line_number, name, "the time is missing; every event needs a time (a number)"
                    try:
                        number = float(value) if value else math.nan
                    except ValueError:
                        return line_number, name, f"{value!r} is not a number"
                    if name == time_column and not math.isfinite(number):
                        return line_number, name, f"the time is {value!r}; every event needs a finite time"
        return None

    def first_missing(self, columns):
        """The line of the first row whose value in one of ``columns`` is empty or not a finite
        number (``nan``), or None."""
        positions = [self.columns.index(name) for name in columns]
        with open(self.path, encoding=self.encoding) as f:
            f.readline()
            for line_number, line in enumerate(f, start=2):
                line = line.rstrip("\r\n")
                if not line:
                    continue
                fields = self.split(line)
                for index in positions:
                    value = fields[index].strip() if index < len(fields) else ""
                    try:
                        if not value or math.isnan(float(value)):
                            return line_number
                    except ValueError:
                        continue
        return None


def label_columns(dataset):
    """``{column: what it is}`` for the interaction columns a label is made from: the rating of a
    rating model (its dataset's ``label_source_columns()``), the field ``threshold`` labels by, and
    ``LABEL_FIELD``."""
    config = dataset.config
    columns = dict(getattr(dataset, "label_source_columns", dict)())
    threshold = config["threshold"]
    if isinstance(threshold, dict):
        for field in threshold:
            columns.setdefault(field, f"the field threshold labels interactions by (threshold: {threshold})")
    if config["LABEL_FIELD"]:
        columns.setdefault(config["LABEL_FIELD"], "the label (LABEL_FIELD)")
    return columns


def drop_missing_labels(dataset, atomic, feat):
    """``feat`` without the rows whose label column (:func:`label_columns`) is empty or nan, with a
    :class:`DataWarning` giving their count; a :class:`DataError` if no row is left."""
    checked = {name: role for name, role in label_columns(dataset).items()
               if name in feat and name in atomic.columns
               and atomic.types[atomic.columns.index(name)] == FeatureType.FLOAT.value}
    if not checked:
        return feat
    missing = np.zeros(len(feat), dtype=bool)
    for name in checked:
        missing |= feat[name].isna().to_numpy()
    count = int(missing.sum())
    if not count:
        return feat
    what = " or ".join(f"{name!r} ({role})" for name, role in checked.items())
    model = dataset.config["model"]
    if count == len(feat):
        raise DataError(f"{atomic.path}: every row's {what} is empty or nan; {model} needs a number there "
                        "in every row it trains or tests on")
    line = atomic.first_missing(list(checked))
    warnings.warn(f"{atomic.path}: dropped {count} of {len(feat)} rows whose {what} is empty or nan"
                  + (f" (the first on line {line})" if line else "")
                  + f": {model} trains and tests on that value, and RecBole would put the column's mean in its place",
                  DataWarning, stacklevel=2)
    return feat[~missing].reset_index(drop=True)


def checked_load_feat(self, filepath, source, load):
    """``load()`` (RecBole's ``Dataset._load_feat`` of ``filepath``) with the file checked first and
    a value pandas cannot parse reported by file, line and column."""
    load_col, unload_col = self._get_load_and_unload_col(source)
    if load_col == set():
        return load()  # RecBole does not read the file
    atomic = AtomicFile(filepath, self.config)
    atomic.read_header()
    has_rows = atomic.has_rows()
    is_inter = source == FeatureSource.INTERACTION
    if is_inter and not has_rows:
        raise DataError(f"{atomic.path}: the file has a header but no rows; nothing to train on")
    absent = sorted(load_col - set(atomic.columns)) if load_col is not None else []
    if absent:
        raise atomic.error(1, None, f"load_col lists {', '.join(map(repr, absent))} for the "
                           f"{getattr(source, 'value', source)} file, but its header has no such column "
                           f"(columns: {', '.join(atomic.columns)}); add the column to the file or leave it out "
                           "of load_col")
    loaded = [name for name in atomic.columns
              if (load_col is None or name in load_col) and (unload_col is None or name not in unload_col)]
    time_column = self.time_field if is_inter and self.time_field in loaded else None
    if is_inter:
        # without its times, a session's second click on an item looks like a repeated row
        self._time_left_out = self.time_field in atomic.columns and time_column is None
    if time_column is not None:
        declared = atomic.types[atomic.columns.index(time_column)]
        if declared != FeatureType.FLOAT.value:
            raise atomic.error(1, time_column, f"the time field (TIME_FIELD) is declared "
                               f"'{time_column}:{declared}'; declare it '{time_column}:float' (RecBole orders "
                               "events by it)")
    float_columns = [name for name, declared in zip(atomic.columns, atomic.types)
                     if declared == FeatureType.FLOAT.value and name in loaded]
    try:
        feat = load()
    except ValueError as error:  # pandas could not parse a row or a value
        bad = atomic.first_bad_row(float_columns, time_column)
        if bad is None:
            raise
        raise atomic.error(*bad) from error
    if is_inter and feat is not None:
        feat = drop_missing_labels(self, atomic, feat)
    if time_column is not None and feat is not None:
        times = feat[time_column].to_numpy(dtype=np.float64)
        if not np.isfinite(times).all():
            bad = atomic.first_bad_row(float_columns, time_column)
            if bad is None:
                raise DataError(f"{atomic.path}: column {time_column!r} holds "
                                f"{int((~np.isfinite(times)).sum())} missing or infinite times")
            raise atomic.error(*bad)
    return feat


def _dedup(config):
    value = config["dedup"]
    if value is not None and not isinstance(value, bool):
        raise ConfigError(f"dedup: {value!r} is not allowed; use True (drop repeated rows) or False")
    return bool(value)


def repeated_rows(self, token, dataset_path):
    """After RecBole loaded the interactions: warn about rows repeated in every loaded column, or
    drop them with ``dedup: True``."""
    dedup = _dedup(self.config)
    feat = self.inter_feat
    if feat is None or feat.empty or getattr(self, "_time_left_out", False):
        return
    if self.benchmark_filename_list is None:
        files, sizes = [os.path.join(dataset_path, f"{token}.inter")], [len(feat)]
    else:
        files = [os.path.join(dataset_path, f"{token}.{name}.inter") for name in self.benchmark_filename_list]
        sizes = self.file_size_list
    # a row repeats only within its own file: the same event in a train and a test file is the
    # benchmark's choice, not a copy
    starts = np.cumsum([0, *sizes])
    repeated = np.concatenate([repeated_rows_mask(feat.iloc[start:end]) for start, end in zip(starts[:-1], starts[1:])])
    if not repeated.any():
        return
    first = feat[repeated].iloc[0]
    example = ", ".join(f"{name}={value}" for name, value in first.items())
    counts = [int(repeated[start:end].sum()) for start, end in zip(starts[:-1], starts[1:])]
    where = "; ".join(f"{path}: {count}" for path, count in zip(files, counts) if count)
    if dedup:
        self.inter_feat = feat[~repeated].reset_index(drop=True)
        if self.benchmark_filename_list is not None:
            self.file_size_list = [size - count for size, count in zip(sizes, counts)]
        warnings.warn(f"dropped {int(repeated.sum())} rows that repeat an earlier row in every loaded column "
                      f"({where}; e.g. {example}) because dedup is True", DataWarning, stacklevel=2)
    else:
        warnings.warn(f"{int(repeated.sum())} rows repeat an earlier row in every loaded column ({where}; e.g. "
                      f"{example}); they train and evaluate as separate events. Set dedup: True to drop them",
                      DataWarning, stacklevel=2)


def repeated_rows_mask(frame):
    """``frame.duplicated(keep="first")`` as a boolean array, found in two passes: a 64-bit hash of
    each row (a categorical column hashed by its codes) picks the rows whose hash another row shares
    (found by sorting the hashes), and only those are compared by value. Equal rows hash equally, so
    nothing is missed; on 31.7M rows this takes ~6 s where pandas' factorising of every column took 17 s."""
    repeated = np.zeros(len(frame), dtype=bool)
    if frame.empty:
        return repeated
    codes = {name: frame[name].cat.codes for name in frame.columns
             if isinstance(frame[name].dtype, pandas.CategoricalDtype)}
    hashes = pandas.util.hash_pandas_object(frame.assign(**codes) if codes else frame, index=False).to_numpy()
    ordered = np.sort(hashes)
    shared = np.unique(ordered[1:][ordered[1:] == ordered[:-1]])
    if len(shared):
        candidates = np.isin(hashes, shared)
        repeated[candidates] = frame[candidates].duplicated(keep="first").to_numpy()
    return repeated


def require_a_sequence(self):
    """Before the augmentation: some sequence has two or more events."""
    sequences = self.inter_feat[self.uid_field].numpy()
    if len(sequences) == 0 or np.bincount(sequences).max() < 2:
        raise _no_sequence(self, f" ({len(np.unique(sequences))} sequences of one event)")


def _no_sequence(self, counted=""):
    path = os.path.join(self.dataset_path, f"{self.dataset_name}.inter")
    return DataError(
        f"{path}: no sequence (column {self.uid_field!r}) has two or more events after loading and "
        f"filtering{counted}, so {self.config['model']} has nothing to train on: it predicts each event "
        "from the ones before it in its sequence"
    )


SPLITS = ("training", "validation", "test")


def _wanted_splits(split_args):
    """Which of (train, valid, test) ``eval_args['split']`` asks for."""
    mode, value = next(iter(split_args.items()))
    if mode == "LS":
        return {"valid_and_test": (True, True, True), "valid_only": (True, True, False),
                "test_only": (True, False, True)}.get(value, (True, False, False))
    ratios = list(value) + [0] * (3 - len(value))
    return tuple(ratio > 0 for ratio in ratios[:3])


def require_splits(self, datasets):
    """After RecBole's split: no split that ``eval_args`` asks for is empty; returns ``datasets``."""
    if self.benchmark_filename_list is not None:
        return datasets  # the splits are the user's files
    split_args = self.config["eval_args"]["split"]
    if isinstance(self, SequentialDataset) and len(self.inter_feat) == 0:
        raise _no_sequence(self)  # every sequence had one event: the augmentation made no sample
    for name, wanted, dataset in zip(SPLITS, _wanted_splits(split_args), datasets):
        if wanted and len(dataset) == 0:
            path = os.path.join(self.dataset_path, f"{self.dataset_name}.inter")
            if isinstance(self, SequentialDataset):
                # after augmentation a sequence of n events is n - 1 samples
                samples = np.bincount(self.inter_feat[self.uid_field].numpy())
                size = f"{int((samples > 0).sum())} sequences (column {self.uid_field!r}) of at most " \
                       f"{int(samples.max()) + 1} events"
            else:
                size = f"{len(self.inter_feat)} interactions"
            raise DataError(f"{path}: the {name} split is empty (eval_args split: {split_args}, {size} after "
                            "loading and filtering); give longer sequences or more data, or change eval_args")
    return datasets
