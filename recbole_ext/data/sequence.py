"""Whole-sequence training data for RNN models (``train_mode: sequence``).

RecBole's :class:`~recbole.data.dataset.SequentialDataset` trains on one sample per prefix, so an RNN
re-reads each item up to ``MAX_ITEM_LIST_LENGTH`` times per epoch. An RNN is causal: its state after
position k of a sequence is the state the prefix of length k would give. :class:`SequenceDataset`
keeps RecBole's whole pipeline (filters, remapping, augmentation, leave-one-out split) and only
rewrites the *training* split: each user's training prefixes become the user's sequence, cut into
windows of at most ``MAX_ITEM_LIST_LENGTH`` targets, with the next item as target at every position.
Validation and test data stay RecBole's prefix samples under leave-one-out; under the held-out
protocols a held-out session is one window of its own length and a held-out user's case lists its
whole input (:meth:`SequenceDataset.held_out_runs`, :mod:`recbole_ext.protocols.split`).

``train_mode: session`` (GRU4Rec's session-parallel mini-batches) rewrites the training split into
step tensors instead: see :meth:`SequenceDataset._session_steps`.

``train_batch_size`` counts training targets in both modes: a sequence-mode batch holds as many
windows as carry about that many targets.

Windows are tiled from the end of the sequence, so the last window matches the context the
validation sample sees; each window starts from a fresh hidden state (no state is carried between
windows), so a target at offset k of a window sees k + 1 items of context. A sequence of at most
``MAX_ITEM_LIST_LENGTH + 1`` items is one window, and then every target sees exactly the context of
its prefix sample.
"""

import heapq
from collections import Counter

import numpy as np
import torch
from recbole.data.dataset import SequentialDataset
from recbole.data.interaction import Interaction
from recbole.utils import FeatureSource, FeatureType

from recbole_ext import keys, settings
from recbole_ext.data.lean import LeanSamples, LeanWindows
from recbole_ext.errors import ConfigError
from recbole_ext.protocols import final_fit

# train_mode: session — fields of the training split besides the item (and time) list fields
SESSION_RESET_FIELD = "session_reset"  # [blocks, steps, rows] True where a row starts a new sequence
SESSION_BLOCK_FIELD = "session_block"  # [blocks] position of the block in the epoch


def target_list_field(config):
    """Name of the field holding the next item of every input position of a window."""
    return "target_" + config["ITEM_ID_FIELD"] + config["LIST_SUFFIX"]


class SequenceDataset(SequentialDataset):
    """A :class:`SequentialDataset` on the lean data path (:mod:`recbole_ext.data.lean`: its samples
    are rows of the flat interactions) whose training split holds whole-sequence windows when
    ``train_mode`` is ``sequence``, session-parallel step blocks when it is ``session`` (with
    ``prefix``, RecBole's samples)."""

    always_lean = True  # its windows and steps are cut from the flat sequences

    def build(self):
        datasets = super().build()
        run = settings.of(self.config)
        if run.whole_sequences:
            split = self.config["eval_args"]["split"]
            # the held-out protocols (recbole_ext.protocols) make their own split, not eval_args'
            if "LS" not in split and not run.held_out:
                raise ConfigError(
                    f"train_mode: {run.train_mode} needs eval_args.split LS (leave-one-out), got {split}; "
                    "use train_mode: prefix for other splits"
                )
            train = datasets[0]
            steps = self._session_steps if run.train_mode == "session" else self._sequence_windows
            datasets[0] = train.copy(steps(train.inter_feat))
            final = final_fit.final_split(train)  # final_train_on_valid's split: cut the same way
            if final is not None:
                final_fit.attach(datasets[0], final.copy(steps(final.inter_feat)))
        return datasets

    def list_fields(self, samples):
        """{scalar field: its list field} for every field the augmentation turns into a list."""
        suffix = self.config["LIST_SUFFIX"]
        return {field: field + suffix for field in samples.flat.fields if field != self.uid_field}

    def target_item_counts(self):
        """How often each item id is a training target: the support of GRU4Rec's samplers."""
        return torch.bincount(self._targets().flatten(), minlength=self.item_num)

    def train_batch_samples(self, batch_size):
        """Windows per training batch so that a batch holds about ``batch_size`` targets, as a
        prefix batch of ``batch_size`` samples does: ``train_batch_size`` means the same in both
        modes. Prefix samples are one target each."""
        if SESSION_BLOCK_FIELD in self.inter_feat:
            return 1  # a block already holds train_batch_size rows
        if self.target_field not in self.inter_feat:
            return batch_size
        return max(1, round(batch_size * len(self.inter_feat) / max(self.n_training_targets(), 1)))

    def counter(self, field):
        """RecBole's per-token counts; for the item field of a window or step split, counts of its
        targets. (The popularity metrics read the counts of every item of the training sequences,
        kept on the training split: :mod:`recbole_ext.data.popularity`.)"""
        if field == self.iid_field and self.target_field in self.inter_feat:
            return Counter(self._targets().numpy())
        return super().counter(field)

    @property
    def target_field(self):
        return target_list_field(self.config)

    def _sequence_windows(self, samples):
        """The samples' sequences cut into windows of at most ``MAX_ITEM_LIST_LENGTH`` targets, tiled
        from the end, each window's inputs the events before its targets (its context restarts);
        lean: each window is its first target's row and its length (:class:`~recbole_ext.data.lean.LeanWindows`)."""
        max_len = self.max_item_list_len
        first, last = target_runs(samples)
        n_targets = last - first + 1
        per_run = -(-n_targets // max_len)
        run_of_window = np.repeat(np.arange(len(first)), per_run)
        # windows of a run, counted from its last (0) back to its first
        from_end = np.repeat(np.cumsum(per_run), per_run) - np.arange(per_run.sum()) - 1
        window_last = last[run_of_window] - from_end * max_len
        window_first = np.maximum(first[run_of_window], window_last - max_len + 1)
        self.set_field_property(self.target_field, FeatureType.TOKEN_SEQ, FeatureSource.INTERACTION, max_len)
        return LeanWindows(samples.flat, torch.as_tensor(window_first, dtype=torch.int64),
                           torch.as_tensor(window_last - window_first + 1, dtype=torch.int64), max_len,
                           self.item_list_length_field, self.config["LIST_SUFFIX"], self.iid_field, self.target_field)

    def held_out_runs(self, samples):
        """Each run of the samples' targets (a held-out session) as one window of its own length, its
        inputs every event before each target: scored in one pass, the hidden state carried through
        the whole session however long (:class:`~recbole_ext.data.lean.LeanWindows` padded per batch)."""
        first, last = target_runs(samples)
        self.set_field_property(self.target_field, FeatureType.TOKEN_SEQ, FeatureSource.INTERACTION,
                                self.max_item_list_len)
        return LeanWindows(samples.flat, torch.as_tensor(first, dtype=torch.int64),
                           torch.as_tensor(last - first + 1, dtype=torch.int64), None,
                           self.item_list_length_field, self.config["LIST_SUFFIX"], self.iid_field, self.target_field)

    def n_training_targets(self):
        """Training targets of this split: one per sample, or every target of its windows or steps."""
        inter = self.inter_feat
        if isinstance(inter, LeanWindows):
            return inter.n_targets()
        if self.target_field in inter:
            return int((inter[self.target_field] > 0).sum())
        return len(inter)

    def _targets(self):
        """Every training target's item id (windows, steps or samples)."""
        inter = self.inter_feat
        if isinstance(inter, LeanWindows):
            return inter.targets()
        if self.target_field in inter:
            targets = inter[self.target_field]
            return targets[targets > 0]
        return inter[self.iid_field]

    # ------------------------------------------------------------ train_mode: session
    def _session_steps(self, samples):
        """GRU4Rec's session-parallel mini-batches, built once.

        Each run of the samples' targets in one sequence (a user's training targets) is one session,
        read from the event before its first target. Sessions are taken in the official code's order
        (``session_order='time'``: by the time of their first event, ties by user id).
        ``train_batch_size`` rows each follow one session, one event per step; when a row's session
        ends, the next session in that order takes the row (free rows in row order, as the official
        iterator does), and that step is marked in :data:`SESSION_RESET_FIELD`. Unlike the official
        iterator, the epoch ends only when every session is done (rows that find no session left
        idle with item 0 and target 0), so every training target is used exactly once.

        The steps are cut into blocks of ``session_steps`` consecutive steps; one block is one
        training sample (one batch), ``[blocks, session_steps, rows]`` per field: the input item, the
        target, the input item's time and the reset flag. A step holds no target's time.
        """
        rows = keys.integer(self.config, "train_batch_size", 1)
        steps_per_block = keys.integer(self.config, "session_steps", 1)
        suffix = self.config["LIST_SUFFIX"]
        item_list, time_list = self.iid_field + suffix, self.time_field + suffix
        flat = samples.flat
        first, last = target_runs(samples)
        n_inputs = last - first + 1  # a session of n events has n - 1 inputs
        session_start = first - 1
        start_times = flat.column(self.time_field, torch.as_tensor(session_start, dtype=torch.int64)).numpy()
        order = np.argsort(start_times, kind="stable")

        # the row that frees up first takes the next session; ties go to the lower row
        lengths = n_inputs[order]
        free = [(0, row) for row in range(rows)]
        rows_taken = []  # the row of each session in order (one heapreplace each: 8M sessions on RSC15)
        for length in lengths.tolist():
            step, row = free[0]
            rows_taken.append(row)
            heapq.heapreplace(free, (step + length, row))
        n_steps = max(step for step, _ in free)
        # a session starts when its row's earlier sessions are done: the sum of their lengths
        row_in_order = np.array(rows_taken, dtype=np.int64)
        by_row = np.argsort(row_in_order, kind="stable")
        before = np.cumsum(lengths[by_row]) - lengths[by_row]
        row_starts = np.r_[True, row_in_order[by_row][1:] != row_in_order[by_row][:-1]]
        step_by_row = before - np.maximum.accumulate(np.where(row_starts, before, 0))
        session_row = np.empty(len(first), dtype=np.int64)
        session_step = np.empty(len(first), dtype=np.int64)
        session_row[order] = row_in_order
        session_step[order[by_row]] = step_by_row
        n_blocks = max(1, -(-n_steps // steps_per_block))
        shape = (n_blocks * steps_per_block, rows)
        # every input event: its step and row, and its flat row
        within = np.arange(n_inputs.sum()) - np.repeat(np.cumsum(n_inputs) - n_inputs, n_inputs)
        at_step = np.repeat(session_step, n_inputs) + within
        at_row = np.repeat(session_row, n_inputs)
        input_rows = torch.as_tensor(np.repeat(session_start, n_inputs) + within, dtype=torch.int64)
        items = flat.column(self.iid_field, input_rows)
        times = flat.column(self.time_field, input_rows)
        step_items = torch.zeros(shape, dtype=items.dtype)
        step_targets = torch.zeros(shape, dtype=items.dtype)
        step_times = torch.zeros(shape, dtype=times.dtype)
        reset = torch.ones(shape, dtype=torch.bool)  # idle rows keep a fresh state
        where = (torch.as_tensor(at_step), torch.as_tensor(at_row))
        step_items[where] = items
        step_targets[where] = flat.column(self.iid_field, input_rows + 1)
        step_times[where] = times
        reset[where] = torch.as_tensor(within == 0)
        block_shape = (n_blocks, steps_per_block, rows)
        self.set_field_property(self.target_field, FeatureType.TOKEN_SEQ, FeatureSource.INTERACTION, steps_per_block)
        return Interaction(
            {
                item_list: step_items.reshape(block_shape),
                self.target_field: step_targets.reshape(block_shape),
                time_list: step_times.reshape(block_shape),
                SESSION_RESET_FIELD: reset.reshape(block_shape),
                SESSION_BLOCK_FIELD: torch.arange(n_blocks),
            }
        )


def target_runs(samples):
    """First and last flat row of each run of consecutive target rows (a sequence's samples in a
    split: its training targets, or a held-out session's), in the order the runs appear."""
    rows = samples.target_rows().numpy()
    if len(rows) == 0:
        return np.array([], dtype=np.int64), np.array([], dtype=np.int64)
    breaks = np.flatnonzero(rows[1:] != rows[:-1] + 1) + 1
    starts = np.r_[0, breaks]
    ends = np.r_[breaks, len(rows)] - 1
    return rows[starts].astype(np.int64), rows[ends].astype(np.int64)


def user_spans(uids):
    """Start and end row of each user's rows (rows sorted by user)."""
    starts = np.flatnonzero(np.r_[True, uids[1:] != uids[:-1]]) if len(uids) else np.array([], int)
    return starts, np.r_[starts[1:], len(uids)].astype(int)


# The dataset class each train mode needs; a mode not listed works on RecBole's own dataset.
DATASET_OF_TRAIN_MODE = {"sequence": SequenceDataset, "session": SequenceDataset}


def train_batch_step(loader):
    """Samples per training batch of a ``sequence`` or ``session`` split, so that ``train_batch_size``
    counts training targets (:meth:`SequenceDataset.train_batch_samples`; a window holds up to
    ``MAX_ITEM_LIST_LENGTH``); None where RecBole's own step (samples) stands."""
    dataset = loader._dataset
    if not isinstance(dataset, SequenceDataset) or loader.neg_sample_args["distribution"] != "none":
        return None
    return dataset.train_batch_samples(loader.config["train_batch_size"])


def sliced_batch_source(loader, config, dataset):
    """``(tensors, batch device)`` to serve a ``sequence`` or ``session`` split's batches from as slices,
    ``(dataset, None)`` for a split of lean samples (its batches gathered per slice of the shuffled
    order: no list of every index per epoch), or ``(None, None)`` for any other training data
    (RecBole's own loader then serves it).

    RecBole's ``TrainDataLoader`` hands each batch's sample indices to torch's ``DataLoader``, which
    fetches them one by one in Python, and RecBole's ``Interaction`` turns them into a list to index
    every field. For these splits the tensors are moved once to ``config['device']`` when the loader
    is built (see :func:`keeps_on_device` for a split too big for a GPU) and a batch is one index
    slice per field (:func:`sliced_batches`): a slice of the shuffled order (drawn from the loader's
    own generator as torch's ``DataLoader`` draws it, so the batches are RecBole's own), or, for
    ``session`` blocks, a plain slice in order. RecBole's trainer still runs the epoch, moving each
    batch to the device (already there)."""
    inter = getattr(dataset, "inter_feat", None)
    # a distributed run shards these per batch too (recbole_ext.distributed.train_batches)
    plain = loader.neg_sample_args["distribution"] == "none" and config["transform"] is None
    if not plain:
        return None, None
    if isinstance(inter, (LeanSamples, LeanWindows)):
        return dataset, None  # its batches are gathered (and joined with item features) as they are taken
    if not (isinstance(dataset, SequenceDataset) and isinstance(inter, Interaction) and dataset.target_field in inter):
        return None, None
    device = torch.device(config["device"])
    free = torch.cuda.mem_get_info(device)[0] if device.type == "cuda" else None
    if keeps_on_device(_bytes_of(inter), device, free):
        return inter.to(device), None
    return Interaction({name: values.pin_memory() for name, values in inter.interaction.items()}), device


# A training split may take this share of a GPU's free memory; a bigger one stays in pinned host memory
DEVICE_RESIDENT_SHARE = 0.5


def keeps_on_device(n_bytes, device, free_bytes):
    """Whether a training split of ``n_bytes`` is moved to ``device`` once (True) or kept in pinned host
    memory, each batch then copied to the device asynchronously (False): a CUDA device keeps it when
    it takes at most :data:`DEVICE_RESIDENT_SHARE` of ``free_bytes``, what the device has free, so the
    model and its activations still fit; any other device always keeps it (host memory is its own)."""
    return device.type != "cuda" or n_bytes <= DEVICE_RESIDENT_SHARE * free_bytes


def _bytes_of(data):
    return sum(values.numel() * values.element_size() for values in data.interaction.values())


def sliced_batches(data, step, shuffle, generator, batch_device=None):
    """The batches of ``data`` (an Interaction of tensors, or a dataset of lean samples): index
    slices, moved to ``batch_device`` when the data is not there."""
    if isinstance(data, Interaction):
        fields = data.interaction
        device = next(iter(fields.values())).device

        def take(index):
            return {name: values[index] for name, values in fields.items()}
    else:
        device = torch.device("cpu")

        def take(index):
            return data[index].interaction
    order = None
    if shuffle:
        # torch's DataLoader draws a base seed from the generator before RandomSampler's permutation:
        # drawing both the same way gives the very batches RecBole's own loader would give
        torch.empty((), dtype=torch.int64).random_(generator=generator)
        order = torch.randperm(len(data), generator=generator).to(device)
    for start in range(0, len(data), step):
        index = slice(start, start + step) if order is None else order[start : start + step]
        batch = take(index)
        if batch_device is not None:
            # a plain slice of pinned memory is pinned, so its copy overlaps the device's work (a
            # shuffled window batch is gathered into ordinary memory and copied synchronously)
            batch = {name: values.to(batch_device, non_blocking=True) for name, values in batch.items()}
        yield Interaction(batch)
    if shuffle and not isinstance(data, Interaction) and isinstance(data.inter_feat, LeanSamples):
        # at the end of an epoch torch's RandomSampler draws one more permutation (its empty
        # `num_samples % n` tail): drawn here too, lean prefix samples shuffle as RecBole's own in
        # every later epoch as well (windows and steps have no RecBole loader to follow)
        torch.randperm(len(data), generator=generator)


def _expand(mask, like):
    while mask.dim() < like.dim():
        mask = mask.unsqueeze(-1)
    return mask.expand_as(like)
