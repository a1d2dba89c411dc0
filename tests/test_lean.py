"""The lean sequential data path: RecBole's prefix samples as rows of the flat interactions
(recbole_ext/data/lean.py) give RecBole's own augmented batches, hold a few bytes per event, and
train RecBole's own models to the same results."""

import numpy as np
import pytest
import torch
from recbole.config import Config
from recbole.data import create_dataset, data_preparation
from recbole.data.dataset import SequentialDataset

import recbole_ext
from recbole_ext.data.lean import LeanSamples, held_bytes
from recbole_ext.data.sequence import SequenceDataset
from tests.conftest import quick_test
from tests.session_data import session_dataset

INTER_AND_ITEM = {"inter": ["user_id", "item_id", "rating", "timestamp"], "item": ["item_id", "class"]}


def _config(tiny_config, model, **settings):
    return Config(model=model, dataset="ml-tiny", config_dict={
        **tiny_config, "load_col": INTER_AND_ITEM, "train_batch_size": 64, **settings})


def _recbole_splits(config):
    """RecBole's own augmentation and leave-one-out split of ``config``'s data (a copy of it
    without the lean key)."""
    stock = Config(model=config["model"], dataset=config["dataset"],
                   config_dict={**config.variable_config_dict, "lean_sequences": False})
    return data_preparation(stock, _Stock(stock))


class _Stock(SequentialDataset):
    """RecBole's SequentialDataset with RecBole's own augmentation (the hook's original)."""

    def data_augmentation(self):
        SequentialDataset.data_augmentation.__wrapped__(self)


def _assert_equal_batches(ours, recbole):
    assert sorted(ours.columns) == sorted(recbole.columns)
    for field in recbole.columns:
        assert ours[field].dtype == recbole[field].dtype, field
        assert torch.equal(ours[field], recbole[field]), field


@pytest.mark.parametrize("max_len", [50, 3])
@pytest.mark.parametrize("model,settings", [
    ("RNNCCE", {"train_mode": "prefix"}),  # a plugin RNN: always lean
    ("GRU4RecF", {"lean_sequences": True}),  # RecBole's own, item features joined per batch
    ("SASRec", {"lean_sequences": True, "n_layers": 1, "n_heads": 1, "hidden_size": 8, "inner_size": 8}),
])
def test_lean_batches_are_recbole_s_augmented_batches(tiny_config, model, settings, max_len):
    config = _config(tiny_config, model, MAX_ITEM_LIST_LENGTH=max_len, **settings)
    ours = data_preparation(config, create_dataset(config))
    recbole = _recbole_splits(config)
    assert isinstance(ours[0]._dataset.inter_feat, LeanSamples)
    assert not isinstance(recbole[0]._dataset.inter_feat, LeanSamples)
    for our_split, recbole_split in zip(ours, recbole):  # train, valid, test: the same samples, in order
        everything = np.arange(len(recbole_split._dataset))
        assert len(our_split._dataset) == len(everything) > 0
        _assert_equal_batches(our_split._dataset[everything], recbole_split._dataset[everything])
    # the training loader draws the same batches from the same seed, in the first epoch and the next
    batches = list(zip(ours[0], recbole[0]))
    assert len(batches) == len(recbole[0]) > 1
    batches += list(zip(ours[0], recbole[0]))
    for our_batch, recbole_batch in batches:
        _assert_equal_batches(our_batch, recbole_batch)
    first = batches[0][0]
    assert "rating_list" in first.columns and "class" in first.columns  # an item feature, joined per batch
    assert int(first["item_length"].max()) == min(max_len, 50)


@pytest.mark.parametrize("model,settings", [
    ("GRU4Rec", {"lean_sequences": True}),
    ("RNNCCE", {"train_mode": "prefix"}),
    ("RNNCCE", {"train_mode": "sequence"}),
    ("DwellGRU4Rec", {"train_mode": "session", "train_batch_size": 16}),
])
def test_the_sequential_dataset_holds_a_few_bytes_per_event_in_every_mode(tmp_path, model, settings):
    """Counted from the tensors the splits hold: a return to per-sample lists (RecBole's ~700 bytes
    per event at MAX_ITEM_LIST_LENGTH 50) fails this."""
    data = session_dataset(tmp_path / "gen", n_sessions=400)
    config = Config(model=model, dataset=data["dataset"], config_dict={
        **data, "state": "ERROR", "MAX_ITEM_LIST_LENGTH": 50, **settings})
    splits = [split._dataset.inter_feat for split in data_preparation(config, create_dataset(config))]
    events = len(splits[1].flat)
    per_event = held_bytes(splits) / events
    # flat columns (session and item int32, time float32: 12) + a sample row (8) + a sequence start
    # (8 per session); session steps add 21 (items, targets: int64; time: float32; reset: bool)
    assert per_event <= 12 + 8 + 8 + 21 + 2
    stock = _recbole_splits(Config(model="GRU4Rec", dataset=data["dataset"],
                                   config_dict={**data, "state": "ERROR", "MAX_ITEM_LIST_LENGTH": 50}))
    stock_bytes = held_bytes([split._dataset.inter_feat for split in stock])
    assert stock_bytes / events > 10 * per_event


def test_the_whole_split_column_of_a_list_field_is_gathered_on_request(tiny_config):
    config = _config(tiny_config, "GRU4Rec", lean_sequences=True, MAX_ITEM_LIST_LENGTH=4)
    ours = data_preparation(config, create_dataset(config))[1]._dataset.inter_feat
    recbole = _recbole_splits(config)[1]._dataset.inter_feat
    for field in ("item_id_list", "item_length", "item_id", "timestamp_list"):
        assert torch.equal(ours[field], recbole[field]), field


def test_recbole_gru4rec_with_the_lean_key_trains_to_the_same_results(tiny_config):
    settings = {**tiny_config, "model": "GRU4Rec", "embedding_size": 8, "hidden_size": 8,
                "load_col": {"inter": ["user_id", "item_id", "timestamp"]}, "epochs": 2}
    lean = quick_test(settings, lean_sequences=True)
    stock = quick_test(settings, lean_sequences=False)
    assert lean["test_result"] == stock["test_result"]
    assert lean["best_valid_result"] == stock["best_valid_result"]


def test_plugin_rnns_are_lean_whatever_the_key(tiny_config):
    config = _config(tiny_config, "RNNCCE", lean_sequences=False, train_mode="prefix")
    dataset = create_dataset(config)
    assert isinstance(dataset, SequenceDataset)
    assert isinstance(data_preparation(config, dataset)[0]._dataset.inter_feat, LeanSamples)


@pytest.mark.parametrize("split,message", [
    ({"RS": [0.8, 0.1, 0.1]}, r"^eval_args.split: \{'RS': \[0.8, 0.1, 0.1\]\} is not allowed with the lean sequential data path"),
    ({"LS": "every"}, r"^eval_args.split: LS 'every' is not allowed; use valid_and_test, valid_only or test_only$"),
])
def test_splits_the_lean_path_does_not_make_are_one_clear_error(tiny_config, split, message):
    config = _config(tiny_config, "GRU4Rec", lean_sequences=True, eval_args={"split": split, "order": "TO", "mode": "full"})
    with pytest.raises(recbole_ext.ConfigError, match=message):
        data_preparation(config, create_dataset(config))


@pytest.mark.parametrize("mode", ["valid_only", "test_only"])
def test_one_held_out_split_is_recbole_s(tiny_config, mode):
    config = _config(tiny_config, "GRU4Rec", lean_sequences=True, eval_args={"split": {"LS": mode}, "order": "TO", "mode": "full"})
    ours = [split._dataset if split is not None else None for split in data_preparation(config, create_dataset(config))]
    recbole = [split._dataset if split is not None else None for split in _recbole_splits(config)]
    for our_split, recbole_split in zip(ours, recbole):
        assert len(our_split) == len(recbole_split)
        if len(recbole_split):
            everything = np.arange(len(recbole_split))
            _assert_equal_batches(our_split[everything], recbole_split[everything])


def test_lean_key_must_be_a_boolean(tiny_config):
    with pytest.raises(recbole_ext.ConfigError, match=r"^lean_sequences: 'yes' is not allowed; use true or false$"):
        _config(tiny_config, "GRU4Rec", lean_sequences="yes")


@pytest.mark.parametrize("protocol", ["user_split", "session_split"])
def test_recbole_models_under_the_held_out_protocols_give_the_same_results_lean(tmp_path, tiny_config, protocol):
    if protocol == "session_split":
        data = session_dataset(tmp_path / "gen", n_sessions=300)
        settings = {**data, "eval_protocol": protocol, "test_days": 5, "valid_days": 5}
    else:
        settings = {**tiny_config, "eval_protocol": protocol, "load_col": {"inter": ["user_id", "item_id", "timestamp"]}}
    settings = {**settings, "model": "GRU4Rec", "embedding_size": 8, "hidden_size": 8, "epochs": 1, "seed": 3,
                "state": "ERROR", "show_progress": False, "metrics": ["Recall", "MRR"], "topk": [5], "valid_metric": "MRR@5"}
    lean = quick_test(settings, lean_sequences=True)
    stock = quick_test(settings, lean_sequences=False)
    assert lean["test_result"] == stock["test_result"] and lean["test_result"]["recall@5"] > 0


def test_lean_loading_reads_filters_and_remaps_as_recbole_does(tiny_config):
    """Categorical tokens, the vectorised k-core filter and the remap on codes give RecBole's ids."""
    settings = {"load_col": {"inter": ["user_id", "item_id", "timestamp"]},
                "user_inter_num_interval": "[20,inf)", "item_inter_num_interval": "(3,40]"}
    lean_config = _config(tiny_config, "GRU4Rec", lean_sequences=True, **settings)
    ours = create_dataset(lean_config)
    stock = _Stock(Config(model="GRU4Rec", dataset="ml-tiny", config_dict={**lean_config.variable_config_dict,
                                                                        "lean_sequences": False}))
    assert 0 < len(ours.inter_feat) == len(stock.inter_feat) < 6000  # the filters dropped rows
    for field in ("user_id", "item_id"):
        assert list(ours.field2id_token[field]) == list(stock.field2id_token[field])
        assert ours.inter_feat[field].tolist() == stock.inter_feat[field].tolist()
        token = stock.field2id_token[field][3]
        assert ours.token2id(field, token) == stock.token2id(field, token) == 3
        assert len(ours.field2token_id[field]) == len(stock.field2token_id[field])
    assert ours.inter_feat["timestamp"].tolist() == stock.inter_feat["timestamp"].tolist()


def test_evaluation_batches_are_sized_by_the_memory_budget_with_the_same_results(tiny_config):
    settings = {**tiny_config, "model": "GRU4Rec", "embedding_size": 8, "hidden_size": 8, "lean_sequences": True,
                "load_col": {"inter": ["user_id", "item_id", "timestamp"]}}
    config = _config(tiny_config, "GRU4Rec", lean_sequences=True, eval_memory_mb=0.05)
    valid = data_preparation(config, create_dataset(config))[1]
    cases = int(0.05 * 2**20) // (9 * valid._dataset.item_num)
    assert 1 <= cases < config["eval_batch_size"] and len(next(iter(valid))[0]) == cases
    budgeted = quick_test(settings, eval_memory_mb=0.05)
    assert budgeted["test_result"] == quick_test(settings)["test_result"]
    with pytest.raises(recbole_ext.ConfigError, match=r"^eval_memory_mb: 0 is not allowed; use a number > 0$"):
        _config(tiny_config, "GRU4Rec", eval_memory_mb=0)


# (file text, whether pyarrow reads it): what pyarrow reads must equal pandas' C parser's frame;
# what it cannot read the same way goes to pandas (whose errors the data checks report by line)
ARROW_CASES = {
    "plain": ("1\t007\t1.5\n2\t7\t2\n1\t07\t3\n", True),
    "missing values": ("1\tNA\t1.5\n2\t\t\nnull\tNone\t3\n<NA>\tx\tnan\n1\t2\t#N/A\n", True),
    "quoted": ('"1\t2"\t"a"\t1\n3\t""\t2\na"b\t2\t3\n', True),
    "blank line": ("1\t2\t3\n\n4\t5\t6\n", True),
    "no final newline": ("1\t2\t3", True),
    "windows newlines": ("1\t2\t3\r\n4\t5\t6\r\n", True),
    "numbers": ("1\t2\t1e3\n1\t2\t-0.0\n1\t2\tinf\n1\t2\t+3\n1\t2\t 4\n", True),
    "unicode": ("é\t字\t3\n", True),
    "header only": ("", True),
    "short row": ("1\t2\n4\t5\t6\n", False),
    "long row": ("1\t2\t3\t4\n", False),
    "trailing separator": ("1\t2\t3\t\n", False),
    "text in a float column": ("1\t2\tx\n", False),
    "decimal comma": ("1\t2\t1,5\n", False),
    "spaces-only line": ("1\t2\t3\n   \n", False),
}


@pytest.mark.parametrize("case", list(ARROW_CASES))
def test_arrow_reading_equals_pandas_or_leaves_the_file_to_it(tmp_path, case):
    import pandas

    from recbole_ext.data import loading

    text, arrow_reads = ARROW_CASES[case]
    path = tmp_path / "log.inter"
    path.write_text("u:token\ti:token\tt:float\n" + text, encoding="utf-8")
    columns = ["u:token", "i:token", "t:float"]
    kwargs = {"delimiter": "\t", "usecols": columns, "dtype": {"u:token": str, "i:token": str, "t:float": np.float64},
              "encoding": "utf-8", "engine": "python"}
    frame = loading._read_with_arrow(str(path), "\t", columns[:2], kwargs)
    assert (frame is not None) == arrow_reads
    if frame is None:
        return
    expected = pandas.read_csv(path, **{**kwargs, "engine": "c", "dtype": {
        "u:token": loading.TOKEN_DTYPE, "i:token": loading.TOKEN_DTYPE, "t:float": np.float64}})
    assert list(frame.columns) == columns and len(frame) == len(expected)
    for column in columns[:2]:
        assert loading.is_categorical(frame[column])
        assert frame[column].astype(object).where(frame[column].notna(), None).tolist() == \
            expected[column].astype(object).where(expected[column].notna(), None).tolist()
    np.testing.assert_array_equal(frame["t:float"].to_numpy(), expected["t:float"].to_numpy())


def _lean_gru4rec_dataset(tmp_path, name, rows):
    """RecBole's GRU4Rec dataset with ``lean_sequences`` of ``rows`` (user, item, time) written as ``name``."""
    folder = tmp_path / name
    folder.mkdir()
    (folder / f"{name}.inter").write_text("user_id:token\titem_id:token\ttimestamp:float\n" + "".join(
        f"{user}\t{item}\t{time}\n" for user, item, time in rows), encoding="utf-8")
    return create_dataset(Config(model="GRU4Rec", dataset=name, config_dict={
        "data_path": str(tmp_path), "lean_sequences": True, "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
        "eval_args": {"order": "TO", "split": {"LS": "valid_and_test"}, "group_by": "user", "mode": "full"},
        "normalize_all": False, "state": "ERROR"}))


def test_lean_order_is_recboles_sort_by_sequence_then_time(tmp_path):
    """Events out of order in the file come out as RecBole's two stable sorts order them (ties in
    the file's order); a file already in that order is kept as it is."""
    rows = [("b", "3", 5.0), ("a", "1", 2.0), ("b", "1", 1.0), ("a", "2", 2.0), ("a", "3", 1.0), ("b", "2", 5.0)]
    dataset = _lean_gru4rec_dataset(tmp_path, "order", rows)
    dataset._change_feat_format()  # to tensors, then the lean augmentation (what build starts with)
    flat = dataset.inter_feat.flat
    users = dataset.field2id_token["user_id"][flat.column("user_id", torch.arange(6)).numpy()]
    items = dataset.field2id_token["item_id"][flat.column("item_id", torch.arange(6)).numpy()]
    assert list(zip(users, items)) == [("b", "1"), ("b", "3"), ("b", "2"), ("a", "3"), ("a", "1"), ("a", "2")]


def test_lean_loading_keeps_tokens_as_written(tmp_path):
    """Token columns are strings under pandas 2 and 3 alike: '007' and '7' are two items, '01' and
    '1' two sequences (pandas 3 would parse a numeric-looking category column as integers)."""
    rows = [("01", "007", 1), ("01", "7", 2), ("01", "007", 3), ("1", "7", 4), ("1", "07", 5), ("1", "007", 6)]
    dataset = _lean_gru4rec_dataset(tmp_path, "tokens", rows)
    assert list(dataset.field2id_token["user_id"]) == ["[PAD]", "01", "1"]
    assert list(dataset.field2id_token["item_id"]) == ["[PAD]", "007", "7", "07"]
    assert dataset.inter_feat["item_id"].tolist() == [1, 2, 1, 2, 3, 1]
