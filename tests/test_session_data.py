"""Session-log converters and the seeded generator."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from recbole_ext.data import atomic, convert, synth
from recbole_ext.errors import OutputError
from tests.conftest import quick_test

RSC15 = (
    "1,2014-04-07T10:54:09.868Z,214536500,0\n"
    "1,2014-04-07T10:51:09.277Z,214536502,0\n"  # unsorted session
    "1,2014-04-07T10:54:46.998Z,214536506,0\n"
    "2,2014-04-07T13:56:37.614Z,214662742,0\n"
    "this,row,is,malformed,really\n"
    "2,2014-04-07T13:57:19.373Z,214536500,0\n"
    "3,2014-04-07T14:00:00.000Z,214536500,S\n"  # a session of length 1: filtered
)
DIGINETICA = (
    "sessionId;userId;itemId;timeframe;eventdate\n"
    "1;NA;81766;526309;2016-05-09\n"
    "1;NA;31331;1031018;2016-05-09\n"
    "1;NA;32118;243569;2016-05-09\n"  # out of time order
    "2;NA;9654;75848;2016-05-06\n"
    "2;NA;33043;not-a-number;2016-05-06\n"  # malformed
    "2;NA;33043;88000;2016-05-06\n"
)


def inter_lines(config_file):
    return (config_file.parent / f"{config_file.parent.name}.inter").read_text().splitlines()


def test_rsc15_converts_to_sorted_atomic_rows(tmp_path):
    (tmp_path / "clicks.dat").write_text(RSC15)
    config, summary = convert.convert("rsc15", tmp_path / "clicks.dat", tmp_path / "out", min_item_support=1)
    assert inter_lines(config) == [
        "session_id:token\titem_id:token\ttimestamp:float",
        "1\t214536502\t0.000",
        "1\t214536500\t180.591",
        "1\t214536506\t217.721",
        "2\t214662742\t11128.337",
        "2\t214536500\t11170.096",
    ]
    assert summary.startswith("rsc15: read 7 rows, skipped 1 malformed, kept 5 events in 2 sessions over 4 items")


def test_diginetica_converts_with_day_plus_offset_times(tmp_path):
    (tmp_path / "views.csv").write_text(DIGINETICA)
    config, summary = convert.convert("diginetica", tmp_path / "views.csv", tmp_path / "out", min_item_support=1)
    # session 2 is on 2016-05-06, session 1 three days later; offsets are ms since the session start
    three_days = 3 * 86400
    assert inter_lines(config)[1:] == [
        f"1\t32118\t{three_days + 243.569 - 75.848:.3f}",
        f"1\t81766\t{three_days + 526.309 - 75.848:.3f}",
        f"1\t31331\t{three_days + 1031.018 - 75.848:.3f}",
        "2\t9654\t0.000",
        f"2\t33043\t{88.0 - 75.848:.3f}",
    ]
    assert "read 6 rows, skipped 1 malformed" in summary


def test_gru4rec_filters_drop_rare_items_then_the_sessions_they_shorten(tmp_path):
    (tmp_path / "clicks.dat").write_text(RSC15)
    # with support >= 2 only item 214536500 stays (session 3 went first): sessions 1 and 2 shrink to
    # one event each and are dropped in the second pass, so nothing is left and nothing is written
    with pytest.raises(ValueError, match="no events left after the filters"):
        convert.convert("rsc15", tmp_path / "clicks.dat", tmp_path / "out", min_item_support=2)
    assert not (tmp_path / "out" / "rsc15").exists()


def old_gru4rec_filters(sessions, items, seconds, min_session_length, min_item_support):
    """gru4rec_filters as it was before it sorted first and filtered in place (the reference)."""

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


@pytest.mark.parametrize("seed", range(4))
def test_gru4rec_filters_keep_the_rows_and_order_of_filtering_then_sorting(seed, monkeypatch):
    # the blocked passes: blocks shorter than sessions, a few sessions, many, the whole log
    monkeypatch.setattr(convert, "BLOCK", (2, 16, 64, 1 << 20)[seed])
    rng = np.random.default_rng(seed)
    n = 300
    sessions = rng.integers(1, 90, n)
    items = rng.integers(10**9, 10**9 + 40, n).astype(np.int32)
    seconds = rng.integers(0, 50, n).astype(float)  # ties within sessions: the stable order decides
    if seed == 3:
        seconds[::37] = np.nan  # not from the converter (it skips them), but the function sorts them last
    in_order = np.lexsort((seconds, sessions))
    for columns in [(sessions, items, seconds), tuple(column[in_order] for column in (sessions, items, seconds))]:
        for min_session_length, min_item_support in [(1, 1), (2, 5), (3, 8), (4, 12), (40, 1)]:
            given = [column.copy() for column in columns]
            expected = old_gru4rec_filters(*columns, min_session_length, min_item_support)
            got = convert.gru4rec_filters(*given, min_session_length, min_item_support)
            assert all(a.dtype == b.dtype and np.array_equal(a, b, equal_nan=True) for a, b in zip(expected, got))
            assert all(np.array_equal(a, b, equal_nan=True) for a, b in zip(columns, given))  # inputs untouched
            assert not any(np.shares_memory(a, b) for a, b in zip(got, given))


def test_chunk_size_does_not_change_the_conversion(tmp_path, monkeypatch):
    monkeypatch.setattr(convert, "BLOCK", 4)
    text = (RSC15.replace("\n", "\r\n", 2) + "\n" + "9,2014-04-08T00:00:00.000Z,214536500,0\n"
            "5000000000,2014-04-08T00:00:01.500Z,214536506,0\n"  # a session id int32 cannot hold
            "5000000000,2014-04-08T00:00:02.000Z,214536502,0\n"
            "\n"
            "9,2014-04-07T23:59:59.999Z,214662742,0\n"
            "9,2014-04-08T00:00:00.000Z,3000000000,0\n")  # an item id int32 cannot hold
    (tmp_path / "clicks.dat").write_text(text)
    (tmp_path / "views.csv").write_text(DIGINETICA + "3;NA;9654;10;2016-05-07\n\n3;NA;31331;5;2016-05-07\n")
    summaries = {}
    for log_format, log in (("rsc15", "clicks.dat"), ("diginetica", "views.csv")):
        outputs = {}
        for chunk_lines in (1, 2, 3, 1000):
            name = f"{log_format}-{chunk_lines}"
            config, summary = convert.convert(log_format, tmp_path / log, tmp_path / "out", name, min_item_support=1,
                                              chunk_lines=chunk_lines)
            outputs[chunk_lines] = ((config.parent / f"{name}.inter").read_bytes(), summary.replace(name, "NAME"))
        assert all(output == outputs[1000] for output in outputs.values()), log_format
        summaries[log_format] = outputs[1000][1]
    assert summaries["rsc15"].startswith("rsc15: read 12 rows, skipped 1 malformed, kept 10 events in 4 sessions")
    assert summaries["diginetica"].startswith("diginetica: read 8 rows, skipped 1 malformed, kept 7 events in 3")
    inter = (tmp_path / "out" / "rsc15-1" / "rsc15-1.inter").read_text().splitlines()
    assert inter[-5:] == ["9\t214662742\t47330.722", "9\t214536500\t47330.723", "9\t3000000000\t47330.723",
                          "5000000000\t214536506\t47332.223", "5000000000\t214536502\t47332.723"]


def test_parsed_columns_grow_and_widen_as_chunks_come():
    rng = np.random.default_rng(0)
    chunks = [(rng.integers(0, 100, n), rng.integers(0, 100, n), rng.random(n)) for n in (5, 0, 3000, 7, 2000)]
    chunks[3][1][2] = 2**31  # an item id int32 cannot hold, after thousands of rows that fit
    columns = convert._Columns(file_size=10)  # a size that is far too small: capacity must grow
    for chunk in chunks:
        columns.add(chunk, bytes_read=10)
    sessions, items, seconds = columns.result()
    assert (sessions.dtype, items.dtype, seconds.dtype) == (np.int32, np.int64, np.float64)
    for got, column in zip((sessions, items, seconds), range(3)):
        assert np.array_equal(got, np.concatenate([chunk[column] for chunk in chunks]))


def test_output_folder_appears_only_complete(tmp_path):
    def failing_items():
        yield 1
        raise OSError("disk full")

    with pytest.raises(OutputError, match=f"^cannot write {tmp_path / 'broken'}: disk full; nothing was written$"):
        atomic.write_sessions([1, 1], failing_items(), [0.0, 1.0], tmp_path, "broken")
    assert list(tmp_path.iterdir()) == []


def per_row_inter(sessions, items, times):
    """The .inter text as write_sessions wrote it before it wrote in chunks: one f-string a row."""
    return atomic.INTER_HEADER + "".join(f"{s}\t{i}\t{t:.3f}\n" for s, i, t in zip(sessions, items, times))


def test_chunked_writer_gives_the_bytes_of_the_per_row_writer(tmp_path):
    rng = np.random.default_rng(0)
    n = 103
    sessions = np.sort(rng.integers(-5, 2**40, n))
    items = rng.integers(0, 2**31 - 1, n).astype(np.int32)
    times = rng.uniform(-1e3, 2e7, n)
    # exact halves of a millisecond, values just under and over them, a negative zero, big times
    times[:8] = [0.0005, 0.0015, 0.0025, 1e6 + 0.0625, np.nextafter(0.0005, 0), -0.0, 2.0**40 + 0.5, 1e15 / 3]
    cases = {
        "int64-int32-float64": (sessions, items, times),
        "uint64-float32": (sessions.astype(np.uint64) + np.uint64(2**63), items, times.astype(np.float32)),
        "integer-times": (sessions, items, np.round(times).astype(np.int64)),
        "series": (pd.Series(sessions), pd.Series(items), pd.Series(times)),
        "lists": (sessions.tolist(), items.tolist(), times.tolist()),  # the row-by-row path
        "unequal-lengths": (sessions, items[:-4], times),  # stops at the shortest, like zip
    }
    for case, columns in cases.items():
        reference = per_row_inter(*columns).encode()
        for chunk_rows in (7, n, 4 * n):  # several chunks with a short last one, one, one not full
            name = f"{case}-{chunk_rows}"
            config = atomic.write_sessions(*columns, tmp_path, name, chunk_rows=chunk_rows)
            assert (config.parent / f"{name}.inter").read_bytes() == reference, name
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(  # no staging folder left
        f"{case}-{chunk_rows}" for case in cases for chunk_rows in (7, n, 4 * n))


def test_converted_log_trains_dwellgru4rec(tmp_path, capsys):
    sessions, items, times = synth.generate(200, n_items=60, seed=3)
    stamps = [f"{s},{pd.Timestamp(int(t), unit='s').isoformat()}Z,{i},0" for s, i, t in zip(sessions, items, times)]
    (tmp_path / "clicks.dat").write_text("\n".join(stamps) + "\n")
    assert convert.main(["rsc15", str(tmp_path / "clicks.dat"), str(tmp_path / "data"), "--name", "mini-rsc15",
                         "--min_item_support", "1"]) == 0
    assert f"read {len(items)} rows, skipped 0 malformed" in capsys.readouterr().out
    config = yaml.safe_load((tmp_path / "data" / "mini-rsc15" / "mini-rsc15.yaml").read_text())
    result = quick_test(
        {**config, "dataset": "mini-rsc15", "epochs": 1, "show_progress": False, "state": "ERROR",
         "checkpoint_dir": str(tmp_path / "saved"), "embedding_size": 8, "hidden_size": 8},
        model="DwellGRU4Rec", dwell_mode="both",
    )
    assert 0.0 <= result["test_result"]["ndcg@10"] <= 1.0


def test_generator_is_seeded():
    first, second = synth.generate(50, seed=7), synth.generate(50, seed=7)
    assert all((a == b).all() for a, b in zip(first, second))
    assert not all(np.array_equal(a, b) for a, b in zip(first, synth.generate(50, seed=8)))


def returns_to_the_longest_dwell(sessions, items, times):
    """Share of events (third on) that repeat the earlier item, short of the one just left, with
    the longest dwell."""
    hits = total = 0
    for session in np.unique(sessions):
        mine = sessions == session
        clicked, dwell = items[mine], np.diff(times[mine])
        for position in range(2, len(clicked)):
            hits += clicked[position] == clicked[np.argmax(dwell[: position - 1])]
            total += 1
    return hits / total


def test_generator_plants_short_noise_dwells_and_returns_to_long_dwells():
    sessions, items, times = synth.generate(2000, noise=0.35, seed=0)
    assert times.dtype == np.float64 and (times == np.round(times)).all() and times.max() < 2**24
    same_session = sessions[1:] == sessions[:-1]
    dwell = (times[1:] - times[:-1])[same_session]
    assert (dwell >= 0).all()
    # a mixture: noise clicks dwell ~6 s, intent clicks and returns ~90 s
    assert 0.25 < (dwell < 20).mean() < 0.45 and (dwell > 40).mean() > 0.5
    planted = returns_to_the_longest_dwell(*synth.generate(600, revisit=0.2, seed=1))
    by_chance = returns_to_the_longest_dwell(*synth.generate(600, revisit=0.0, seed=1))
    assert planted > 0.2 and planted - by_chance > 0.15


def test_cli_errors_name_the_bad_value(tmp_path, capsys):
    done = subprocess.run([sys.executable, "-m", "recbole_ext.data.synth", "--out", str(tmp_path), "--sessions", "0"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "--sessions: 0 is not allowed" in done.stderr
    with pytest.raises(SystemExit) as exit_code:
        synth.main(["--out", str(tmp_path), "--noise", "0.5", "--revisit", "0.5"])
    assert exit_code.value.code == 2 and "--noise 0.5 + --revisit 0.5 is not allowed" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_code:
        convert.main(["rsc15", str(tmp_path / "missing.dat"), str(tmp_path)])
    assert exit_code.value.code == 2 and "is not a file" in capsys.readouterr().err
    (tmp_path / "clicks.dat").write_text(RSC15)
    with pytest.raises(SystemExit) as exit_code:
        convert.main(["rsc15", str(tmp_path / "clicks.dat"), str(tmp_path / "out"), "--min_item_support", "0"])
    assert exit_code.value.code == 2 and "--min_item_support: 0 is not allowed" in capsys.readouterr().err
    assert sorted(path.name for path in tmp_path.iterdir()) == ["clicks.dat"]  # nothing written


def test_synth_cli_writes_a_dataset(tmp_path, capsys):
    assert synth.main(["--out", str(tmp_path), "--name", "demo", "--sessions", "20", "--seed", "4"]) == 0
    lines = (tmp_path / "demo" / "demo.inter").read_text().splitlines()
    assert lines[0] == "session_id:token\titem_id:token\ttimestamp:float" and len(lines) > 40
    config = yaml.safe_load((tmp_path / "demo" / "demo.yaml").read_text())
    assert config["USER_ID_FIELD"] == "session_id" and config["normalize_all"] is False
    assert "wrote" in capsys.readouterr().out


def snapshot(folder):
    """Every file and link under ``folder`` (links not followed) with its content or target."""
    found = {}
    for root, dirs, files in os.walk(folder):
        for entry in dirs + files:
            path = Path(root) / entry
            relative = str(path.relative_to(folder))
            if path.is_symlink():
                found[relative] = ("link", os.readlink(path))
            elif path.is_file():
                found[relative] = ("file", path.read_bytes())
            else:
                found[relative] = ("folder", None)
    return found


@pytest.fixture
def layout(tmp_path):
    """tmp_path/{sibling.txt, out/{other.txt, demo/demo.inter, demo/demo.yaml}}; returns out."""
    (tmp_path / "sibling.txt").write_text("must survive")
    out = tmp_path / "out"
    out.mkdir()
    (out / "other.txt").write_text("must survive too")
    atomic.write_sessions([1, 1], [5, 6], [0.0, 3.0], out, "demo")
    return out


BAD_NAMES = [".", "..", "", "a/b", "../escape", "/abs", ".hidden", "a\\b", "a\x00b", "x" * 101, "-dash"]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_name_must_be_one_plain_folder_name(layout, name, capsys):
    before = snapshot(layout.parent)
    (layout.parent / "clicks.dat").write_text(RSC15)
    message = f"--name: {name!r} is not allowed; use {atomic.NAME_RULE} (e.g. rsc15)"
    assert synth.main(["--out", str(layout), f"--name={name}", "--sessions", "5"]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == f"synth: error: {message}"
    assert convert.main(["rsc15", str(layout.parent / "clicks.dat"), str(layout), f"--name={name}",
                         "--min_item_support", "1"]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == f"convert: error: {message}"
    (layout.parent / "clicks.dat").unlink()
    assert snapshot(layout.parent) == before


def test_existing_dataset_is_replaced_only_with_overwrite(layout, capsys):
    before = snapshot(layout.parent)
    assert synth.main(["--out", str(layout), "--name", "demo", "--sessions", "5"]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"synth: error: {str(layout / 'demo')!r} already exists; pass --overwrite to replace it "
        "(allowed only for a dataset folder holding nothing but demo.inter and demo.yaml)")
    assert snapshot(layout.parent) == before
    assert synth.main(["--out", str(layout), "--name", "demo", "--sessions", "5", "--overwrite"]) == 0
    after = snapshot(layout.parent)
    assert sorted(after) == sorted(before)  # no staging folder left, nothing else added or removed
    assert after["out/demo/demo.inter"] != before["out/demo/demo.inter"]
    assert len(inter_lines(layout / "demo" / "demo.yaml")) == 1 + len(synth.generate(5)[0])
    assert {key: after[key] for key in ("sibling.txt", "out/other.txt")} == \
        {key: before[key] for key in ("sibling.txt", "out/other.txt")}


def make_subfolder(target):
    (target / "runs").mkdir()


def make_extra_file(target):
    (target / "notes.txt").write_text("mine")


def make_file(target):
    for file in target.iterdir():
        file.unlink()
    target.rmdir()
    target.write_text("a file called demo")


def make_link(target):
    real = target.parent.parent / "elsewhere"
    target.rename(real)
    target.symlink_to(real)


@pytest.mark.parametrize("change, holds", [
    (make_extra_file, "holds notes.txt, so it is not a dataset folder written by recbole-ext"),
    (make_subfolder, "holds runs, so it is not a dataset folder written by recbole-ext"),
    (make_file, "is a file, not a dataset folder written by recbole-ext"),
    (make_link, "is a link, not a dataset folder written by recbole-ext"),
])
def test_overwrite_replaces_only_our_own_dataset_folder(layout, change, holds, capsys):
    change(layout / "demo")
    before = snapshot(layout.parent)
    assert synth.main(["--out", str(layout), "--name", "demo", "--sessions", "5", "--overwrite"]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"synth: error: {str(layout / 'demo')!r} {holds}; --overwrite replaces only a folder holding nothing but "
        "demo.inter and demo.yaml; move it away yourself")
    assert snapshot(layout.parent) == before


def test_output_folder_that_is_a_file_or_cannot_be_written(layout, capsys, monkeypatch):
    before = snapshot(layout.parent)
    file = layout.parent / "sibling.txt"
    assert synth.main(["--out", str(file), "--sessions", "5"]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"synth: error: output folder {str(file)!r} is a file; give a folder (it is created if missing)")
    (layout.parent / "clicks.dat").write_text(RSC15)
    assert convert.main(["rsc15", str(layout.parent / "clicks.dat"), str(file)]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"convert: error: output folder {str(file)!r} is a file; give a folder (it is created if missing)")
    (layout.parent / "clicks.dat").unlink()
    assert synth.main(["--out", str(file / "data"), "--sessions", "5"]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"synth: error: output folder {str(file / 'data')!r}: cannot write there (Not a directory)")

    def read_only(**kwargs):  # the tests run as root, for whom chmod does not stop writes
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(atomic.tempfile, "mkdtemp", read_only)
    assert synth.main(["--out", str(layout), "--name", "fresh", "--sessions", "5"]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"synth: error: output folder {str(layout)!r}: cannot write there (Permission denied)")
    assert snapshot(layout.parent) == before


def test_failed_replacement_puts_the_old_dataset_back(layout, monkeypatch):
    before = snapshot(layout.parent)
    rename = os.replace
    calls = []

    def second_rename_fails(source, target):
        calls.append((Path(source).name, Path(target).name))
        if len(calls) == 2:  # the old folder is aside, the new one about to move in
            raise OSError("disk error")
        rename(source, target)

    monkeypatch.setattr(atomic.os, "replace", second_rename_fails)
    with pytest.raises(OSError, match="disk error"):
        atomic.write_sessions([2, 2], [7, 8], [0.0, 1.0], layout, "demo", overwrite=True)
    assert calls == [("demo", "replaced"), ("demo", "demo"), ("replaced", "demo")]
    assert snapshot(layout.parent) == before


def test_ids_that_are_not_whole_numbers_in_range_are_skipped_as_malformed(tmp_path):
    from recbole_ext.data.convert import convert

    rows = [f"{s},2014-04-07T10:5{k}:00.000Z,{item},0" for s in (1, 2) for k, item in enumerate((11, 12, 13))]
    bad = ["3,2014-04-07T10:51:00.000Z,1.5,0", "99999999999999999999,2014-04-07T10:51:00.000Z,11,0",
           "4,2014-04-07T10:51:00.000Z,inf,0"]
    log = tmp_path / "clicks.dat"
    log.write_text("\n".join(rows + bad) + "\n", encoding="utf-8")
    _, summary = convert("rsc15", log, tmp_path / "out", min_item_support=1)
    assert "read 9 rows, skipped 3 malformed, kept 6 events in 2 sessions" in summary
    written = (tmp_path / "out" / "rsc15" / "rsc15.inter").read_text(encoding="utf-8").splitlines()[1:]
    assert sorted({line.split("\t")[0] for line in written}) == ["1", "2"]
