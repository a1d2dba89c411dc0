"""Session-log converters and the seeded generator."""

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import yaml

from recbole_ext.data import atomic, convert, synth
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


def test_output_folder_appears_only_complete(tmp_path):
    def failing_items():
        yield 1
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic.write_sessions([1, 1], failing_items(), [0.0, 1.0], tmp_path, "broken")
    assert list(tmp_path.iterdir()) == []


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
