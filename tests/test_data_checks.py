"""Bad atomic files end in one DataError naming the file, the column and the first bad line, raised
while the dataset loads (before any training); repeated rows warn, or are dropped with dedup."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from recbole.config import Config
from recbole.data import create_dataset

from recbole_ext.data.atomic import INTER_HEADER, dataset_config
from recbole_ext.data.checks import DataWarning
from recbole_ext.errors import ConfigError, DataError
from tests.conftest import quick_test, write_ml_slice

REPO = Path(__file__).resolve().parents[1]
# 12 sessions of 4 clicks: rows on lines 2..49 of the file
ROWS = "".join(f"{s}\t{(3 * s + k) % 10 + 1}\t{100 * s + 10 * k}\n" for s in range(1, 13) for k in range(4))
TYPES = "['float', 'float_seq', 'token', 'token_seq']"


def write_inter(tmp_path, content, name="clicks"):
    """Write ``content`` (str or bytes) as ``name.inter``; returns (run settings, the file's path)."""
    folder = tmp_path / "data" / name
    folder.mkdir(parents=True)
    inter = folder / f"{name}.inter"
    inter.write_bytes(content if isinstance(content, bytes) else content.encode())
    config = {**dataset_config(tmp_path / "data"), "dataset": name, "model": "GRU4Rec", "epochs": 1,
              "show_progress": False, "state": "ERROR", "checkpoint_dir": str(tmp_path / "saved"),
              "embedding_size": 8, "hidden_size": 8, "train_batch_size": 64, "eval_batch_size": 64}
    return config, str(inter.resolve())


def run_error(config, error_class=DataError):
    """Run and return the message of the error it ends with; nothing was trained or saved."""
    with pytest.raises(ConfigError) as error:
        quick_test(config)
    assert type(error.value) is error_class
    assert not os.path.exists(config["checkpoint_dir"])
    return str(error.value)


BAD_FILES = {
    # name: (content, message after the path)
    "empty": (b"", ": the file is empty (0 bytes); an atomic file starts with a header line of name:type "
                   "columns, then one row per line"),
    "header only": (INTER_HEADER, ": the file has a header but no rows; nothing to train on"),
    "untyped header": ("session_id\titem_id:token\ttimestamp:float\n" + ROWS,
                       ", line 1, column 'session_id': the header column has no type; write each header column "
                       f"as name:type with type one of {TYPES} (e.g. session_id:token for ids, session_id:float for "
                       "numbers and times)"),
    "unknown type": ("session_id:token\titem_id:id\ttimestamp:float\n" + ROWS,
                     f", line 1, column 'item_id': type 'id' is not a RecBole type; use one of {TYPES}"),
    "time as token": (INTER_HEADER.replace("timestamp:float", "timestamp:token") + ROWS,
                      ", line 1, column 'timestamp': the time field (TIME_FIELD) is declared 'timestamp:token'; "
                      "declare it 'timestamp:float' (RecBole orders events by it)"),
    "empty time": (INTER_HEADER + ROWS + "13\t2\t\n13\t3\t1310\n",
                   ", line 50, column 'timestamp': the time is missing; every event needs a time (a number)"),
    "missing field": (INTER_HEADER + ROWS + "13\t2\n",
                      ", line 50: 2 fields, but the header has 3 columns (session_id, item_id, timestamp); write one "
                      "value per header column in every row, separated by '\\t' (an empty value is allowed)"),
    "extra field": (INTER_HEADER + ROWS[:40] + "13\t2\t1300\t7\n" + ROWS[40:],
                    ", line 7: 4 fields, but the header has 3 columns (session_id, item_id, timestamp); write one "
                    "value per header column in every row, separated by '\\t' (an empty value is allowed)"),
    "load_col names a column the file lacks": (
        "session_id:token\titem_id:token\n" + "".join("\t".join(r.split("\t")[:2]) + "\n" for r in ROWS.splitlines()),
        ", line 1: load_col lists 'timestamp' for the inter file, but its header has no such column (columns: "
        "session_id, item_id); add the column to the file or leave it out of load_col"),
    "NaN time": (INTER_HEADER + ROWS + "13\t2\tnan\n",
                 ", line 50, column 'timestamp': the time is 'nan'; every event needs a finite time"),
    "text time": (INTER_HEADER + ROWS + "13\t2\t2014-04-07\n",
                  ", line 50, column 'timestamp': '2014-04-07' is not a number"),
    "not UTF-8": (INTER_HEADER.encode() + ROWS.encode() + b"13\tcaf\xe9\t1300\n",
                  ", line 50, column 'item_id': bytes b'\\xe9' are not utf-8 (the encoding key); re-encode the "
                  "file as utf-8 or set encoding to the file's encoding"),
    "one-click sessions": (INTER_HEADER + "".join(f"{s}\t{s % 10 + 1}\t{s}\n" for s in range(1, 30)),
                           ": no sequence (column 'session_id') has two or more events after loading and filtering "
                           "(29 sequences of one event), so GRU4Rec has nothing to train on: it predicts each event "
                           "from the ones before it in its sequence"),
    "two-click sessions": (INTER_HEADER + "".join(f"{s}\t{s % 10 + 1}\t{s}\n{s}\t{s % 7 + 1}\t{s + 1}\n"
                                                  for s in range(1, 30)),
                           ": the validation split is empty (eval_args split: {'LS': 'valid_and_test'}, 29 sequences "
                           "(column 'session_id') of at most 2 events after loading and filtering); give longer "
                           "sequences or more data, or change eval_args"),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_bad_interaction_file_is_one_named_error_before_training(tmp_path, case):
    content, message = BAD_FILES[case]
    config, inter = write_inter(tmp_path, content)
    assert run_error(config) == inter + message


def test_missing_time_is_an_error_for_any_model_that_loads_the_time(tmp_path):
    # RecBole would fill the empty time with the column mean, silently, for a general model too
    write_ml_slice(tmp_path, n_users=20)
    inter = tmp_path / "ml-tiny" / "ml-tiny.inter"
    lines = inter.read_text().splitlines(keepends=True)
    lines[7] = "\t".join(lines[7].split("\t")[:3]) + "\t\n"
    inter.write_text("".join(lines))
    config = {"dataset": "ml-tiny", "data_path": str(tmp_path), "model": "BPR", "epochs": 1, "state": "ERROR",
              "show_progress": False, "checkpoint_dir": str(tmp_path / "saved"),
              "load_col": {"inter": ["user_id", "item_id", "timestamp"]}}
    assert run_error(config) == (f"{inter}, line 8, column 'timestamp': the time is missing; every event needs "
                                 "a time (a number)")


def test_repeated_rows_warn_with_their_count_and_train(tmp_path):
    # sessions 1 and 2 twice over, one of them once more: 8 + 4 = 12 repeated rows
    repeated = ROWS.splitlines(keepends=True)[:8]
    config, inter = write_inter(tmp_path, INTER_HEADER + ROWS + "".join(repeated) + "".join(repeated[4:]))
    with pytest.warns(DataWarning) as warned:
        result = quick_test(config)
    assert [str(w.message) for w in warned if w.category is DataWarning] == [
        f"12 rows repeat an earlier row in every loaded column ({inter}: 12; e.g. session_id=1, item_id=4, "
        "timestamp=100.0); they train and evaluate as separate events. Set dedup: True to drop them"
    ]
    assert 0.0 <= result["test_result"]["ndcg@10"] <= 1.0


def test_repeated_rows_are_pandas_duplicated_rows():
    """The hash-then-compare search finds exactly pandas' ``duplicated(keep="first")``: categorical
    and float columns, missing values, and a row equal to another in all but one column."""
    import numpy as np
    import pandas

    from recbole_ext.data.checks import repeated_rows_mask

    rng = np.random.default_rng(0)
    n = 5000
    frame = pandas.DataFrame({
        "session": pandas.Categorical(rng.integers(0, 40, n).astype(str)),
        "item": pandas.Categorical(rng.integers(0, 12, n).astype(str)),
        "time": rng.integers(0, 8, n).astype(float),
    })
    frame.loc[[3, 9], "time"] = np.nan
    frame.loc[9, ["session", "item"]] = frame.loc[3, ["session", "item"]]
    expected = frame.duplicated(keep="first").to_numpy()
    assert 0 < expected.sum() < n and expected[9]
    np.testing.assert_array_equal(repeated_rows_mask(frame), expected)
    distinct = frame.drop_duplicates()
    assert not repeated_rows_mask(distinct).any() and len(repeated_rows_mask(frame.iloc[:0])) == 0


def test_dedup_drops_exact_repeats_only(tmp_path):
    repeated = ROWS.splitlines(keepends=True)[:3]
    same_item_later = "1\t4\t105\n"  # the same click at another time is a separate event
    config, inter = write_inter(tmp_path, INTER_HEADER + ROWS + "".join(repeated) + same_item_later)
    with pytest.warns(DataWarning, match=r"^dropped 3 rows that repeat an earlier row in every loaded column \("):
        dataset = create_dataset(Config(model="GRU4Rec", dataset="clicks", config_dict={**config, "dedup": True}))
    assert dataset.inter_num == 48 + 1
    with pytest.warns(DataWarning, match=r"^3 rows repeat"):
        dataset = create_dataset(Config(model="GRU4Rec", dataset="clicks", config_dict={**config, "dedup": False}))
    assert dataset.inter_num == 48 + 3 + 1


def test_dedup_must_be_a_boolean(tmp_path):
    config, _ = write_inter(tmp_path, INTER_HEADER + ROWS)
    assert run_error({**config, "dedup": "yes"}, ConfigError) == (
        "dedup: 'yes' is not allowed; use True (drop repeated rows) or False")


def test_run_script_ends_with_the_error_line_and_exit_code_2(tmp_path):
    config, inter = write_inter(tmp_path, INTER_HEADER + ROWS + "13\t2\t\n")
    config_file = tmp_path / "clicks.yaml"
    config_file.write_text(yaml.safe_dump({key: value for key, value in config.items() if key != "model"}))
    done = subprocess.run([sys.executable, str(REPO / "run.py"), "--model=GRU4Rec", "--dataset=clicks",
                           f"--config_files={config_file}"], capture_output=True, text=True, timeout=120,
                          cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 2
    assert done.stderr.splitlines()[-1].endswith(
        f"{inter}, line 50, column 'timestamp': the time is missing; every event needs a time (a number)")


def test_rows_are_not_compared_when_the_time_is_left_out(tmp_path, recwarn):
    # session 1 clicks item 4 twice: alike without the times, two events with them
    config, _ = write_inter(tmp_path, INTER_HEADER + ROWS + "1\t4\t150\n")
    config["load_col"] = {"inter": ["session_id", "item_id"]}
    dataset = create_dataset(Config(model="BPR", dataset="clicks", config_dict=config))
    assert dataset.inter_num == 49
    assert not [w for w in recwarn if w.category is DataWarning]


@pytest.mark.parametrize("train_mode", ["sequence", "session", "prefix"])
def test_one_event_sequences_are_one_named_error_in_every_train_mode(tmp_path, train_mode):
    # the empty split check used to end in a numpy error instead
    config, inter = write_inter(tmp_path, INTER_HEADER + "".join(f"{s}\t{s % 10 + 1}\t{s}\n" for s in range(1, 30)))
    message = run_error({**config, "model": "RNNCCE", "train_mode": train_mode})
    assert message == (f"{inter}: no sequence (column 'session_id') has two or more events after loading and "
                       "filtering (29 sequences of one event), so RNNCCE has nothing to train on: it predicts "
                       "each event from the ones before it in its sequence")


def test_rows_without_the_field_a_threshold_labels_by_are_dropped(tmp_path):
    # BPR labels each interaction by rating >= 4: an empty rating would have been the mean rating
    write_ml_slice(tmp_path, n_users=20)
    inter = tmp_path / "ml-tiny" / "ml-tiny.inter"
    lines = inter.read_text().splitlines(keepends=True)
    for number in (4, 9):
        fields = lines[number - 1].split("\t")
        lines[number - 1] = "\t".join([*fields[:2], "", fields[3]])
    inter.write_text("".join(lines))
    config = Config(model="BPR", dataset="ml-tiny", config_dict={
        "data_path": str(tmp_path), "state": "ERROR", "threshold": {"rating": 4},
        "load_col": {"inter": ["user_id", "item_id", "rating", "timestamp"]}})
    with pytest.warns(DataWarning) as warned:
        dataset = create_dataset(config)
    assert [str(w.message) for w in warned if w.category is DataWarning] == [
        f"{inter}: dropped 2 of {len(lines) - 1} rows whose 'rating' (the field threshold labels interactions by "
        "(threshold: {'rating': 4})) is empty or nan (the first on line 4): BPR trains and tests on that value, and "
        "RecBole would put the column's mean in its place"]
    assert dataset.inter_num == len(lines) - 3
