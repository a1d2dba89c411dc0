"""RecBole hooks of the evaluation protocols: the split, the evaluation batches and their scores.

* ``SequentialDataset.build``: under ``user_split`` / ``session_split`` the splits of
  :mod:`recbole_ext.protocols.split` replace RecBole's leave-one-out (``Dataset.build`` refuses the
  protocols for non-sequential models).
* ``FullSortEvalDataLoader``: a split with ``held_out`` cases yields each row's goal set as its
  positives (RecBole: the row's one target) and ranks ``exclude_seen`` / never-trained items last;
  a one-pass split yields whole windows and one positive per real position.
* ``Trainer._full_sort_batch_eval``: a window batch is scored by the model's
  ``full_sort_predict_sequence`` (every position of a session in one pass); the collector then sees
  one row per target, as with prefix samples.

Leave-one-out data never carries ``held_out``, so RecBole's own code runs unchanged for it.
"""

import numpy as np
import torch
from recbole.data.dataloader.general_dataloader import FullSortEvalDataLoader
from recbole.data.dataset import Dataset, SequentialDataset
from recbole.data.interaction import Interaction
from recbole.trainer.trainer import Trainer

from recbole_ext.data.sequence import target_list_field
from recbole_ext.errors import ConfigError
from recbole_ext.protocols import split
from recbole_ext.protocols.settings import SESSION_SPLIT, protocol_name, read_settings

_installed = False


def install():
    """Install the hooks once; later calls do nothing."""
    global _installed
    if _installed:
        return
    _dataset_build()
    _eval_batches()
    _one_pass_scores()
    _installed = True


def _dataset_build():
    recbole_build = Dataset.build
    recbole_sequential_build = SequentialDataset.build

    def build(self):
        if protocol_name(self.config) != "leave_one_out" and not isinstance(self, SequentialDataset):
            raise ConfigError(
                f"eval_protocol: {self.config['eval_protocol']!r} needs a sequential model; "
                f"{self.config['model']} is not one: use eval_protocol: leave_one_out"
            )
        return recbole_build(self)

    def sequential_build(self):
        settings = read_settings(self.config)
        if not settings.held_out:
            return recbole_sequential_build(self)
        mode = self.config["eval_args"]["mode"]
        modes = mode.values() if isinstance(mode, dict) else [mode]
        if any(m != "full" for m in modes):
            raise ConfigError(
                f"eval_protocol: {settings.protocol} ranks all items; eval_args.mode {mode} is not "
                "allowed: use mode: full"
            )
        split.check_time_field(self, settings)
        unranked = None
        if settings.protocol == SESSION_SPLIT:
            roles, keep, unranked = split.session_roles_and_filter(self, settings)
            self.inter_feat = self.inter_feat[keep].reset_index(drop=True)
        self._change_feat_format()  # RecBole's augmentation: one sample per prefix
        if settings.protocol != SESSION_SPLIT:
            roles = split.user_roles(self, settings)
        return split.build_held_out(self, settings, roles, unranked)

    Dataset.build = build
    SequentialDataset.build = sequential_build


def _eval_batches():
    recbole_init_batch = FullSortEvalDataLoader._init_batch_size_and_step
    recbole_collate = FullSortEvalDataLoader.collate_fn

    def _init_batch_size_and_step(self):
        recbole_init_batch(self)
        held_out = getattr(self._dataset, "held_out", None)
        if held_out is not None and held_out.one_pass:
            # eval_batch_size counts cases: a window holds one case per real position
            self.step = self._dataset.train_batch_samples(self.config["eval_batch_size"])
            self.set_batch_size(self.step)

    def collate_fn(self, index):
        held_out = getattr(self._dataset, "held_out", None)
        if held_out is None or not self.is_sequential:
            return recbole_collate(self, index)
        index = np.array(index)
        interaction = self.transform(self._dataset, self._dataset[index])
        if held_out.one_pass:
            targets = interaction[target_list_field(self.config)]
            positions = torch.arange(targets.size(1))
            real = positions[None, :] < interaction[self._dataset.item_list_length_field][:, None]
            positive_i = targets[real]
            positive_u = torch.arange(len(positive_i))
        elif held_out.goals is not None:
            positive_u, positive_i = _rows_and_items(held_out.goals, held_out.goal_offsets, index)
        else:
            positive_u, positive_i = torch.arange(len(index)), interaction[self.iid_field]
        n_rows = len(positive_i) if held_out.one_pass else len(index)
        history = _history(held_out, index, n_rows)
        return interaction, history, positive_u, positive_i

    FullSortEvalDataLoader._init_batch_size_and_step = _init_batch_size_and_step
    FullSortEvalDataLoader.collate_fn = collate_fn


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


def _one_pass_scores():
    recbole_full_sort_batch_eval = Trainer._full_sort_batch_eval

    def _full_sort_batch_eval(self, batched_data):
        interaction, history_index, positive_u, positive_i = batched_data
        if target_list_field(self.config) not in interaction:
            return recbole_full_sort_batch_eval(self, batched_data)
        scores = self.model.full_sort_predict_sequence(interaction.to(self.device))
        scores[:, 0] = -np.inf
        if history_index is not None:
            scores[history_index] = -np.inf
        # the collector reads each row's next item from the interaction (SPS)
        targets = Interaction({self.config["ITEM_ID_FIELD"]: positive_i})
        return targets, scores, positive_u, positive_i

    Trainer._full_sort_batch_eval = _full_sort_batch_eval
