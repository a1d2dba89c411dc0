"""benchmarks.raw_sequence_loop: the raw loop trains on RNNCCE's own training windows with RNNCCE's math."""

import torch
from recbole.config import Config
from recbole.data import create_dataset, data_preparation
from recbole.data.interaction import Interaction

from benchmarks.raw_sequence_loop import (
    RawRNNNextItem,
    real_targets,
    train_epoch,
    training_windows,
)
from recbole_ext.model.rnncce import RNNCCE

SETTINGS = {"rnn_type": "GRU", "embedding_size": 8, "hidden_size": 12, "dropout_prob": 0.0, "train_batch_size": 300}


def prepared(tiny_config, mode):
    config = Config(model="RNNCCE", dataset="ml-tiny", config_dict={**tiny_config, **SETTINGS, "train_mode": mode})
    return config, data_preparation(config, create_dataset(config))[0]


def test_the_raw_loop_sees_exactly_the_training_targets_and_batches_of_sequence_mode(tiny_config):
    _, train_data = prepared(tiny_config, "sequence")
    windows, windows_per_batch = training_windows(train_data)
    _, prefix_train = prepared(tiny_config, "prefix")
    # the targets GRU4Rec's prefix samples train on, each once
    assert sorted(real_targets(windows).tolist()) == sorted(prefix_train._dataset.inter_feat["item_id"].tolist())
    first_batch = next(iter(train_data))
    assert windows_per_batch == len(first_batch) > 1
    assert set(map(tuple, first_batch["item_id_list"].tolist())) <= set(map(tuple, windows["items"].tolist()))


def test_the_raw_network_computes_rnncce_loss_and_gradients(tiny_config):
    config, train_data = prepared(tiny_config, "sequence")
    windows, windows_per_batch = training_windows(train_data)
    model = RNNCCE(config, train_data._dataset)
    raw = RawRNNNextItem.like(config, model.n_items)
    raw.load_state_dict(model.state_dict())  # the same names and shapes: nothing missing, nothing extra
    batch = slice(0, windows_per_batch)
    interaction = Interaction({
        "item_id_list": windows["items"][batch], "item_length": windows["lengths"][batch],
        "target_item_id_list": windows["targets"][batch],
    })
    ours = model.calculate_loss(interaction)
    theirs = raw.loss(windows["items"][batch], windows["lengths"][batch], windows["targets"][batch])
    assert abs(ours.item() - theirs.item()) < 1e-6 and ours.item() > 1.0
    ours.backward()
    theirs.backward()
    for name, parameter in raw.named_parameters():
        assert torch.allclose(parameter.grad, dict(model.named_parameters())[name].grad, atol=1e-6), name

    generator = torch.Generator().manual_seed(0)
    before = train_epoch(raw, torch.optim.Adam(raw.parameters(), lr=0.01), windows, windows_per_batch, generator)
    after = train_epoch(raw, torch.optim.Adam(raw.parameters(), lr=0.01), windows, windows_per_batch, generator)
    assert after < before  # the loop learns: the second epoch's summed loss is lower
