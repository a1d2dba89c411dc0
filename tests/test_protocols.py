"""eval_protocol: user_split and session_split on tiny hand-made logs, expected values by hand.

A fixed-ranking stub scores every case the same way (items in a given token order), so each case's
top k is known and every metric can be worked out on paper; the comments give the arithmetic.
"""

import math
import re
from pathlib import Path

import pytest
import torch
from recbole.config import Config
from recbole.data import create_dataset, data_preparation
from recbole.data.dataloader import TrainDataLoader
from recbole.data.dataset import SequentialDataset
from recbole.model.abstract_recommender import SequentialRecommender
from recbole.quick_start import load_data_and_model, run_recbole
from recbole.trainer import Trainer
from recbole.utils import InputType, get_model, init_seed
from torch import nn

from recbole_ext.data import popularity
from recbole_ext.data.sequence import target_list_field
from recbole_ext.errors import ConfigError
from tests.session_data import session_dataset

DAY = 86400

# user: items in time order. Split at s = ⌊n/2⌋: input = first s, goal = the rest.
USERS = {
    "u1": [5, 1, 7, 2, 2, 9],  # input 5 1 7, goal 2 2 9 (a repeated goal item)
    "u2": [4, 6, 8, 3, 1],  # input 4 6, goal 8 3 1
    "u3": [10, 11, 12, 8],  # input 10 11, goal 12 8
    "u4": [1, 2, 3, 4, 5, 6],  # input 1 2 3, goal 4 5 6
}
# Top 3 of the stub: items 1, 2, 3 (ascending token). IDCG@3 over a goal of ≥ 3 items:
# 1 + 1/log2(3) + 1/2 = 2.13093.
IDCG3 = 1 + 1 / math.log2(3) + 0.5
EXPECTED_USER_SPLIT = {
    # G₁ = 2 ∈ R: SPS 1; hits {2}: recall 1/|G| = 1/3 (|G| counts the repeated 2), precision 1/3;
    # 2 is at rank 2: NDCG = (1/log2 3) / IDCG3.
    "u1": {"sps@3": 1, "recall@3": 1 / 3, "precision@3": 1 / 3, "ndcg@3": (1 / math.log2(3)) / IDCG3,
           "usercoverage@3": 1, "correctitemcoverage@3": 1},
    # G₁ = 8 ∉ R: SPS 0; hits {3, 1} at ranks 3 and 1: recall 2/3, NDCG (1 + 1/2) / IDCG3.
    "u2": {"sps@3": 0, "recall@3": 2 / 3, "precision@3": 2 / 3, "ndcg@3": 1.5 / IDCG3,
           "usercoverage@3": 1, "correctitemcoverage@3": 2},
    # goal 12 8: no hit.
    "u3": {"sps@3": 0, "recall@3": 0, "precision@3": 0, "ndcg@3": 0, "usercoverage@3": 0,
           "correctitemcoverage@3": 0},
    # goal 4 5 6: no hit.
    "u4": {"sps@3": 0, "recall@3": 0, "precision@3": 0, "ndcg@3": 0, "usercoverage@3": 0,
           "correctitemcoverage@3": 0},
}
# exclude_seen: the input items are ranked last, so R = the first three unseen items.
EXPECTED_EXCLUDE_SEEN = {
    "u1": {"sps@3": 1, "recall@3": 1 / 3, "ndcg@3": 1 / IDCG3},  # R = 2 3 4; 2 at rank 1
    "u2": {"sps@3": 0, "recall@3": 2 / 3, "ndcg@3": 1.5 / IDCG3},  # R = 1 2 3 (4, 6 were seen)
    "u3": {"sps@3": 0, "recall@3": 0, "ndcg@3": 0},  # R = 1 2 3
    "u4": {"sps@3": 1, "recall@3": 1, "ndcg@3": 1},  # R = 4 5 6 = the goal
}
# eval_all_prefixes: one case per prefix, goal = the rest; SPS and Recall averaged over the cases.
EXPECTED_ALL_PREFIXES = {
    # goals 1 7 2 2 9 | 7 2 2 9 | 2 2 9 | 2 9 | 9 → SPS 1 0 1 1 0, recall 2/5 1/4 1/3 1/2 0
    "u1": {"sps@3": 3 / 5, "recall@3": (2 / 5 + 1 / 4 + 1 / 3 + 1 / 2) / 5},
    # goals 6 8 3 1 | 8 3 1 | 3 1 | 1 → SPS 0 0 1 1, recall 2/4 2/3 1 1
    "u2": {"sps@3": 2 / 4, "recall@3": (2 / 4 + 2 / 3 + 1 + 1) / 4},
    "u3": {"sps@3": 0, "recall@3": 0},
    # goals 2 3 4 5 6 | 3 4 5 6 | 4 5 6 | 5 6 | 6 → SPS 1 1 0 0 0, recall 2/5 1/4 0 0 0
    "u4": {"sps@3": 2 / 5, "recall@3": (2 / 5 + 1 / 4) / 5},
}


class FixedRanking(SequentialRecommender):
    """Scores every case alike: items in the order of ``ranking`` (tokens), the rest after."""

    input_type = InputType.POINTWISE
    ranking = []

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.config = config
        self.unused = nn.Parameter(torch.zeros(1))
        tokens = list(dataset.field2id_token[dataset.iid_field])
        order = {token: rank for rank, token in enumerate(self.ranking)}
        self.scores = torch.tensor([-float(order.get(token, len(order) + 1)) for token in tokens])

    def full_sort_predict(self, interaction):
        # a held-out session served whole is scored per position, as the plugin RNNs do
        whole = target_list_field(self.config) in interaction
        rows = int(interaction[self.ITEM_SEQ_LEN].sum()) if whole else len(interaction)
        return self.scores.expand(rows, -1).clone()


def write_inter(directory, name, rows, header="user_id:token\titem_id:token\ttimestamp:float"):
    folder = Path(directory) / name
    folder.mkdir(parents=True)
    lines = [header] + ["\t".join(str(v) for v in row) for row in rows]
    (folder / f"{name}.inter").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(directory)


@pytest.fixture
def users_data(tmp_path):
    rows = [(user, item, 1000 * k + position)
            for k, (user, items) in enumerate(USERS.items()) for position, item in enumerate(items)]
    return write_inter(tmp_path / "data", "users", rows)


def settings(data_path, dataset, **overrides):
    return {"data_path": data_path, "dataset": dataset, "seed": 7, "state": "ERROR", "show_progress": False,
            "eval_batch_size": 2, "checkpoint_dir": "saved", "topk": [3],
            "load_col": {"inter": ["user_id", "item_id", "timestamp"]}, **overrides}


def prepared(model, config_dict):
    config = Config(model=model, dataset=config_dict["dataset"], config_dict=config_dict)
    init_seed(config["seed"], config["reproducibility"])
    return config, *data_preparation(config, create_dataset(config))


def evaluate_stub(config, train_data, eval_data, ranking):
    FixedRanking.ranking = [str(token) for token in ranking]
    trainer = Trainer(config, FixedRanking(config, train_data._dataset))
    trainer.eval_collector.data_collect(train_data)
    return trainer.evaluate(eval_data, load_best_model=False)


def held_out_user(data):
    dataset = data._dataset
    users = set(dataset.inter_feat[dataset.uid_field].tolist())
    assert len(users) == 1
    return dataset.field2id_token[dataset.uid_field][users.pop()]


USER_METRICS = ["SPS", "Recall", "Precision", "NDCG", "UserCoverage", "CorrectItemCoverage"]


@pytest.mark.parametrize("options,expected", [
    ({}, EXPECTED_USER_SPLIT),
    ({"exclude_seen": True}, EXPECTED_EXCLUDE_SEEN),
    ({"eval_all_prefixes": True}, EXPECTED_ALL_PREFIXES),
])
def test_user_split_metrics_by_hand(users_data, options, expected):
    config, train, valid, test = prepared("GRU4Rec", settings(
        users_data, "users", eval_protocol="user_split", val_users=1, test_users=1, metrics=USER_METRICS,
        valid_metric="SPS@3", **options))
    held_out = {held_out_user(valid), held_out_user(test)}
    assert len(held_out) == 2
    # training reads the other users' whole sequences: n − 1 samples each
    assert len(train._dataset.inter_feat) == sum(len(USERS[u]) - 1 for u in USERS if u not in held_out)
    ranking = range(1, 13)
    for data in (valid, test):
        result = evaluate_stub(config, train, data, ranking)
        for metric, value in expected[held_out_user(data)].items():
            assert result[metric] == pytest.approx(value, abs=1e-4), metric


def test_extended_train_adds_the_held_out_input_parts(users_data):
    config, train, valid, test = prepared("GRU4Rec", settings(
        users_data, "users", eval_protocol="user_split", val_users=1, test_users=1, extended_train=True))
    held_out = {held_out_user(valid), held_out_user(test)}
    train_users = [u for u in USERS if u not in held_out]
    # a held-out user's input part of ⌊n/2⌋ items holds ⌊n/2⌋ − 1 targets
    expected = sum(len(USERS[u]) - 1 for u in train_users) + sum(len(USERS[u]) // 2 - 1 for u in held_out)
    assert len(train._dataset.inter_feat) == expected


def test_user_split_shuffles_users_by_seed(users_data):
    splits = set()
    for seed in range(6):
        _, _, valid, test = prepared("GRU4Rec", settings(
            users_data, "users", eval_protocol="user_split", val_users=1, test_users=1, seed=seed))
        splits.add((held_out_user(valid), held_out_user(test)))
    assert len(splits) > 1


# Sessions (items in time order, times in seconds). The log ends at 3 days: test sessions end in
# [2 d, 3 d]; before them the last event is s3's at 1 d + 230 s, so validation sessions end in
# [230 s, 1 d + 230 s], training sessions before.
SESSIONS = [
    ("s1", [1, 2, 3], 0),  # training
    ("s2", [2, 3, 4], 100),  # training: training items are 1 2 3 4 (ends at 120 s)
    ("s3", [1, 8, 2, 3], DAY + 200),  # validation; 8 is in no training session: 1 2 3 remain
    ("s4", [3, 9, 4, 2], 3 * DAY - 30),  # test; 9 is in no training or validation session: 3 4 2
    ("s5", [9, 2], 2 * DAY + 50),  # test; filtered to 2: shorter than 2, dropped
]
# Stub ranking 9 1 2 3 4; 8 and 9 never occur in training, so they are ranked last: R = 1 2 3 4.
EXPECTED_SESSIONS = {
    # cases (1 → 2), (1 2 → 3): ranks 2 and 3
    "valid": {"recall@2": 1 / 2, "mrr@2": (1 / 2) / 2, "recall@4": 1, "mrr@4": (1 / 2 + 1 / 3) / 2},
    # cases (3 → 4), (3 4 → 2): ranks 4 and 2
    "test": {"recall@2": 1 / 2, "mrr@2": (1 / 2) / 2, "recall@4": 1, "mrr@4": (1 / 4 + 1 / 2) / 2},
}


@pytest.fixture
def sessions_data(tmp_path):
    rows = [(session, item, start + 10 * k)
            for session, items, start in SESSIONS for k, item in enumerate(items)]
    return write_inter(tmp_path / "data", "sessions", rows, "session_id:token\titem_id:token\ttimestamp:float")


def session_settings(data_path, **overrides):
    return settings(data_path, "sessions", **{
        "eval_protocol": "session_split", "USER_ID_FIELD": "session_id", "normalize_all": False,
        "load_col": {"inter": ["session_id", "item_id", "timestamp"]}, "metrics": ["Recall", "MRR"],
        "topk": [2, 4], "valid_metric": "MRR@2", **overrides})


@pytest.mark.parametrize("model", ["GRU4Rec", "RNNCCE"])  # prefix samples; whole-session windows
def test_session_split_metrics_by_hand(sessions_data, model):
    config, train, valid, test = prepared(model, session_settings(sessions_data, train_mode="prefix"))
    # training: s1 and s2, two prefix samples each (RNNCCE still evaluates whole sessions)
    assert sorted(train._dataset.inter_feat["session_id"].tolist()) == sorted(
        train._dataset.token2id("session_id", ["s1", "s1", "s2", "s2"]).tolist())
    assert valid._dataset.held_out.one_pass is (model == "RNNCCE")
    for name, data in (("valid", valid), ("test", test)):
        result = evaluate_stub(config, train, data, [9, 1, 2, 3, 4])
        assert {k: pytest.approx(v, abs=1e-4) for k, v in result.items()} == EXPECTED_SESSIONS[name], name


@pytest.mark.parametrize("model,options", [
    ("RNNCCE", {"train_mode": "sequence"}),
    ("DwellGRU4Rec", {"dwell_mode": "feature"}),
    ("DwellGRU4Rec", {"dwell_mode": "boost", "dwell_boost_eval": True, "dwell_threshold": 5.0}),
])
def test_one_pass_scores_equal_per_prefix_scores(tmp_path, model, options):
    data = session_dataset(tmp_path / "gen", n_sessions=200)
    config_dict = {**data, "eval_protocol": "session_split", "seed": 3, "state": "ERROR", "test_days": 5,
                   "valid_days": 5, "metrics": ["Recall", "MRR", "SPS"], "topk": [5, 20], **options}
    config, train, _, test = prepared(model, config_dict)
    assert test._dataset.held_out.one_pass
    init_seed(3, True)
    model_instance = get_model(model)(config, train._dataset)
    trainer = Trainer(config, model_instance)
    trainer.eval_collector.data_collect(train)
    one_pass = trainer.evaluate(test, load_best_model=False)
    # the same held-out sessions as RecBole's prefix samples (plain SequentialDataset)
    prefix_dataset = SequentialDataset(config)
    _, _, prefix_test = data_preparation(config, prefix_dataset)
    assert not prefix_test._dataset.held_out.one_pass
    assert len(prefix_test._dataset.inter_feat) == int(test._dataset.inter_feat["item_length"].sum())
    per_prefix = trainer.evaluate(prefix_test, load_best_model=False)
    assert one_pass == pytest.approx(per_prefix)
    assert one_pass["recall@20"] > 0


@pytest.mark.parametrize("overrides,message", [
    ({"eval_protocol": "users"}, "eval_protocol: 'users' is not allowed; use one of ['leave_one_out', "
                                  "'user_split', 'session_split']"),
    ({"eval_protocol": "user_split", "input_fraction": 1.5}, "input_fraction: 1.5 is not allowed"),
    ({"eval_protocol": "user_split", "val_users": 2, "test_users": 2},
     "val_users: 2 and test_users: 2 hold out 2 + 2 of the 4 users with at least 2 items: no training user"),
    ({"eval_protocol": "user_split", "test_users": 2.5}, "test_users: 2.5 is not allowed"),
    ({"eval_protocol": "session_split", "normalize_all": True},
     "eval_protocol: session_split needs raw seconds in 'timestamp'"),
    ({"eval_protocol": "session_split"},  # the whole log spans seconds: every session is held out
     "test_days: 1.0 and valid_days: 1.0 leave no training session"),
    ({"eval_protocol": "user_split", "eval_args": {"mode": "uni100", "order": "TO", "split": {"LS": "valid_and_test"}}},
     "eval_protocol: user_split ranks all items"),
])
def test_bad_values_name_the_key(users_data, overrides, message):
    with pytest.raises(ConfigError, match="^" + _escaped(message)):
        run_recbole(model="RNNCCE", dataset="users", config_dict=settings(users_data, "users", **overrides))


def test_session_split_without_time_field(sessions_data):
    config_dict = session_settings(sessions_data, load_col={"inter": ["session_id", "item_id"]})
    with pytest.raises(ConfigError, match="^eval_protocol: session_split splits sessions by the days"):
        run_recbole(model="GRU4Rec", dataset="sessions", config_dict=config_dict)


def _escaped(text):
    return re.escape(text)


def test_run_recbole_user_split_and_checkpoint(tiny_config):
    result = run_recbole(model="RNNCCE", dataset="ml-tiny", config_dict={
        **tiny_config, "eval_protocol": "user_split", "metrics": ["SPS", "Recall", "UserCoverage", "NDCG"],
        "topk": [10], "valid_metric": "NDCG@10", "embedding_size": 16, "hidden_size": 16})
    test = result["test_result"]
    assert set(test) == {"sps@10", "recall@10", "usercoverage@10", "ndcg@10"}
    assert test["usercoverage@10"] >= test["sps@10"]
    assert test["usercoverage@10"] >= test["recall@10"]
    checkpoint = next(Path(tiny_config["checkpoint_dir"]).glob("RNNCCE-*.pth"))
    config, model, _, train, _, test_data = load_data_and_model(str(checkpoint))
    trainer = Trainer(config, model)
    trainer.eval_collector.data_collect(train)
    assert trainer.evaluate(test_data, load_best_model=False) == pytest.approx(test)


@pytest.mark.parametrize("options", [{}, {"final_train_on_valid": True, "train_mode": "session", "epochs": 2}])
def test_run_recbole_session_split(tmp_path, options):
    data = session_dataset(tmp_path / "gen", n_sessions=300)
    result = run_recbole(model="DwellGRU4Rec", dataset=data["dataset"], config_dict={
        **data, "eval_protocol": "session_split", "test_days": 5, "valid_days": 5, "epochs": 1,
        "metrics": ["Recall", "MRR"], "topk": [20], "valid_metric": "MRR@20", "state": "ERROR",
        "show_progress": False, "checkpoint_dir": str(tmp_path / "saved"), "embedding_size": 16,
        "hidden_size": 16, **options})
    assert set(result["test_result"]) == {"recall@20", "mrr@20"}
    assert 0 < result["test_result"]["mrr@20"] <= result["test_result"]["recall@20"]


@pytest.mark.parametrize("model,options", [
    ("GRU4Rec", {}), ("NARM", {}), ("SASRec", {"n_layers": 1, "n_heads": 1, "inner_size": 16}),
    ("RNNCCE", {"train_mode": "prefix"}),
])
def test_models_train_and_test_under_user_split(tiny_config, model, options):
    result = run_recbole(model=model, dataset="ml-tiny", config_dict={
        **tiny_config, "eval_protocol": "user_split", "metrics": ["SPS", "Recall", "UserCoverage"], "topk": [10],
        "valid_metric": "Recall@10", "embedding_size": 16, "hidden_size": 16, "MAX_ITEM_LIST_LENGTH": 20,
        **options})
    test = result["test_result"]
    cases = 6  # ⌊0.1 · 60⌋ test users, one case each: SPS and UserCoverage are multiples of 1/6
    for metric in ("sps@10", "usercoverage@10"):
        assert test[metric] * cases == pytest.approx(round(test[metric] * cases), abs=1e-3)
    assert test["usercoverage@10"] >= max(test["sps@10"], test["recall@10"])


def test_general_models_refuse_held_out_protocols(tiny_config):
    with pytest.raises(ConfigError, match="^eval_protocol: 'user_split' needs a sequential model; BPR is not one"):
        run_recbole(model="BPR", dataset="ml-tiny", config_dict={**tiny_config, "eval_protocol": "user_split"})


# ---------------------------------------------------------------- raw time order (every protocol)
# Each user's rows in file order; the raw times give the order 2 1 3 4 5 (2 and 1 share a time:
# file order). With normalize_all the times become (t − 10) / (10⁹ − 10), and in float32 the last
# three all read 1.0: a stable sort on those keeps the file's 5 4 3, not the raw 3 4 5.
RAW_ORDER_ROWS = [row for k, user in enumerate("abcd") for row in (
    (user, 5, 1_000_000_000 - k), (user, 4, 999_999_999 - k), (user, 3, 999_999_998 - k),
    (user, 2, 10 + k), (user, 1, 10 + k))]
T0 = 1_400_000_000  # float32 holds multiples of 128 here: T0 + 1 and T0 + 2 both read T0
RAW_ORDER_SESSIONS = [
    ("t1", 3, T0 + 2), ("t1", 2, T0 + 1), ("t1", 1, T0),  # training: raw order 1 2 3
    ("t2", 1, T0 + 50), ("t2", 2, T0 + 51), ("t2", 3, T0 + 52),  # training
    ("v", 2, T0 + 1.5 * DAY + 1), ("v", 1, T0 + 1.5 * DAY),  # validation: 1 2
    ("x", 3, T0 + 3 * DAY), ("x", 2, T0 + 3 * DAY - 1), ("x", 1, T0 + 3 * DAY - 1),  # test: 2 1 3
]


def written_sequences(data):
    """Each case of a split as the items it reads then its target (tokens); a window: its inputs then
    its last target."""
    dataset = data._dataset
    inter = dataset.inter_feat[list(range(len(dataset.inter_feat)))]
    tokens = dataset.field2id_token[dataset.iid_field]
    target_list = target_list_field(dataset.config)
    sequences = []
    for row in range(len(inter)):
        length = int(inter["item_length"][row])
        inputs = inter["item_id_list"][row][:length].tolist()
        last = inter[target_list][row][length - 1] if target_list in inter else inter["item_id"][row]
        sequences.append([int(tokens[item]) for item in [*inputs, int(last)]])
    return sequences


@pytest.mark.parametrize("model", ["GRU4Rec", "RNNCCE"])
def test_leave_one_out_orders_by_raw_time(tmp_path, model):
    data_path = write_inter(tmp_path / "data", "order", RAW_ORDER_ROWS)
    _, _, valid, test = prepared(model, settings(data_path, "order", normalize_all=True))
    assert written_sequences(test) == [[2, 1, 3, 4, 5]] * 4  # the file's order would give 2 1 5 4 3
    assert written_sequences(valid) == [[2, 1, 3, 4]] * 4


@pytest.mark.parametrize("model", ["GRU4Rec", "RNNCCE"])
def test_user_split_goals_in_raw_time_order(tmp_path, model):
    data_path = write_inter(tmp_path / "data", "order", RAW_ORDER_ROWS)
    _, _, valid, test = prepared(model, settings(data_path, "order", normalize_all=True,
                                                 eval_protocol="user_split", val_users=1, test_users=1))
    for data in (valid, test):
        held_out = data._dataset.held_out
        tokens = data._dataset.field2id_token[data._dataset.iid_field]
        # n = 5, input 2 1, goal 3 4 5: G₁ = 3 (the file's order would make it 5)
        assert [int(tokens[item]) for item in held_out.goals] == [3, 4, 5]
        assert written_sequences(data) == [[2, 1, 3]]  # the input, then G₁


@pytest.mark.parametrize("model", ["GRU4Rec", "RNNCCE"])
def test_session_split_orders_float32_ties_by_raw_time(tmp_path, model):
    data_path = write_inter(tmp_path / "data", "sessions", RAW_ORDER_SESSIONS,
                            "session_id:token\titem_id:token\ttimestamp:float")
    _, train, valid, test = prepared(model, session_settings(data_path, train_mode="prefix"))
    assert written_sequences(test)[-1] == [2, 1, 3]  # float32 ties all three: the file says 3 2 1
    assert written_sequences(valid)[-1] == [1, 2]
    assert sorted(map(tuple, written_sequences(train))) == [(1, 2), (1, 2), (1, 2, 3), (1, 2, 3)]


def test_rm_dup_inter_keeps_the_first_row_in_file_order(tmp_path):
    # 40 rows at one time: two rows of each (user, item) pair, ratings 1 then 2
    rows = [(f"u{user}", item, 100, rating) for rating in (1, 2) for user in range(4) for item in range(1, 6)]
    data_path = write_inter(tmp_path / "data", "dups", rows,
                            "user_id:token\titem_id:token\ttimestamp:float\trating:float")
    config = Config(model="GRU4Rec", dataset="dups", config_dict=settings(
        data_path, "dups", rm_dup_inter="first", load_col={"inter": ["user_id", "item_id", "timestamp", "rating"]}))
    dataset = create_dataset(config)
    assert len(dataset.inter_feat) == 20
    assert set(dataset.inter_feat["rating"].tolist()) == {1.0}


# ------------------------------------------- held-out sequences read whole (the state carried through)
class CountingStub(SequentialRecommender):
    """Predicts the item whose token is the number of items read + 1, counting from the start of what
    it is given (a window, a prefix sample): it restarts wherever its input restarts, as a model
    whose state is not carried over would."""

    input_type = InputType.POINTWISE

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.target_list = target_list_field(config)
        self.unused = nn.Parameter(torch.zeros(1))
        tokens = dataset.field2id_token[dataset.iid_field]
        self.numbers = torch.tensor([float(t) if t.isdigit() else float("inf") for t in tokens])

    def full_sort_predict(self, interaction):
        lengths = interaction[self.ITEM_SEQ_LEN]
        if self.target_list in interaction:  # a window: position k has read k + 1 items
            read = torch.cat([torch.arange(1, int(n) + 1) for n in lengths]).float()
        else:  # a prefix sample has read its list
            read = lengths.float()
        return -(self.numbers[None, :] - (read[:, None] + 1)).abs()


def evaluate_counting(config, train_data, eval_data):
    trainer = Trainer(config, CountingStub(config, train_data._dataset))
    trainer.eval_collector.data_collect(train_data)
    return trainer.evaluate(eval_data, load_best_model=False)


# Items are the positions 1 … 8 of a training session, so a held-out event at position p is item p.
COUNTING_SESSIONS = [("t", list(range(1, 9)), 0), ("v", [1, 2, 3], 1.5 * DAY), ("x", [1, 2, 3, 4, 5, 6], 3 * DAY - 60)]


@pytest.mark.parametrize("model,expected", [
    # read whole (one window of 5 targets): event p has read p − 1 items, every case a hit
    ("RNNCCE", {"recall@1": 1.0, "mrr@1": 1.0}),
    # RecBole's prefix samples read the last MAX_ITEM_LIST_LENGTH = 2 items: hits at p = 2, 3 only.
    # (Windows of 2 targets restarting from a zero state, as before: only p = 2 — 1/5.)
    ("GRU4Rec", {"recall@1": 2 / 5, "mrr@1": 2 / 5}),
])
def test_held_out_sessions_are_read_whole(tmp_path, model, expected):
    rows = [(session, item, start + 10 * k) for session, items, start in COUNTING_SESSIONS for k, item in enumerate(items)]
    data_path = write_inter(tmp_path / "data", "sessions", rows, "session_id:token\titem_id:token\ttimestamp:float")
    config, train, _, test = prepared(model, session_settings(
        data_path, MAX_ITEM_LIST_LENGTH=2, topk=[1], valid_metric="MRR@1", train_mode="prefix"))
    if model == "RNNCCE":
        assert test._dataset.inter_feat.lengths.tolist() == [5]  # one window, longer than MAX_ITEM_LIST_LENGTH
    assert evaluate_counting(config, train, test) == pytest.approx(expected)


@pytest.mark.parametrize("model,sps", [("RNNCCE", 1.0), ("GRU4Rec", 0.0)])
def test_held_out_users_input_is_read_whole(tmp_path, model, sps):
    # every user 1 … 8: input 1 2 3 4, G₁ = 5; read whole the stub predicts 5, read through RecBole's
    # last MAX_ITEM_LIST_LENGTH = 2 items it predicts 3
    rows = [(user, item, 100 * k + item) for k, user in enumerate("abc") for item in range(1, 9)]
    data_path = write_inter(tmp_path / "data", "users", rows)
    config, train, _, test = prepared(model, settings(
        data_path, "users", eval_protocol="user_split", val_users=1, test_users=1, MAX_ITEM_LIST_LENGTH=2,
        topk=[1], metrics=["SPS"], valid_metric="SPS@1"))
    assert evaluate_counting(config, train, test) == {"sps@1": sps}


def _long_run_metrics(config_dict, model_options):
    """RNNCCE trained one epoch with MAX_ITEM_LIST_LENGTH 5, then tested on the splits built with 5
    and with 50: the same model, the same cases, read whole either way."""
    config, train, valid, _ = prepared("RNNCCE", {**config_dict, "MAX_ITEM_LIST_LENGTH": 5, **model_options})
    init_seed(3, True)
    model = get_model("RNNCCE")(config, train._dataset)
    trainer = Trainer(config, model)
    trainer.fit(train, valid, saved=False)
    results = []
    for max_length in (5, 50):
        config_n, train_n, _, test_n = prepared("RNNCCE", {**config_dict, "MAX_ITEM_LIST_LENGTH": max_length})
        tester = Trainer(config_n, model)
        tester.eval_collector.data_collect(train_n)
        results.append((tester.evaluate(test_n, load_best_model=False), test_n))
    return results


def test_held_out_sessions_score_alike_for_any_max_item_list_length(tmp_path):
    data = session_dataset(tmp_path / "gen", n_sessions=200)
    config_dict = {**data, "eval_protocol": "session_split", "seed": 3, "state": "ERROR", "test_days": 5,
                   "valid_days": 5, "metrics": ["Recall", "MRR"], "topk": [5, 20], "valid_metric": "MRR@20",
                   "epochs": 1, "show_progress": False, "checkpoint_dir": str(tmp_path / "saved")}
    (short, short_test), (long, _) = _long_run_metrics(config_dict, {"embedding_size": 16, "hidden_size": 16})
    assert short_test._dataset.inter_feat.lengths.max() > 6  # sessions longer than 5 inputs
    assert short == pytest.approx(long)
    assert short["recall@20"] > 0


def test_held_out_users_score_alike_for_any_max_item_list_length(tiny_config):
    config_dict = {**tiny_config, "eval_protocol": "user_split", "metrics": ["SPS", "Recall", "NDCG"],
                   "topk": [10], "valid_metric": "NDCG@10", "embedding_size": 16, "hidden_size": 16}
    (short, short_test), (long, _) = _long_run_metrics(config_dict, {})
    assert short_test._dataset.inter_feat["item_length"].min() > 5  # inputs of 10 items and more
    assert short == pytest.approx(long)
    assert short["recall@10"] > 0


# ------------------------------------------------------------- session_split as GRU4Rec splits
# GRU4Rec's preprocess.py: test = sessions ending in the log's last day (T = 10 d: from 9 d on);
# validation = of the others, those ending in the last day before *their* last event (d's, at
# 8.5 d + 10 s): from 7.5 d + 10 s on, so c too (counted back from the test's start, 8 d, c would be
# training); validation keeps training items (1 2 3 4), the test training and validation items (5 too).
GRU4REC_SESSIONS = [
    ("a", [1, 2, 3], 0), ("b", [2, 3, 4], 3 * DAY),  # training
    ("c", [1, 5, 2], 7.8 * DAY), ("d", [4, 3], 8.5 * DAY),  # validation: c -> 1 2 (5 is validation-only)
    ("x", [5, 2, 6, 3], 10 * DAY - 30),  # test -> 5 2 3 (6 occurs only in test sessions)
    ("y", [6, 1], 9.5 * DAY),  # test -> 1: dropped
]


@pytest.fixture
def gru4rec_sessions(tmp_path):
    rows = [(session, item, start + 10 * k) for session, items, start in GRU4REC_SESSIONS for k, item in enumerate(items)]
    return write_inter(tmp_path / "data", "sessions", rows, "session_id:token\titem_id:token\ttimestamp:float")


def _sessions_of(data):
    dataset = data._dataset
    uids = dataset.inter_feat[dataset.uid_field]
    return sorted(set(dataset.field2id_token[dataset.uid_field][uids.numpy()].tolist()))


@pytest.mark.parametrize("model", ["GRU4Rec", "RNNCCE"])
@pytest.mark.parametrize("final,expected_test", [
    # the scoring model trained on a, b only: 5 and 6 ranked last, R = 3 2 1 4: 2 at rank 2, 3 at 1
    (False, {"recall@2": 1.0, "mrr@2": (1 / 2 + 1) / 2, "recall@4": 1.0, "mrr@4": (1 / 2 + 1) / 2}),
    # trained on a b c d (final_train_on_valid): only 6 ranked last, R = 5 3 2 1: 2 at rank 3, 3 at 2
    (True, {"recall@2": 1 / 2, "mrr@2": (1 / 2) / 2, "recall@4": 1.0, "mrr@4": (1 / 3 + 1 / 2) / 2}),
])
def test_session_split_follows_gru4rec(gru4rec_sessions, model, final, expected_test):
    config, train, valid, test = prepared(model, session_settings(
        gru4rec_sessions, train_mode="prefix", final_train_on_valid=final))
    assert _sessions_of(train) == ["a", "b"] and _sessions_of(valid) == ["c", "d"] and _sessions_of(test) == ["x"]
    assert written_sequences(test)[-1] == [5, 2, 3]
    ranking = [6, 5, 3, 2, 1, 4]
    # validation cases 1 -> 2 (rank 2), 4 -> 3 (rank 1) with 5 and 6 ranked last
    assert evaluate_stub(config, train, valid, ranking) == pytest.approx(
        {"recall@2": 1.0, "mrr@2": 0.75, "recall@4": 1.0, "mrr@4": 0.75})
    assert evaluate_stub(config, train, test, ranking) == pytest.approx(expected_test, abs=1e-4)
    # popularity: every item of the training sessions a (1 2 3) and b (2 3 4), first items included
    assert _item_counts(train._dataset) == {1: 1, 2: 2, 3: 2, 4: 1}
    final_split = getattr(train._dataset, "final_train", None)
    assert (final_split is not None) is final
    if final:
        # every event of a b c d, c's 5 included: 2 + 2 + 2 + 1 targets
        assert _sessions_of_dataset(final_split) == ["a", "b", "c", "d"]
        assert len(final_split.inter_feat) == 7
        assert _item_counts(final_split) == {1: 2, 2: 3, 3: 3, 4: 2, 5: 1}


def _item_counts(dataset):
    tokens = dataset.field2id_token[dataset.iid_field]
    return {int(tokens[item]): count for item, count in popularity.of(dataset).items()}


def _sessions_of_dataset(dataset):
    uids = dataset.inter_feat[dataset.uid_field]
    return sorted(set(dataset.field2id_token[dataset.uid_field][uids.numpy()].tolist()))


def test_final_train_on_valid_tests_a_model_trained_on_train_and_validation(tmp_path):
    data = session_dataset(tmp_path / "gen", n_sessions=300)
    config_dict = {**data, "eval_protocol": "session_split", "seed": 5, "state": "ERROR", "test_days": 5,
                   "valid_days": 5, "metrics": ["Recall", "MRR"], "topk": [20], "valid_metric": "MRR@20",
                   "epochs": 5, "stopping_step": 10, "show_progress": False, "embedding_size": 16,
                   "hidden_size": 16, "learning_rate": 0.1, "checkpoint_dir": str(tmp_path / "saved"),
                   "final_train_on_valid": True}
    config, train, valid, test = prepared("RNNCCE", config_dict)
    init_seed(config["seed"], config["reproducibility"])
    trainer = Trainer(config, get_model("RNNCCE")(config, train._dataset))
    scores = []
    best_score, _ = trainer.fit(train, valid, saved=True, callback_fn=lambda epoch, score: scores.append(score))
    # the selection fit as RecBole's: 5 validations, the best returned; the final fit as long as the
    # last epoch with the best score (RecBole's early stopping keeps the later of equal scores) —
    # here the 4th (MRR@20 0.1787, then 0.1746)
    assert len(scores) == 5 and best_score == max(scores)
    assert trainer.final_fit_epochs == max(e for e, score in enumerate(scores) if score == best_score) + 1
    assert trainer.final_fit_epochs < 5
    tested = trainer.evaluate(test, load_best_model=True)
    # the same by hand: a fresh model (same seed) on every event of the training and validation
    # sessions, trained that many epochs without validation
    final = train._dataset.final_train
    assert final.n_training_targets() > train._dataset.n_training_targets()
    loader = TrainDataLoader(config, final, None, shuffle=config["shuffle"])
    init_seed(config["seed"], config["reproducibility"])
    by_hand = Trainer(config, get_model("RNNCCE")(config, final))
    by_hand.epochs = trainer.final_fit_epochs
    by_hand.fit(loader, None, saved=False)
    assert tested == pytest.approx(by_hand.evaluate(test, load_best_model=False))
    assert tested["recall@20"] > 0


def test_final_train_on_valid_needs_session_split(users_data):
    with pytest.raises(ConfigError, match="^final_train_on_valid: True retrains .* needs eval_protocol: session_split"):
        run_recbole(model="RNNCCE", dataset="users", config_dict=settings(
            users_data, "users", eval_protocol="user_split", final_train_on_valid=True))
