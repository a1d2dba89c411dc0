"""The seed's metrics registered with RecBole, against hand-computed values."""

from collections import Counter

import pytest
import torch
from recbole.config import Config
from recbole.evaluator.collector import DataStruct

from recbole_ext.metrics import BlockbusterShare, CorrectItemCoverage, SPS, UserCoverage, blockbusters
from tests.conftest import quick_test


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
