"""The RSC15-shaped click log (recbole_ext.data.synth_rsc15) and its ``--shape rsc15`` CLI."""

import numpy as np
import pytest

from recbole_ext.data import synth, synth_rsc15
from recbole_ext.data.synth_rsc15 import MAX_LENGTH, RSC15_ITEMS, generate_rsc15, session_lengths
from recbole_ext.errors import DataError

N_EVENTS = 5000


@pytest.fixture(scope="module")
def log():
    return generate_rsc15(N_EVENTS, seed=0)


def test_exact_event_count_and_session_lengths_2_to_50(log):
    sessions, items, times = log
    assert len(sessions) == len(items) == len(times) == N_EVENTS
    lengths = np.bincount(sessions)[1:]
    assert np.array_equal(np.unique(sessions), np.arange(1, len(lengths) + 1))  # ids 1..n, no gap
    assert lengths.min() >= 2 and lengths.max() <= MAX_LENGTH
    # heavy short-session skew: about half of the sessions have 2 clicks, the mean is RSC15's ~4
    assert 0.45 < np.mean(lengths == 2) < 0.6
    assert 3.4 < lengths.mean() < 4.5


def test_left_over_click_is_taken_by_a_session():
    rng = np.random.default_rng(0)
    for n_events in (2, 3, 51, 101, 4999):
        lengths = session_lengths(rng, n_events)
        assert lengths.sum() == n_events and lengths.min() >= 2 and lengths.max() <= MAX_LENGTH
    with pytest.raises(DataError, match="--events: 1 is not allowed; use at least 2"):
        session_lengths(rng, 1)


def test_item_catalogue_and_popularity_skew():
    _, items, _ = generate_rsc15(20_000, seed=0)
    assert items.min() >= 1 and items.max() <= RSC15_ITEMS
    counts = np.sort(np.bincount(items, minlength=RSC15_ITEMS + 1)[1:])[::-1]
    # Zipf(1) over 37,483 items: 20k clicks reach about 5,600 of them (uniform popularity: about 15,500)
    assert 5_000 < (counts > 0).sum() < 6_500
    # the top 1 % of the catalogue take about 63 % of the clicks (uniform: about 6 %)
    top_share = counts[: RSC15_ITEMS // 100].sum() / counts.sum()
    assert 0.58 < top_share < 0.70


def test_small_catalogue_is_used_whole():
    _, items, _ = generate_rsc15(N_EVENTS, n_items=50, seed=1)
    assert set(np.unique(items)) == set(range(1, 51))


def test_times_whole_seconds_increasing_within_session(log):
    sessions, _, times = log
    assert np.array_equal(times, np.round(times)) and times.min() >= 0
    assert times.max() < 2**24  # float32 holds every whole second
    same_session = sessions[1:] == sessions[:-1]
    assert np.all(np.diff(times)[same_session] >= 1)
    assert np.all(np.diff(sessions) >= 0)


def test_deterministic_by_seed(log):
    again = generate_rsc15(N_EVENTS, seed=0)
    assert all(np.array_equal(a, b) for a, b in zip(log, again))
    other = generate_rsc15(N_EVENTS, seed=1)
    assert not np.array_equal(log[1], other[1])


def test_block_size_does_not_change_the_log(log, monkeypatch):
    # times are built a block of clicks at a time; blocks that split sessions give the same log
    monkeypatch.setattr(synth_rsc15, "BLOCK", 64)
    assert all(a.dtype == b.dtype and np.array_equal(a, b) for a, b in zip(log, generate_rsc15(N_EVENTS, seed=0)))


def test_cli_writes_the_log(tmp_path, capsys):
    assert synth.main(["--out", str(tmp_path), "--name", "rsc", "--shape", "rsc15", "--events", "300",
                       "--items", "40", "--seed", "2"]) == 0
    lines = (tmp_path / "rsc" / "rsc.inter").read_text().splitlines()
    assert lines[0] == "session_id:token\titem_id:token\ttimestamp:float"
    sessions, items, times = generate_rsc15(300, n_items=40, seed=2)
    assert lines[1] == f"{sessions[0]}\t{items[0]}\t{times[0]:.3f}" and len(lines) == 301
    assert f"wrote 300 events in {sessions[-1]} sessions" in capsys.readouterr().out
    # an existing dataset is replaced only with --overwrite
    assert synth.main(["--out", str(tmp_path), "--name", "rsc", "--shape", "rsc15", "--events", "300"]) == 2
    assert "already exists; pass --overwrite" in capsys.readouterr().err
    assert synth.main(["--out", str(tmp_path), "--name", "rsc", "--shape", "rsc15", "--events", "20",
                       "--overwrite"]) == 0
    assert len((tmp_path / "rsc" / "rsc.inter").read_text().splitlines()) == 21


@pytest.mark.parametrize("argv, message", [
    (["--shape", "rsc15"], "--shape rsc15 needs --events N"),
    (["--shape", "rsc15", "--events", "1"], "--events: 1 is not allowed; use at least 2"),
    (["--shape", "rsc15", "--events", "10", "--sessions", "5"], "--sessions is for --shape dwell"),
    (["--shape", "rsc15", "--events", "10", "--items", "1"], "--items: 1 is not allowed; use at least 2"),
    (["--events", "10"], "--events is for --shape rsc15"),
])
def test_cli_bad_arguments(tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit) as stopped:
        synth.main(["--out", str(tmp_path)] + argv)
    assert stopped.value.code == 2 and message in capsys.readouterr().err
    assert not any(tmp_path.iterdir())
