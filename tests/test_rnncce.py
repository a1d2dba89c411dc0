"""RNNCCE: weight tying, every RNN type, projection, training-only noise and config errors."""

from pathlib import Path

import pytest
import torch
from recbole.config import Config
from recbole.data import create_dataset, data_preparation
from recbole.data.interaction import Interaction

import recbole_ext
from recbole_ext.model.rnncce import RNNCCE, drop_items, shuffle_items
from tests.conftest import quick_test

# tiny sizes, short lists and ~3 batches per epoch keep each run_recbole call to a few seconds
SMALL = {"embedding_size": 8, "hidden_size": 8, "MAX_ITEM_LIST_LENGTH": 20, "train_batch_size": 2048}


def build(tiny_config, **settings):
    config = Config(model="RNNCCE", dataset="ml-tiny", config_dict={**tiny_config, **SMALL, **settings})
    train_data, valid_data, _ = data_preparation(config, create_dataset(config))
    return RNNCCE(config, train_data._dataset), train_data, valid_data


def test_tying_shares_one_parameter(tiny_config):
    tied, train_data, _ = build(tiny_config, weight_tying=True)
    untied, _, _ = build(tiny_config, weight_tying=False)
    assert tied.output_weight is tied.item_embedding.weight
    assert tied.output_weight.data_ptr() == tied.item_embedding.weight.data_ptr()
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(untied) - count(tied) == tied.n_items * 8

    before = tied.item_embedding.weight.detach().clone()
    optimizer = torch.optim.SGD(tied.parameters(), lr=0.1)
    hidden = torch.randn(4, 8)
    (hidden @ tied.output_weight.t()).logsumexp(-1).sum().backward()  # a loss on the output alone
    optimizer.step()
    assert not torch.equal(before, tied.item_embedding.weight)


@pytest.mark.parametrize("rnn_type", ["LSTM", "GRU", "RNN"])
@pytest.mark.parametrize("weight_tying", [True, False])
def test_every_rnn_type_trains_and_evaluates(tiny_config, rnn_type, weight_tying):
    result = quick_test({**tiny_config, **SMALL}, model="RNNCCE", rnn_type=rnn_type, weight_tying=weight_tying)
    assert 0.0 <= result["test_result"]["ndcg@10"] <= result["test_result"]["hit@10"] <= 1.0


def test_projection_when_hidden_differs_from_embedding(tiny_config):
    model, train_data, _ = build(tiny_config, hidden_size=12, weight_tying=True)
    assert model.projection.in_features == 12 and model.projection.out_features == 8
    batch = next(iter(train_data))
    assert model(batch).shape[-1] == 8
    result = quick_test({**tiny_config, **SMALL}, model="RNNCCE", hidden_size=12)
    assert 0.0 <= result["test_result"]["recall@10"] <= 1.0


def test_noise_is_off_at_evaluation_and_on_in_training(tiny_config):
    noise = {"item_drop_prob": 1.0, "shuffle_prob": 1.0, "train_mode": "prefix", "dropout_prob": 0.0}
    noisy, _, valid_data = build(tiny_config, **noise)
    clean, _, _ = build(tiny_config, **{**noise, "item_drop_prob": 0.0, "shuffle_prob": 0.0})
    clean.load_state_dict(noisy.state_dict())
    batch = next(iter(valid_data))[0]
    with torch.no_grad():
        assert torch.equal(noisy.eval().full_sort_predict(batch), clean.eval().full_sort_predict(batch))
        # in training (shuffle off here), dropping every item but the first leaves the state after it
        noisy.train()
        noisy.shuffle_prob = 0.0
        fields = {key: batch[key] for key in batch.columns}
        first_only = Interaction({**fields, "item_length": torch.ones_like(batch["item_length"])})
        assert torch.allclose(noisy.last_hidden(batch), clean.last_hidden(first_only), atol=1e-6)
        assert not torch.allclose(noisy.last_hidden(batch), clean.last_hidden(batch), atol=1e-3)


def test_item_drop_removes_items_and_keeps_every_target_readable():
    torch.manual_seed(0)
    items = torch.tensor([[5, 6, 7, 8, 9, 0, 0], [3, 4, 0, 0, 0, 0, 0]])
    lengths = torch.tensor([5, 2])
    compacted, read_at = drop_items(items, lengths, prob=0.5)
    for row in range(2):
        kept = compacted[row][compacted[row] > 0].tolist()
        original = items[row, : lengths[row]].tolist()
        assert kept[0] == original[0]  # the first item is always kept
        assert kept == [item for item in original if item in kept]  # order kept, items only removed
        for position in range(lengths[row]):
            # the state read for a target is the last kept item at or before its position
            assert compacted[row, read_at[row, position]] in original[: position + 1]
    assert (compacted[0] > 0).sum() < 5  # this seed drops at least one of five


def test_item_drop_in_sequence_mode_keeps_every_target(tiny_config):
    model, train_data, _ = build(tiny_config, item_drop_prob=1.0, dropout_prob=0.0)
    batch = next(iter(train_data))
    model.train()
    with torch.no_grad():
        hidden = model(batch)
        model.eval()
        after_first_item = model(batch)[:, :1]
    real = torch.arange(hidden.size(1))[None, :] < batch["item_length"][:, None]
    # only the first item survives, so every target of a window reads the state after it
    assert torch.allclose(hidden[real], after_first_item.expand_as(hidden)[real], atol=1e-6)
    assert hidden.shape[:2] == batch["target_item_id_list"].shape


def test_shuffle_only_permutes_real_items():
    torch.manual_seed(1)
    items = torch.tensor([[1, 2, 3, 4, 5, 6, 0, 0]] * 20)
    lengths = torch.full((20,), 6)
    shuffled = shuffle_items(items, lengths, prob=1.0, std=5)
    for row in shuffled:
        assert sorted(row[:6].tolist()) == [1, 2, 3, 4, 5, 6] and row[6:].tolist() == [0, 0]
    assert any(row[:6].tolist() != [1, 2, 3, 4, 5, 6] for row in shuffled)


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("rnn_type", "FOO", r"rnn_type: 'FOO' is not allowed; use one of \['LSTM', 'GRU', 'RNN'\]"),
        ("dropout_prob", 1.5, r"dropout_prob: 1.5 is not allowed; use a number in \[0.0, 1.0\)"),
        ("num_layers", 0, r"num_layers: 0 is not allowed; use an integer >= 1"),
        ("embedding_size", -4, r"embedding_size: -4 is not allowed; use an integer >= 1"),
        ("hidden_size", -1, r"hidden_size: -1 is not allowed; use an integer >= 1"),
        ("train_mode", "batch", r"train_mode: 'batch' is not allowed; use one of \['sequence', 'prefix', 'session'\]"),
        ("item_drop_prob", 1.5, r"item_drop_prob: 1.5 is not allowed; use a number in \[0.0, 1.0\]"),
        ("shuffle_prob", 0.5, r"shuffle_prob: 0.5 needs train_mode: prefix.*set shuffle_prob: 0 or train_mode: prefix"),
    ],
)
def test_bad_config_is_one_clear_error_before_training(tiny_config, key, value, message):
    with pytest.raises(recbole_ext.ConfigError, match=message):
        quick_test({**tiny_config, **SMALL}, model="RNNCCE", **{key: value})
    assert not Path(tiny_config["checkpoint_dir"]).exists()  # refused before the trainer was built


@pytest.mark.parametrize("model", ["RNNCCE", "DwellGRU4Rec"])
def test_learning_rate_and_batch_size_default_to_the_train_mode_s_measured_values(tiny_config, model):
    tiny = {k: v for k, v in tiny_config.items() if k != "train_batch_size"}

    def resolved(**settings):
        config = Config(model=model, dataset="ml-tiny", config_dict={**tiny, **settings})
        return config["learning_rate"], config["train_batch_size"]

    assert [resolved(train_mode=mode) for mode in ("sequence", "session", "prefix")] == \
        [(0.01, 2048), (0.001, 256), (0.01, 2048)]
    assert resolved(train_mode="session", learning_rate=0.05, train_batch_size=64) == (0.05, 64)  # as given
    with pytest.raises(recbole_ext.ConfigError, match=r"^learning_rate: None is not allowed without a value for train_mode "
                                          r"'sequence' in train_mode_learning_rates \(\{'session': 0.1\}\); set "
                                          r"learning_rate to a number > 0$"):
        resolved(train_mode_learning_rates={"session": 0.1})
    with pytest.raises(recbole_ext.ConfigError, match=r"^train_mode_learning_rates.session: 0 is not allowed; use a number > 0$"):
        resolved(train_mode="session", train_mode_learning_rates={"session": 0})
    with pytest.raises(recbole_ext.ConfigError, match=r"^train_batch_size: None is not allowed without a value for "
                                          r"train_mode 'session' in train_mode_batch_sizes \(\{'sequence': 8\}\); set "
                                          r"train_batch_size to an integer >= 1$"):
        resolved(train_mode="session", train_mode_batch_sizes={"sequence": 8})
    with pytest.raises(recbole_ext.ConfigError, match=r"^train_mode_batch_sizes.session: 0.5 is not allowed; use an integer >= 1$"):
        resolved(train_mode="session", train_mode_batch_sizes={"session": 0.5})


