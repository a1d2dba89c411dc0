"""What the evaluation protocols change in RecBole's flow, as plain functions that the hooks call
(:mod:`recbole_ext.hooks.dataset`, :mod:`recbole_ext.hooks.dataloader`):

* :func:`build_splits`: under ``user_split`` / ``session_split`` the splits of
  :mod:`recbole_ext.protocols.split` replace RecBole's leave-one-out (with ``final_train_on_valid``
  the training split carries the final fit's, :mod:`recbole_ext.protocols.final_fit`);
  :func:`refuse_non_sequential` refuses the protocols for non-sequential models.
* :func:`eval_batch_samples`: evaluation batches of at most ``eval_batch_size`` cases and
  ``eval_memory_mb`` of (case, item) tensors.
* :func:`collate_held_out`: a split with ``held_out`` cases yields each
  row's goal set as its positives (RecBole: the row's one target) and ranks ``exclude_seen`` /
  never-trained items last; a one-pass split yields whole windows and one positive per real position.
* A window batch reaches RecBole's ``Trainer._full_sort_batch_eval`` as it is: the plugin RNN's
  ``full_sort_predict`` scores every real position of it in one pass (one row per target, as with
  prefix samples), and the positives and ranked-last items above are per position.

Leave-one-out data never carries ``held_out``, so RecBole's own code runs unchanged for it.
"""

import numpy as np
import torch
from recbole_ext.data.sequence import target_list_field
from recbole_ext.errors import ConfigError
from recbole_ext.protocols import final_fit, split
from recbole_ext.protocols.settings import SESSION_SPLIT


def refuse_non_sequential(dataset, settings):
    if settings.held_out:
        raise ConfigError(
            f"eval_protocol: {settings.protocol!r} needs a sequential model; "
            f"{dataset.config['model']} is not one: use eval_protocol: leave_one_out"
        )


def build_splits(dataset, settings):
    """The three splits of a sequential ``dataset`` under a held-out protocol, as RecBole's
    ``build`` returns them (RecBole's augmentation runs inside, on the events the protocol keeps)."""
    mode = dataset.config["eval_args"]["mode"]
    modes = mode.values() if isinstance(mode, dict) else [mode]
    if any(m != "full" for m in modes):
        raise ConfigError(
            f"eval_protocol: {settings.protocol} ranks all items; eval_args.mode {mode} is not "
            "allowed: use mode: full"
        )
    split.check_time_field(dataset, settings)
    if settings.final_train_on_valid and not dataset.config["single_spec"]:
        raise ConfigError("final_train_on_valid: True trains a second model in one process; it does not "
                          "run distributed (nproc > 1): use one process, or final_train_on_valid: False")
    unranked = final_events = None
    if settings.protocol == SESSION_SPLIT:
        roles, keep, event_roles, unranked = split.session_roles_and_filter(dataset, settings)
        if settings.final_train_on_valid:
            final_events = split.final_training_events(dataset, event_roles)
        dataset.inter_feat = dataset.inter_feat[keep].reset_index(drop=True)
    dataset._change_feat_format()  # RecBole's augmentation: one sample per prefix
    if settings.protocol != SESSION_SPLIT:
        roles = split.user_roles(dataset, settings)
    splits = split.build_held_out(dataset, settings, roles, unranked)
    if final_events is not None:
        final_fit.attach(splits[0], split.final_training_split(dataset, final_events))
    return splits


# Bytes per (case, item) cell a full-sort batch holds at once: the float32 scores, RecBole's int32
# match matrix (Collector.eval_batch_collect) and a bool mask of the positives (the SPS hits)
BYTES_PER_SCORE_CELL = 4 + 4 + 1


def eval_batch_samples(loader):
    """Samples per full-sort evaluation batch of a sequential model: ``eval_batch_size`` cases, or
    fewer where their (case, item) tensors (:data:`BYTES_PER_SCORE_CELL` bytes a cell) would pass
    ``eval_memory_mb``; a one-pass split's windows hold several cases each. None for a general
    model (RecBole batches its users)."""
    if not loader.is_sequential:
        return None
    cases = loader.config["eval_batch_size"]
    budget = loader.config["eval_memory_mb"]
    if budget:
        cases = min(cases, max(1, int(budget * 2**20) // (BYTES_PER_SCORE_CELL * loader._dataset.item_num)))
    held_out = getattr(loader._dataset, "held_out", None)
    if held_out is not None and held_out.one_pass:
        return loader._dataset.train_batch_samples(cases)
    return cases


def collate_held_out(loader, index, held_out):
    """A full-sort evaluation batch of a held-out split: (interaction, history, positive rows,
    positive items), the form RecBole's ``FullSortEvalDataLoader.collate_fn`` returns."""
    index = np.array(index)
    interaction = loader.transform(loader._dataset, loader._dataset[index])
    if held_out.one_pass:
        targets = interaction[target_list_field(loader.config)]
        positions = torch.arange(targets.size(1))
        real = positions[None, :] < interaction[loader._dataset.item_list_length_field][:, None]
        positive_i = targets[real]
        positive_u = torch.arange(len(positive_i))
    elif held_out.goals is not None:
        positive_u, positive_i = _rows_and_items(held_out.goals, held_out.goal_offsets, index)
    else:
        positive_u, positive_i = torch.arange(len(index)), interaction[loader.iid_field]
    n_rows = len(positive_i) if held_out.one_pass else len(index)
    history = _history(held_out, index, n_rows)
    return interaction, history, positive_u, positive_i


def _rows_and_items(flat, offsets, index):
    lengths = offsets[index + 1] - offsets[index]
    rows = np.repeat(np.arange(len(index)), lengths)
    items = np.concatenate([flat[offsets[i] : offsets[i + 1]] for i in index])
    return torch.as_tensor(rows, dtype=torch.int64), torch.as_tensor(items, dtype=torch.int64)


def _history(held_out, index, n_rows):
    """(rows, items) ranked last: ``exclude_seen`` items per row and never-trained items in all rows."""
    rows, items = [], []
    if held_out.seen is not None:
        seen_rows, seen_items = _rows_and_items(held_out.seen, held_out.seen_offsets, index)
        rows.append(seen_rows)
        items.append(seen_items)
    if held_out.unranked is not None and len(held_out.unranked):
        rows.append(torch.arange(n_rows).repeat_interleave(len(held_out.unranked)))
        items.append(held_out.unranked.repeat(n_rows))
    if not rows:
        return None
    return torch.cat(rows), torch.cat(items)
