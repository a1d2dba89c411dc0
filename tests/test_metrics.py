"""The seed's metrics registered with RecBole, against hand-computed values."""

from collections import Counter

import pytest
import torch
from recbole.config import Config
from recbole.evaluator.collector import DataStruct

from recbole.trainer import Trainer

from recbole_ext.metrics import BlockbusterShare, CorrectItemCoverage, SPS, UserCoverage, blockbusters
from tests.conftest import quick_test
from tests.test_protocols import FixedRanking, evaluate_stub, held_out_user, prepared, write_inter
from tests.test_protocols import settings as protocol_settings


class Settings(dict):
    def __getitem__(self, key):
        return self.get(key)


SETTINGS = Settings(topk=[1, 2, 3], metric_decimal_place=4)


@pytest.fixture
def rankings():
    """Three users' top-3 lists: user 1 hits item 2 at rank 2, user 2 misses, user 3 hits item 8 at 3."""
    data = DataStruct()
    data.set("rec.items", torch.tensor([[5, 2, 9], [1, 3, 4], [2, 7, 8]]))
    data.set("rec.topk", torch.tensor([[0, 1, 0, 1], [0, 0, 0, 1], [0, 0, 1, 1]]))  # last column: positives
    data.set("data.num_items", 201)  # 200 items + padding: the 2 most popular are blockbusters
    data.set("data.count_items", Counter({2: 50, 7: 40, 8: 3, 5: 1, 9: 1, 1: 1, 3: 1, 4: 1}))
    return data


def test_sps_and_user_coverage_by_hand(rankings):
    expected = {"@1": 0.0, "@2": 0.3333, "@3": 0.6667}
    assert UserCoverage(SETTINGS).calculate_metric(rankings) == {f"usercoverage{k}": v for k, v in expected.items()}
    # SPS counts only the next item: user 1's hit (item 2) is its next item, user 3's (item 8) is not
    rankings.set("rec.next", torch.tensor([[0, 1, 0], [0, 0, 0], [0, 0, 0]]))
    assert SPS(SETTINGS).calculate_metric(rankings) == {"sps@1": 0.0, "sps@2": 0.3333, "sps@3": 0.3333}


def test_correct_item_coverage_counts_distinct_hit_items(rankings):
    assert CorrectItemCoverage(SETTINGS).calculate_metric(rankings) == {
        "correctitemcoverage@1": 0.0, "correctitemcoverage@2": 1.0, "correctitemcoverage@3": 2.0,
    }


def test_blockbuster_share_of_hits_among_the_top_percent(rankings):
    # blockbusters: items 2 and 7; hits @2: [2] -> 1.0; hits @3: [2, 8] -> 0.5; no hit @1 -> 0
    assert BlockbusterShare(SETTINGS).calculate_metric(rankings) == {
        "blockbustershare@1": 0.0, "blockbustershare@2": 1.0, "blockbustershare@3": 0.5,
    }


def test_blockbusters_are_the_top_percent_with_ties_broken_by_item_id():
    data = DataStruct()
    data.set("data.num_items", 301)  # 300 items: the top 3
    data.set("data.count_items", Counter({9: 7, 5: 4, 3: 4, 1: 4, 2: 1}))
    assert blockbusters(data) == {9, 1, 3}
    data.set("data.num_items", 100)  # 99 items: no blockbuster, so no hit counts as one
    assert blockbusters(data) == set()


def test_metrics_are_known_to_recboles_config(tiny_config):
    config = Config(model="RNNCCE", dataset="ml-tiny", config_dict={
        **tiny_config, "metrics": ["NDCG", "SPS", "BlockbusterShare"], "valid_metric": "BlockbusterShare@10"})
    assert config["valid_metric_bigger"] is False  # lower is better


@pytest.mark.parametrize("train_mode", ["sequence", "prefix"])
def test_a_run_reports_the_seed_metrics(tiny_config, train_mode):
    metrics = ["Hit", "NDCG", "SPS", "UserCoverage", "CorrectItemCoverage", "BlockbusterShare", "AveragePopularity"]
    result = quick_test({**tiny_config, "metrics": metrics, "topk": [10, 20], "valid_metric": "NDCG@10",
                         "embedding_size": 8, "hidden_size": 8}, model="RNNCCE", train_mode=train_mode)
    test = result["test_result"]
    assert test["sps@20"] == test["hit@20"] == test["usercoverage@20"]  # leave-one-out: one case per user
    hits = round(test["hit@20"] * 60)  # 60 users in the tiny slice
    assert test["correctitemcoverage@20"] <= hits and 0.0 <= test["blockbustershare@20"] <= 1.0
    assert test["averagepopularity@10"] > 0  # RecBole's own popularity metric works again (compat)


# ------------------------------------------------- popularity: every item of the training sequences
# 200 items, so the ⌊200/100⌋ = 2 most frequent training items are the blockbusters. Leave-one-out
# keeps each user's last two items out (valid, test); the training sequences are the rest:
#   u1: 1 2 3 | 4 1     u2: 1 2 | 4 1     u3: 1 3 | 4 3     u4: 6 7 … 200 | 4 5
# Every training item: 1 ×3 (three first items), 2 ×2, 3 ×2, 6 … 200 once -> blockbusters {1, 2}
# (2 before 3: the smaller id). Training targets alone (RecBole's item_counter) never see a first
# item: 2 ×2, 3 ×2, 7 … 200 once -> {2, 3}.
POPULARITY_USERS = {"u1": [1, 2, 3, 4, 1], "u2": [1, 2, 4, 1], "u3": [1, 3, 4, 3], "u4": [*range(6, 201), 4, 5]}


@pytest.fixture
def popularity_data(tmp_path):
    rows = [(user, item, 1000 * k + position)
            for k, (user, items) in enumerate(POPULARITY_USERS.items()) for position, item in enumerate(items)]
    return write_inter(tmp_path / "data", "pop", rows)


def _counted(data, train):
    """{item token: count} of what the collector hands the popularity metrics."""
    config = train._dataset.config
    tokens = train._dataset.field2id_token[train._dataset.iid_field]
    trainer = Trainer(config, FixedRanking(config, train._dataset))
    trainer.eval_collector.data_collect(train)
    counts = trainer.eval_collector.data_struct.get("data.count_items")
    return {int(tokens[item]): count for item, count in counts.items()}


@pytest.mark.parametrize("model,options", [("GRU4Rec", {}), ("RNNCCE", {"train_mode": "sequence"}),
                                           ("GRU4Rec", {"lean_sequences": True})])
def test_blockbusters_count_first_items_under_leave_one_out(popularity_data, model, options):
    config, train, _, test = prepared(model, protocol_settings(
        popularity_data, "pop", metrics=["BlockbusterShare", "Hit"], valid_metric="Hit@3", **options))
    counts = _counted(test, train)
    assert {item: counts[item] for item in (1, 2, 3, 6, 7)} == {1: 3, 2: 2, 3: 2, 6: 1, 7: 1}
    assert 4 not in counts and 5 not in counts  # valid and test targets are not training items
    # top 3 of the stub: 1 2 3. Test targets 1 1 3 5: hits 1, 1, 3 (u4's 5 misses); blockbusters
    # {1, 2}: 2 of the 3 hits (RecBole's counts: {2, 3}, 1 of 3)
    result = evaluate_stub(config, train, test, range(1, 201))
    assert result["hit@3"] == pytest.approx(3 / 4)
    assert result["blockbustershare@3"] == pytest.approx(2 / 3, abs=1e-4)


def test_blockbusters_never_count_held_out_users(popularity_data):
    # seed 7 holds out u1 (test) and u3 (valid): the training users are u2 and u4, every item of
    # theirs counted (their last items too: a training user's whole sequence is trained on).
    # extended_train adds u1's and u3's input parts (1 2, 1) to training, never to the counts.
    config, train, valid, test = prepared("RNNCCE", protocol_settings(
        popularity_data, "pop", eval_protocol="user_split", val_users=1, test_users=1, seed=7,
        extended_train=True, metrics=["BlockbusterShare", "Recall"], valid_metric="Recall@3"))
    assert (held_out_user(test), held_out_user(valid)) == ("u1", "u3")
    counts = _counted(test, train)
    # u2: 1 2 4 1, u4: 6 … 200 4 5 -> 1 ×2, 4 ×2, then 2, 5, 6 … 200 once: blockbusters {1, 4}
    assert {item: counts[item] for item in (1, 2, 4, 5, 6)} == {1: 2, 2: 1, 4: 2, 5: 1, 6: 1}
    assert 3 not in counts  # only the held-out users have item 3 (u1's goal, u3's trained input)
    # u1 = 1 2 3 4 1: input 1 2, goal 3 4 1; the stub's top 3 is 1 2 3: hits {3, 1}; blockbusters
    # {1, 4}: 1 of the 2 hits (counting training targets, extended rows included, gives {2, 4}: 0)
    result = evaluate_stub(config, train, test, range(1, 201))
    assert result["recall@3"] == pytest.approx(2 / 3, abs=1e-4)
    assert result["blockbustershare@3"] == pytest.approx(1 / 2)
