"""Reading a lean dataset's interaction file at scale (``lean_sequences``, every plugin RNN).

RecBole reads an atomic file with pandas' Python parser (16 s for 2M lines here) into one Python
string per token cell (~60 bytes each), counts users and items with ``collections.Counter`` and
remaps every token through a Python dict: a 31.7M-line log needs minutes and several GB before any
sample exists. For a lean dataset's interaction file the hooks (:mod:`recbole_ext.hooks.dataset`)
take these steps instead, with the same result:

* :func:`categorical_reading`: a file of ``token`` and ``float`` columns and a one-character
  separator is read by pyarrow's CSV reader, every ``token`` column as a ``Categorical`` of strings
  (``007`` and ``7`` stay two tokens): one small integer per cell plus each distinct token once.
  pyarrow is told pandas' own missing-value strings, quoting and blank-line rules; a file it cannot
  parse the same way (a short or long row, text in a float column, bytes that are not UTF-8 …)
  is read again by pandas' C parser, whose errors the data checks report by line. On a 31.7M-line
  log pandas' C parser took 36 s, 20 of them merging the categories of its chunks; pyarrow reads it
  in 4 s (using the machine's cores) and the categoricals are built in 13 s with pandas 2, which
  checks the 8M session tokens for uniqueness again (pandas 3 is told they are unique).
* :func:`filter_by_inter_num`: RecBole's k-core filter (``user_inter_num_interval``,
  ``item_inter_num_interval``) on counts of the categorical codes.
* :func:`remap_categorical`: RecBole's remap (ids in order of first appearance, ``[PAD]`` first) by
  factorising the codes; ``field2token_id`` answers from a pandas index built when first asked.
"""

import contextlib
import threading
from collections.abc import Mapping

import numpy as np
import pandas
import pyarrow
import pyarrow.compute
import pyarrow.csv
from pandas._libs.parsers import STR_NA_VALUES  # the strings pandas reads as missing

_reading = threading.local()
# pandas 2 parses a "category" column's categories as strings; pandas 3 infers them ('007' -> 7,
# merging '007' with '7'), so there a token column is read as pandas' str (Arrow-backed: ~12 bytes
# a cell while read, not a Python string's ~60) and made categorical once read
PANDAS_2 = int(pandas.__version__.split(".")[0]) < 3
TOKEN_DTYPE = "category" if PANDAS_2 else "str"
# the categories of a token column read by pyarrow: its strings, without a copy per token
CATEGORY_STRINGS = "string[pyarrow]" if PANDAS_2 else "str"


@contextlib.contextmanager
def categorical_reading():
    """While it is open, :func:`read_csv` reads token columns as categories with the C parser."""
    _reading.categorical = True
    try:
        yield
    finally:
        _reading.categorical = False


def read_csv(*args, **kwargs):
    """``pandas.read_csv`` as RecBole's ``_load_feat`` calls it; inside :func:`categorical_reading`,
    with categorical token columns, read by pyarrow or else by pandas' C parser where either reads
    the values RecBole's Python parser would."""
    if getattr(_reading, "categorical", False):
        dtype = kwargs.get("dtype") or {}
        separator = kwargs.get("delimiter", kwargs.get("sep"))
        simple = isinstance(separator, str) and len(separator) == 1 and separator != " "
        if simple and not any(str(column).endswith("seq") for column in dtype):
            tokens = [column for column in dtype if str(column).endswith(":token")]
            frame = _read_with_arrow(args[0] if args else kwargs.get("filepath_or_buffer"), separator, tokens, kwargs)
            if frame is not None:
                return frame
            kwargs["dtype"] = {**dtype, **dict.fromkeys(tokens, TOKEN_DTYPE)}
            kwargs["engine"] = "c"
            frame = pandas.read_csv(*args, **kwargs)
            for column in tokens:
                if column in frame and not is_categorical(frame[column]):
                    frame[column] = frame[column].astype("category")
            return frame
    return pandas.read_csv(*args, **kwargs)


def _read_with_arrow(path, separator, tokens, kwargs):
    """The frame pandas' C parser reads (token columns categorical), read by pyarrow; None when
    pyarrow does not read it the way pandas would, or may not."""
    usecols, dtype = kwargs.get("usecols"), kwargs.get("dtype") or {}
    encoding = str(kwargs.get("encoding") or "utf-8").lower().replace("_", "-")
    floats = [column for column in dtype if column not in tokens and dtype[column] in (float, np.float64)]
    if (not isinstance(path, str) or encoding not in ("utf-8", "utf8") or not usecols
            or list(usecols) != list(dtype) or len(set(usecols)) != len(usecols)
            or len(tokens) + len(floats) != len(usecols)):
        return None
    strings = pyarrow.dictionary(pyarrow.int32(), pyarrow.string())
    try:
        table = pyarrow.csv.read_csv(
            path,
            read_options=pyarrow.csv.ReadOptions(block_size=1 << 24),
            parse_options=pyarrow.csv.ParseOptions(delimiter=separator, quote_char='"', double_quote=True,
                                                   escape_char=False, newlines_in_values=False,
                                                   ignore_empty_lines=True),
            convert_options=pyarrow.csv.ConvertOptions(
                include_columns=list(usecols), null_values=sorted(STR_NA_VALUES), strings_can_be_null=True,
                column_types={column: strings if column in tokens else pyarrow.float64() for column in usecols}),
        ).unify_dictionaries()
    except (pyarrow.ArrowException, ValueError, KeyError):
        return None
    if table.column_names != list(usecols):
        return None
    columns = {}
    for name in usecols:
        column = table.column(name)
        if name in tokens:
            chunks = column.chunks
            dictionary = chunks[0].dictionary if chunks else pyarrow.array([], pyarrow.string())
            codes = np.concatenate([pyarrow.compute.fill_null(chunk.indices, -1).to_numpy() for chunk in chunks]
                                   or [np.array([], dtype=np.int32)])
            categories = _unique_categories(pandas.Index(pandas.array(dictionary, dtype=CATEGORY_STRINGS)))
            columns[name] = pandas.Categorical.from_codes(codes, dtype=categories, validate=False)
        else:
            columns[name] = column.to_numpy()
    return pandas.DataFrame(columns, copy=False)


def _unique_categories(strings):
    """The categorical dtype of ``strings``, known to be unique (pyarrow's dictionary holds each string
    once), without pandas 3 hashing them again to check (7 s for RSC15's 8M sessions; pandas 2
    checks when the column is made, whatever the dtype says)."""
    from_fastpath = getattr(pandas.CategoricalDtype, "_from_fastpath", None)
    return from_fastpath(strings, False) if from_fastpath is not None else pandas.CategoricalDtype(strings)


def is_categorical(values):
    return isinstance(getattr(values, "dtype", None), pandas.CategoricalDtype)


def filter_by_inter_num(dataset):
    """RecBole's ``_filter_by_inter_num`` on categorical columns without user or item features:
    users and items whose number of interactions is outside the intervals are dropped, until none
    is. Returns False (nothing done) where RecBole's own must run."""
    inter = dataset.inter_feat
    uid, iid = dataset.uid_field, dataset.iid_field
    if uid is None or iid is None or dataset.user_feat is not None or dataset.item_feat is not None:
        return False
    if not (is_categorical(inter[uid]) and is_categorical(inter[iid])):
        return False
    intervals = {uid: dataset._parse_intervals_str(dataset.config["user_inter_num_interval"]),
                 iid: dataset._parse_intervals_str(dataset.config["item_inter_num_interval"])}
    if all(value is None for value in intervals.values()):
        return True
    while True:
        dropped = np.zeros(len(inter), dtype=bool)
        for field, interval in intervals.items():
            if interval is None:
                continue
            codes = inter[field].cat.codes.to_numpy()
            counts = np.bincount(codes[codes >= 0], minlength=len(inter[field].cat.categories))
            distinct = np.unique(counts[counts > 0])
            allowed = [c for c in distinct.tolist() if dataset._within_intervals(c, interval)]
            banned = (counts > 0) & ~np.isin(counts, allowed)
            dropped |= (codes >= 0) & banned[np.maximum(codes, 0)]
        if not dropped.any():
            return True
        inter.drop(inter.index[dropped], inplace=True)


def remap_categorical(dataset, remap_list):
    """RecBole's ``_remap`` of a group whose every column is a categorical interaction column;
    returns False (nothing done) for any other group."""
    if not remap_list or not all(is_categorical(feat[field]) for feat, field, _ in remap_list):
        return False
    columns = [feat[field] for feat, field, _ in remap_list]
    tokens = columns[0].cat.categories
    if any(not column.cat.categories.equals(tokens) for column in columns[1:]):
        union = pandas.api.types.union_categoricals([c.values for c in columns]).categories
        columns = [column.cat.set_categories(union) for column in columns]
        tokens = union
    codes = np.concatenate([column.cat.codes.to_numpy().astype(np.int64) for column in columns])
    # ids in order of first appearance, as pandas.factorize gives RecBole; a missing cell is 0 ([PAD])
    present = codes >= 0
    ids, first_codes = pandas.factorize(codes[present])
    new_ids = np.zeros(len(codes), dtype=np.int64)
    new_ids[present] = ids + 1
    id_tokens = np.concatenate([np.array(["[PAD]"]), np.asarray(tokens[first_codes], dtype=str)])
    token_ids = TokenIds(id_tokens)
    start = 0
    for (feat, field, _), column in zip(remap_list, columns):
        if field not in dataset.field2id_token:
            dataset.field2id_token[field] = id_tokens
            dataset.field2token_id[field] = token_ids
        feat[field] = new_ids[start : start + len(column)]
        start += len(column)
    return True


class TokenIds(Mapping):
    """``{token: id}`` over an array of tokens (id = position), with the lookup table built on first
    use: RecBole builds a dict of every token (a 7.9M-session log: ~1 GB) that only ``token2id`` reads."""

    def __init__(self, id_tokens):
        self._tokens = id_tokens
        self._index = None

    def _lookup(self):
        if self._index is None:
            self._index = pandas.Index(self._tokens)
        return self._index

    def __getitem__(self, token):
        position = self._lookup().get_indexer([token])[0]
        if position < 0:
            raise KeyError(token)
        return int(position)

    def __contains__(self, token):
        return token in self._lookup()

    def __iter__(self):
        return iter(self._tokens)

    def __len__(self):
        return len(self._tokens)
