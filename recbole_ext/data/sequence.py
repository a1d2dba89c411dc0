"""Whole-sequence training data for RNN models (``train_mode: sequence``).

RecBole's :class:`~recbole.data.dataset.SequentialDataset` trains on one sample per prefix, so an RNN
re-reads each item up to ``MAX_ITEM_LIST_LENGTH`` times per epoch. An RNN is causal: its state after
position k of a sequence is the state the prefix of length k would give. :class:`SequenceDataset`
keeps RecBole's whole pipeline (filters, remapping, augmentation, leave-one-out split) and only
rewrites the *training* split: each user's training prefixes become the user's sequence, cut into
windows of at most ``MAX_ITEM_LIST_LENGTH`` targets, with the next item as target at every position.
Validation and test data stay RecBole's prefix samples.

``train_batch_size`` counts training targets in both modes: a sequence-mode batch holds as many
windows as carry about that many targets.

Windows are tiled from the end of the sequence, so the last window matches the context the
validation sample sees; each window starts from a fresh hidden state (no state is carried between
windows), so a target at offset k of a window sees k + 1 items of context. A sequence of at most
``MAX_ITEM_LIST_LENGTH + 1`` items is one window, and then every target sees exactly the context of
its prefix sample.
"""

from collections import Counter

import numpy as np
import torch
from recbole.data.dataset import SequentialDataset
from recbole.data.interaction import Interaction
from recbole.utils import FeatureSource, FeatureType

from recbole_ext.errors import ConfigError

TRAIN_MODES = ("sequence", "prefix")


def target_list_field(config):
    """Name of the field holding the next item of every input position of a window."""
    return "target_" + config["ITEM_ID_FIELD"] + config["LIST_SUFFIX"]


def train_mode(config):
    mode = config["train_mode"] or "prefix"
    if mode not in TRAIN_MODES:
        raise ConfigError(f"train_mode: {mode!r} is not allowed; use one of {list(TRAIN_MODES)}")
    return mode


class SequenceDataset(SequentialDataset):
    """A :class:`SequentialDataset` whose training split holds whole-sequence windows when
    ``train_mode`` is ``sequence`` (with ``prefix`` it is RecBole's dataset unchanged)."""

    def data_augmentation(self):
        if self.time_field not in self.inter_feat:
            raise ConfigError(
                f"{self.config['model']} orders each sequence by the time field {self.time_field!r}, "
                f"which is not loaded: add it to load_col (now {self.config['load_col']})"
            )
        super().data_augmentation()

    def build(self):
        datasets = super().build()
        if train_mode(self.config) == "sequence":
            split = self.config["eval_args"]["split"]
            # the held-out protocols (recbole_ext.protocols) make their own split, not eval_args'
            held_out_protocol = self.config["eval_protocol"] not in (None, "leave_one_out")
            if "LS" not in split and not held_out_protocol:
                raise ConfigError(
                    f"train_mode: sequence needs eval_args.split LS (leave-one-out), got {split}; "
                    "use train_mode: prefix for other splits"
                )
            train = datasets[0]
            datasets[0] = train.copy(self._sequence_windows(train.inter_feat))
        return datasets

    def list_fields(self):
        """{scalar field: its list field} for every field the augmentation turned into a list."""
        suffix = self.config["LIST_SUFFIX"]
        return {
            field[: -len(suffix)]: field
            for field in self.inter_feat.columns
            if field.endswith(suffix) and field[: -len(suffix)] in self.inter_feat.columns
        }

    def target_item_counts(self):
        """How often each item id is a training target: the support of GRU4Rec's samplers."""
        if self.target_field in self.inter_feat:
            targets = self.inter_feat[self.target_field]
            targets = targets[targets > 0]
        else:
            targets = self.inter_feat[self.iid_field]
        return torch.bincount(targets.flatten(), minlength=self.item_num)

    def train_batch_samples(self, batch_size):
        """Windows per training batch so that a batch holds about ``batch_size`` targets, as a
        prefix batch of ``batch_size`` samples does: ``train_batch_size`` means the same in both
        modes. Prefix samples are one target each."""
        if self.target_field not in self.inter_feat:
            return batch_size
        n_targets = int((self.inter_feat[self.target_field] > 0).sum())
        return max(1, round(batch_size * len(self.inter_feat) / max(n_targets, 1)))

    def counter(self, field):
        """RecBole's per-token counts; for the item field of a window split, counts of its targets
        (RecBole's popularity metrics read this from the training split)."""
        if field == self.iid_field and self.target_field in self.inter_feat:
            targets = self.inter_feat[self.target_field]
            return Counter(targets[targets > 0].numpy())
        return super().counter(field)

    @property
    def target_field(self):
        return target_list_field(self.config)

    def _sequence_windows(self, inter):
        max_len = self.max_item_list_len
        list_fields = self.list_fields()
        uids = inter[self.uid_field].numpy()
        lengths = inter[self.item_list_length_field].numpy()
        starts = np.flatnonzero(np.r_[True, uids[1:] != uids[:-1]]) if len(uids) else np.array([], int)
        ends = np.r_[starts[1:], len(uids)].astype(int)

        # Each user's sequence is its first prefix followed by every training target, in time order.
        # `rows` indexes a flat array: (row, position in list) for list entries, (row, -1) for targets.
        window_user, window_rows, window_cols, window_len = [], [], [], []
        for start, end in zip(starts, ends):
            head = int(lengths[start])
            rows = np.r_[np.full(head, start), np.arange(start, end)]
            cols = np.r_[np.arange(head), np.full(end - start, -1)]
            n_targets = len(rows) - 1
            window_ends = np.arange(n_targets, 0, -max_len)[::-1]
            for last in window_ends:
                first = max(1, last - max_len + 1)
                span = slice(first - 1, last + 1)  # inputs first-1..last-1, targets first..last
                window_user.append(uids[start])
                window_rows.append(rows[span])
                window_cols.append(cols[span])
                window_len.append(last - first + 1)

        n_windows = len(window_len)
        width = max_len + 1
        gather_rows = np.zeros((n_windows, width), dtype=np.int64)
        gather_cols = np.full((n_windows, width), -2, dtype=np.int64)  # -2 marks padding
        for w, (r, c) in enumerate(zip(window_rows, window_cols)):
            gather_rows[w, : len(r)] = r
            gather_cols[w, : len(c)] = c
        is_pad = gather_cols == -2
        is_target_value = gather_cols == -1
        list_cols = np.where(is_pad | is_target_value, 0, gather_cols)

        new = {
            self.uid_field: torch.as_tensor(np.array(window_user, dtype=np.int64)),
            self.item_list_length_field: torch.as_tensor(np.array(window_len, dtype=np.int64)),
        }
        for field, list_field in list_fields.items():
            values = inter[list_field][torch.as_tensor(gather_rows), torch.as_tensor(list_cols)]
            scalar = inter[field][torch.as_tensor(gather_rows)]
            mask = torch.as_tensor(is_target_value)
            while mask.dim() < values.dim():
                mask = mask.unsqueeze(-1)
            values = torch.where(mask, scalar.to(values.dtype), values)
            values = values.masked_fill(_expand(torch.as_tensor(is_pad), values), 0)
            new[list_field] = values[:, :max_len].contiguous()
            if field == self.iid_field:
                new[self.target_field] = values[:, 1:].contiguous()
        # an input position whose target is padding is padding too
        new[self.target_field] = new[self.target_field].masked_fill(
            torch.arange(max_len)[None, :] >= new[self.item_list_length_field][:, None], 0
        )
        for field, list_field in list_fields.items():
            values = new[list_field]
            keep = torch.arange(max_len)[None, :] < new[self.item_list_length_field][:, None]
            new[list_field] = values.masked_fill(~_expand(keep, values), 0)
        self.set_field_property(self.target_field, FeatureType.TOKEN_SEQ, FeatureSource.INTERACTION, max_len)
        return Interaction(new)


# The dataset class each train mode needs; a mode not listed works on RecBole's own dataset.
DATASET_OF_TRAIN_MODE = {"sequence": SequenceDataset}


def count_train_batches_in_targets():
    """Make RecBole's ``TrainDataLoader`` size batches in training targets for a dataset that says
    how many of its samples hold that many (:meth:`SequenceDataset.train_batch_samples`): RecBole
    takes ``train_batch_size`` samples per batch, and a window holds up to ``MAX_ITEM_LIST_LENGTH``."""
    from recbole.data.dataloader.general_dataloader import TrainDataLoader

    recbole_init_batch = TrainDataLoader._init_batch_size_and_step

    def _init_batch_size_and_step(self):
        recbole_init_batch(self)
        samples = getattr(self._dataset, "train_batch_samples", None)
        if samples is not None and self.neg_sample_args["distribution"] == "none":
            self.step = samples(self.config["train_batch_size"])
            self.set_batch_size(self.step)

    TrainDataLoader._init_batch_size_and_step = _init_batch_size_and_step


def _expand(mask, like):
    while mask.dim() < like.dim():
        mask = mask.unsqueeze(-1)
    return mask.expand_as(like)
