"""DwellGRU4Rec: dwell values, boosting, the dwell feature, no leakage of the target's time, errors."""

import logging
import math

import pandas as pd
import pytest
import torch
from recbole.config import Config
from recbole.data import create_dataset, data_preparation
from recbole.data.interaction import Interaction

import recbole_ext
from recbole_ext.model.dwellgru4rec import (
    DwellGRU4Rec,
    boost_repeats,
    dwell_buckets,
    dwell_seconds,
    expand,
)
from tests.conftest import quick_test
from tests.session_data import session_dataset

MODES = ["none", "boost", "feature", "both"]
SMALL = {"embedding_size": 8, "hidden_size": 8, "dropout_prob": 0.0, "dwell_threshold": 20.0}


@pytest.fixture(scope="module")
def sessions(tmp_path_factory):
    return session_dataset(tmp_path_factory.mktemp("sessions"))


@pytest.fixture
def session_config(sessions, tmp_path):
    return {**sessions, **SMALL, "epochs": 1, "show_progress": False, "state": "ERROR",
            "checkpoint_dir": str(tmp_path / "saved"), "metrics": ["Recall", "MRR"], "topk": [20],
            "valid_metric": "MRR@20"}


def build(config_dict, **settings):
    config = Config(model="DwellGRU4Rec", dataset=config_dict["dataset"], config_dict={**config_dict, **settings})
    train, valid, test = data_preparation(config, create_dataset(config))
    torch.manual_seed(0)
    return DwellGRU4Rec(config, train._dataset), train, valid


TIMES = torch.tensor([[100.0, 110.0, 110.0, 270.0, 0.0, 0.0]])
LENGTHS = torch.tensor([4])


def test_dwell_is_the_gap_to_the_next_input_and_unknown_for_the_last():
    dwell = dwell_seconds(TIMES, LENGTHS)
    assert dwell[0, :3].tolist() == [10.0, 0.0, 160.0]  # equal timestamps give dwell 0
    assert all(math.isnan(v) for v in dwell[0, 3:].tolist())  # last input and padding: unknown


def test_boost_expansion_by_hand():
    dwell = dwell_seconds(TIMES, LENGTHS)
    repeats = boost_repeats(dwell, LENGTHS, threshold=75.0, max_repeat=8)
    assert repeats.tolist() == [[1, 1, 3, 1, 0, 0]]  # ⌊160/75⌋+1 = 3; the last item is never boosted
    items = torch.tensor([[[11.0], [12.0], [13.0], [14.0], [0.0], [0.0]]])
    expanded, first_copy = expand(items, repeats)
    assert expanded[0, :, 0].tolist() == [11.0, 12.0, 13.0, 13.0, 13.0, 14.0]
    assert first_copy[0, :4].tolist() == [0, 1, 2, 5]  # each target reads the first copy of its item
    assert boost_repeats(dwell, LENGTHS, threshold=10.0, max_repeat=4).tolist() == [[2, 1, 4, 1, 0, 0]]


def test_feature_buckets_of_each_items_own_dwell():
    buckets = dwell_buckets(dwell_seconds(TIMES, LENGTHS), LENGTHS, n_buckets=16)
    # log2 buckets 2 + ⌊log2(1 + dwell)⌋ of 10 s, 0 s, 160 s; the last input unknown (1); padding 0
    assert buckets.tolist() == [[5, 2, 9, 1, 0, 0]]
    capped = dwell_buckets(torch.tensor([[0.0, 1e9, math.nan]]), torch.tensor([3]), n_buckets=4)
    assert capped.tolist() == [[2, 5, 1]]  # 1e9 s falls in the last bucket, 2 + 3


@pytest.mark.parametrize("mode", MODES)
def test_the_targets_timestamp_never_changes_scores(session_config, mode):
    model, _, valid = build(session_config, dwell_mode=mode, dwell_boost_eval=True)
    model.eval()
    batch = next(iter(valid))[0]
    shifted = Interaction({key: batch[key].clone() for key in batch.columns})
    shifted["timestamp"] += 10_000.0
    with torch.no_grad():
        assert torch.equal(model.full_sort_predict(batch), model.full_sort_predict(shifted))


@pytest.mark.parametrize("mode", MODES)
def test_in_training_no_position_sees_the_time_of_the_item_it_predicts(session_config, mode):
    model, train, _ = build(session_config, dwell_mode=mode)
    model.train()  # boosting is on; dropout is 0 so outputs are deterministic
    batch = next(iter(train))
    row = int(torch.argmax(batch["item_length"]))
    k = int(batch["item_length"][row]) - 2  # position k predicts the input at k + 1
    later = Interaction({key: batch[key].clone() for key in batch.columns})
    later["timestamp_list"][row, k + 1 :] += 5_000.0  # the item k+1 (and after) happen much later
    with torch.no_grad():
        before, after = model(batch), model(later)
    assert torch.allclose(before[row, : k + 1], after[row, : k + 1], atol=1e-6)
    if mode != "none":
        assert not torch.allclose(before[row, k + 1 :], after[row, k + 1 :])  # ... later positions do


def test_an_earlier_dwell_changes_scores_in_feature_mode(session_config):
    model, _, valid = build(session_config, dwell_mode="feature")
    model.eval()
    batch = next(iter(valid))[0]
    longer = Interaction({key: batch[key].clone() for key in batch.columns})
    rows = batch["item_length"] >= 2
    last = batch["item_length"] - 1
    # the last input came 50 minutes later: the item before it dwelled longer
    longer["timestamp_list"][rows, last[rows]] += 3_000.0
    with torch.no_grad():
        changed = (model.full_sort_predict(batch) - model.full_sort_predict(longer)).abs().sum(-1)
    assert (changed[rows] > 0).all()


def prefix_samples(batch, row):
    """The prefix samples (RecBole's kind) ending at each input position of window ``row``."""
    n = int(batch["item_length"][row])
    keep = torch.arange(batch["item_id_list"].size(1))[None, :] <= torch.arange(n)[:, None]
    return Interaction({
        "item_id_list": batch["item_id_list"][row].expand(n, -1) * keep,
        "timestamp_list": batch["timestamp_list"][row].expand(n, -1) * keep,
        "item_length": torch.arange(1, n + 1),
    })


@pytest.mark.parametrize(("mode", "num_layers"), [(mode, 1) for mode in MODES] + [("both", 2)])
def test_window_positions_get_the_states_of_their_prefix_samples(session_config, mode, num_layers):
    model, train, _ = build(session_config, dwell_mode=mode, dwell_boost_eval=True, num_layers=num_layers)
    batch = next(iter(train))
    row = int(torch.argmax(batch["item_length"]))
    n = int(batch["item_length"][row])
    prefixes = prefix_samples(batch, row)
    for training in (True, False):  # boosting is on in both (dwell_boost_eval); dropout is 0
        model.train(training)
        with torch.no_grad():
            window = model(batch)[row, :n]
            alone = model.last_hidden(prefixes)
            prefix_ends = model(prefixes)[torch.arange(n), torch.arange(n)]
        assert torch.allclose(window, alone, atol=1e-5)
        assert torch.allclose(prefix_ends, alone, atol=1e-5)


@pytest.mark.parametrize(("mode", "train_mode"), [(mode, "sequence") for mode in MODES] + [("both", "prefix")])
def test_every_mode_trains_and_evaluates(session_config, mode, train_mode):
    result = quick_test(session_config, model="DwellGRU4Rec", dwell_mode=mode, train_mode=train_mode)
    assert 0.0 <= result["test_result"]["mrr@20"] <= result["test_result"]["recall@20"] <= 1.0


def test_without_the_hidden_projection_the_gru_state_scores_the_items(session_config):
    model, train, _ = build(session_config, dwell_mode="none", hidden_projection=False)
    batch = next(iter(train))
    model.eval()
    with torch.no_grad():
        states, _, _ = model._read(batch)
        assert torch.equal(model.last_hidden(batch), states[-1][torch.arange(len(batch)), batch["item_length"] - 1])
    assert not any(name.startswith("dense") for name, _ in model.named_parameters())


def test_without_the_hidden_projection_the_sizes_must_match(session_config):
    with pytest.raises(recbole_ext.ConfigError, match=r"^hidden_projection: False scores items with the GRU state "
                                                      r"itself, so hidden_size \(16\) must equal embedding_size \(8\)"):
        build(session_config, hidden_projection=False, hidden_size=16)


def test_missing_time_field_is_a_clear_error(session_config):
    with pytest.raises(recbole_ext.ConfigError, match="time field 'timestamp', which is not loaded"):
        quick_test({**session_config, "load_col": {"inter": ["session_id", "item_id"]}}, model="DwellGRU4Rec")


def test_normalized_time_field_is_a_clear_error(session_config):
    with pytest.raises(recbole_ext.ConfigError, match="needs raw seconds in 'timestamp'.*set normalize_all: False"):
        quick_test({**session_config, "normalize_all": True}, model="DwellGRU4Rec", dwell_mode="boost")


def test_unknown_dwell_mode_is_a_clear_error(session_config):
    with pytest.raises(recbole_ext.ConfigError, match=r"dwell_mode: 'long' is not allowed; use one of \['none'"):
        quick_test(session_config, model="DwellGRU4Rec", dwell_mode="long")


def test_ml100k_default_yaml_normalization_is_named(tiny_config):
    with pytest.raises(recbole_ext.ConfigError, match="normalize_all: True"):
        quick_test({**tiny_config, "normalize_all": True}, model="DwellGRU4Rec", dwell_mode="feature")


def test_bad_dwell_threshold_is_a_clear_error(session_config):
    with pytest.raises(recbole_ext.ConfigError, match="dwell_threshold: 0 is not allowed; use a number of seconds > 0"):
        quick_test(session_config, model="DwellGRU4Rec", dwell_mode="boost", dwell_threshold=0)


def test_raw_unix_times_warn_about_float32_resolution(tiny_config, caplog):
    config = Config(model="DwellGRU4Rec", dataset="ml-tiny", config_dict={**tiny_config, "normalize_all": False})
    train, _, _ = data_preparation(config, create_dataset(config))
    with caplog.at_level(logging.WARNING):
        DwellGRU4Rec(config, train._dataset)
    assert "dwell times are only exact to ~64 s" in caplog.text  # ml-100k's times are near 8.9e8


def test_window_time_lists_hold_the_inputs_times_only(sessions):
    config = Config(model="DwellGRU4Rec", dataset=sessions["dataset"], config_dict={**sessions, "state": "ERROR"})
    dataset = create_dataset(config)
    windows = data_preparation(config, dataset)[0]._dataset.inter_feat
    raw = pd.read_csv(f"{sessions['data_path']}/{sessions['dataset']}/{sessions['dataset']}.inter", sep="\t")
    raw_times = raw.groupby("session_id:token")["timestamp:float"].apply(list)
    checked = 0
    for session, length, times in zip(windows["session_id"], windows["item_length"], windows["timestamp_list"]):
        expected = raw_times[int(dataset.id2token("session_id", int(session)))]
        # generated sessions fit one window: inputs are events 0..n-1, targets 1..n (n+1 is valid/test)
        assert times[:length].tolist() == expected[:length]
        assert (times[length:] == 0).all()  # the last target's time (expected[length]) is not there
        checked += 1
    assert checked == len(raw_times)
