"""train_mode: sequence — the same targets as RecBole's prefix samples, read in one pass per window."""

import numpy as np
import pytest
import torch
from recbole.config import Config
from recbole.data import create_dataset, data_preparation
from recbole.data.interaction import Interaction

from recbole_ext.model.rnncce import RNNCCE

SETTINGS = {"embedding_size": 8, "hidden_size": 8, "rnn_type": "GRU", "dropout_prob": 0.0}


def splits(tiny_config, mode, **settings):
    config = Config(
        model="RNNCCE", dataset="ml-tiny", config_dict={**tiny_config, **SETTINGS, "train_mode": mode, **settings}
    )
    return config, data_preparation(config, create_dataset(config))


def per_user_targets(train_dataset):
    """{user: training targets in time order} from either layout of the training split."""
    inter, targets = train_dataset.inter_feat, {}
    if "target_item_id_list" in inter:
        for user, row in zip(inter["user_id"].tolist(), inter["target_item_id_list"]):
            targets.setdefault(user, []).extend(row[row > 0].tolist())
    else:
        for user, item in zip(inter["user_id"].tolist(), inter["item_id"].tolist()):
            targets.setdefault(user, []).append(item)
    return targets


def raw_histories(config):
    """{user: item ids in time order} of the filtered, remapped interactions before any split."""
    raw = create_dataset(config).inter_feat  # a DataFrame until the dataset is built
    users, items = raw["user_id"].to_numpy(), raw["item_id"].to_numpy()
    # RecBole sorts the float32 times it keeps (~64 s apart near 1e9) stably, so ties keep file order
    order = np.lexsort((raw["timestamp"].to_numpy().astype(np.float32), users))
    histories = {}
    for user, item in zip(users[order].tolist(), items[order].tolist()):
        histories.setdefault(user, []).append(item)
    return histories


@pytest.mark.parametrize("max_len", [50, 7])
def test_an_epoch_trains_each_prefix_target_exactly_once(tiny_config, max_len):
    config, (prefix_train, prefix_valid, prefix_test) = splits(tiny_config, "prefix", MAX_ITEM_LIST_LENGTH=max_len)
    histories = raw_histories(config)
    _, (sequence_train, _, _) = splits(tiny_config, "sequence", MAX_ITEM_LIST_LENGTH=max_len)
    sequence_targets = per_user_targets(sequence_train._dataset)
    assert sequence_targets == per_user_targets(prefix_train._dataset)
    # against the raw histories: every item but the first and the two held out, in order, once
    assert sequence_targets == {user: items[1:-2] for user, items in histories.items()}
    assert max(len(items) for items in histories.values()) > 3 * max_len  # several windows per user
    for split, offset in ((prefix_valid, -2), (prefix_test, -1)):
        inter = split._dataset.inter_feat
        assert {u: i for u, i in zip(inter["user_id"].tolist(), inter["item_id"].tolist())} == {
            user: items[offset] for user, items in histories.items()
        }


def test_long_sequences_are_tiled_from_the_end_into_windows_that_restart_context(tiny_config):
    max_len = 7
    _, (train, _, _) = splits(tiny_config, "sequence", MAX_ITEM_LIST_LENGTH=max_len)
    inter = train._dataset.inter_feat
    targets = per_user_targets(train._dataset)
    users = inter["user_id"].tolist()
    for user, n_targets in ((u, len(t)) for u, t in targets.items()):
        rows = [i for i, u in enumerate(users) if u == user]
        lengths = inter["item_length"][rows].tolist()
        assert lengths == [n_targets - max_len * (len(rows) - 1)] + [max_len] * (len(rows) - 1)
    # inside a window, the input at position k is the target of position k-1 ...
    inputs, window_targets, lengths = inter["item_id_list"], inter["target_item_id_list"], inter["item_length"]
    for row in range(len(users)):
        n = lengths[row]
        assert torch.equal(inputs[row, 1:n], window_targets[row, : n - 1])
        assert (inputs[row, n:] == 0).all() and (window_targets[row, n:] == 0).all()
    # ... and a later window starts from the previous window's last target (context restarts there)
    for row in range(1, len(users)):
        if users[row] == users[row - 1]:
            assert inputs[row, 0] == window_targets[row - 1, lengths[row - 1] - 1]


def test_sequence_loss_equals_the_sum_of_prefix_losses(tiny_config):
    # sequences no longer than MAX_ITEM_LIST_LENGTH: every target sees exactly its prefix's context
    short = {"MAX_ITEM_LIST_LENGTH": 200, "user_inter_num_interval": "[5,150]"}
    sequence_config, (sequence_train, _, _) = splits(tiny_config, "sequence", **short)
    prefix_config, (prefix_train, _, _) = splits(tiny_config, "prefix", **short)
    torch.manual_seed(0)
    sequence_model = RNNCCE(sequence_config, sequence_train._dataset).eval()
    prefix_model = RNNCCE(prefix_config, prefix_train._dataset).eval()
    prefix_model.load_state_dict(sequence_model.state_dict())

    def summed(model, data, count):
        with torch.no_grad():
            return sum(model.calculate_loss(batch).double() * count(batch) for batch in data)

    sequence_total = summed(sequence_model, sequence_train, lambda b: (b["target_item_id_list"] > 0).sum())
    prefix_total = summed(prefix_model, prefix_train, lambda b: len(b))
    assert len(sequence_train._dataset.inter_feat) < len(prefix_train._dataset.inter_feat)
    assert sequence_total.item() == pytest.approx(prefix_total.item(), rel=1e-5)  # float32 sums


def test_padding_never_contributes_to_the_loss(tiny_config):
    config, (train, _, _) = splits(tiny_config, "sequence", MAX_ITEM_LIST_LENGTH=20)
    torch.manual_seed(0)
    model = RNNCCE(config, train._dataset).eval()
    batch = next(iter(train))
    padding = torch.arange(20)[None, :] >= batch["item_length"][:, None]
    assert padding.any()
    altered = {key: batch[key].clone() for key in batch.columns}
    for field in ("item_id_list", "target_item_id_list"):
        altered[field][padding] = torch.randint(1, model.n_items, (int(padding.sum()),))
    with torch.no_grad():
        assert model.calculate_loss(Interaction(altered)).item() == pytest.approx(
            model.calculate_loss(batch).item(), abs=1e-6
        )


def test_validation_and_test_data_do_not_depend_on_the_mode(tiny_config):
    _, (_, prefix_valid, prefix_test) = splits(tiny_config, "prefix")
    _, (_, sequence_valid, sequence_test) = splits(tiny_config, "sequence")
    for prefix_split, sequence_split in ((prefix_valid, sequence_valid), (prefix_test, sequence_test)):
        for field in ("user_id", "item_id", "item_id_list", "item_length"):
            assert torch.equal(prefix_split._dataset.inter_feat[field], sequence_split._dataset.inter_feat[field])


def test_train_batch_size_counts_targets_in_both_modes(tiny_config):
    _, (train, _, _) = splits(tiny_config, "sequence", MAX_ITEM_LIST_LENGTH=20, train_batch_size=400)
    windows = train._dataset.inter_feat
    per_window = (windows["target_item_id_list"] > 0).sum().item() / len(windows)
    batch = next(iter(train))
    assert len(batch) == round(400 / per_window)
    assert abs((batch["target_item_id_list"] > 0).sum().item() - 400) < 3 * 20  # within a few windows
