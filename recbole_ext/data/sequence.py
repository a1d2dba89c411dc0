"""Whole-sequence training data for RNN models (``train_mode: sequence``).

RecBole's :class:`~recbole.data.dataset.SequentialDataset` trains on one sample per prefix, so an RNN
re-reads each item up to ``MAX_ITEM_LIST_LENGTH`` times per epoch. An RNN is causal: its state after
position k of a sequence is the state the prefix of length k would give. :class:`SequenceDataset`
keeps RecBole's whole pipeline (filters, remapping, augmentation, leave-one-out split) and only
rewrites the *training* split: each user's training prefixes become the user's sequence, cut into
windows of at most ``MAX_ITEM_LIST_LENGTH`` targets, with the next item as target at every position.
Validation and test data stay RecBole's prefix samples.

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
from recbole_ext.errors import ConfigError

# train_mode: session — fields of the training split besides the item (and time) list fields
SESSION_RESET_FIELD = "session_reset"  # [blocks, steps, rows] True where a row starts a new sequence
SESSION_BLOCK_FIELD = "session_block"  # [blocks] position of the block in the epoch


def target_list_field(config):
    """Name of the field holding the next item of every input position of a window."""
    return "target_" + config["ITEM_ID_FIELD"] + config["LIST_SUFFIX"]


class SequenceDataset(SequentialDataset):
    """A :class:`SequentialDataset` whose training split holds whole-sequence windows when
    ``train_mode`` is ``sequence`` (with ``prefix`` it is RecBole's dataset unchanged)."""

    def data_augmentation(self):
        if self.time_field not in self.inter_feat:
            raise ConfigError(
                f"{self.config['model']} orders each sequence by the time field {self.time_field!r}, "
                f"which is not loaded: add it to load_col (now {self.config['load_col']})"
            )
        if self.config["numerical_features"]:
            super().data_augmentation()  # its lists of (value, ...) pairs: RecBole's own loop
            return
        self._aug_presets()
        self._check_field("uid_field", "time_field")
        self.sort(by=[self.uid_field, self.time_field], ascending=True)
        self.inter_feat = prefix_samples(self.inter_feat, self.uid_field, self.max_item_list_len,
                                         self.item_list_length_field, self.config["LIST_SUFFIX"])

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
        if SESSION_BLOCK_FIELD in self.inter_feat:
            return 1  # a block already holds train_batch_size rows
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
        starts, ends = user_spans(uids)

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

    # ------------------------------------------------------------ train_mode: session
    def _session_steps(self, inter):
        """GRU4Rec's session-parallel mini-batches, built once.

        Each user's training sequence (its first prefix followed by every training target) is one
        session. Sessions are taken in the official code's order (``session_order='time'``: by the
        time of their first event, ties by user id). ``train_batch_size`` rows each follow one
        session, one event per step; when a row's session ends, the next session in that order takes
        the row (free rows in row order, as the official iterator does), and that step is marked in
        :data:`SESSION_RESET_FIELD`. Unlike the official iterator, the epoch ends only when every
        session is done (rows that find no session left idle with item 0 and target 0), so every
        training target is used exactly once.

        The steps are cut into blocks of ``session_steps`` consecutive steps; one block is one
        training sample (one batch), ``[blocks, session_steps, rows]`` per field: the input item, the
        target, the input item's time (when loaded) and the reset flag. A step holds no target's time.
        """
        rows = keys.integer(self.config, "train_batch_size", 1)
        steps_per_block = keys.integer(self.config, "session_steps", 1)
        suffix = self.config["LIST_SUFFIX"]
        item_list, time_list = self.iid_field + suffix, self.time_field + suffix
        uids = inter[self.uid_field].numpy()
        lengths = inter[self.item_list_length_field].numpy()
        starts, ends = user_spans(uids)
        item_lists, items = inter[item_list].numpy(), inter[self.iid_field].numpy()
        time_lists, times = inter[time_list].numpy(), inter[self.time_field].numpy()
        sequences, sequence_times = [], []
        for start, end in zip(starts, ends):
            head = int(lengths[start])
            sequences.append(np.r_[item_lists[start, :head], items[start:end]])
            sequence_times.append(np.r_[time_lists[start, :head], times[start:end]])
        order = np.argsort([t[0] for t in sequence_times], kind="stable")

        # the row that frees up first takes the next session; ties go to the lower row
        free = [(0, row) for row in range(rows)]
        placed = []  # (row, first step, session)
        for session in order:
            first_step, row = heapq.heappop(free)
            placed.append((row, first_step, session))
            heapq.heappush(free, (first_step + len(sequences[session]) - 1, row))
        n_steps = max(step for step, _ in free)
        n_blocks = max(1, -(-n_steps // steps_per_block))
        shape = (n_blocks * steps_per_block, rows)
        step_items = np.zeros(shape, dtype=np.int64)
        step_targets = np.zeros(shape, dtype=np.int64)
        step_times = np.zeros(shape, dtype=times.dtype)
        reset = np.ones(shape, dtype=bool)  # idle rows keep a fresh state
        for row, first_step, session in placed:
            sequence = sequences[session]
            span = slice(first_step, first_step + len(sequence) - 1)
            step_items[span, row] = sequence[:-1]
            step_targets[span, row] = sequence[1:]
            step_times[span, row] = sequence_times[session][:-1]
            reset[first_step + 1 : span.stop, row] = False
        block_shape = (n_blocks, steps_per_block, rows)
        self.set_field_property(self.target_field, FeatureType.TOKEN_SEQ, FeatureSource.INTERACTION, steps_per_block)
        return Interaction(
            {
                item_list: torch.as_tensor(step_items.reshape(block_shape)),
                self.target_field: torch.as_tensor(step_targets.reshape(block_shape)),
                time_list: torch.as_tensor(step_times.reshape(block_shape)),
                SESSION_RESET_FIELD: torch.as_tensor(reset.reshape(block_shape)),
                SESSION_BLOCK_FIELD: torch.arange(n_blocks),
            }
        )


def user_spans(uids):
    """Start and end row of each user's rows (rows sorted by user)."""
    starts = np.flatnonzero(np.r_[True, uids[1:] != uids[:-1]]) if len(uids) else np.array([], int)
    return starts, np.r_[starts[1:], len(uids)].astype(int)


# rows of prefix lists filled at a time: bounds the index matrix built beside the lists
PREFIX_CHUNK_ROWS = 1 << 18


def prefix_samples(inter, uid_field, max_len, length_field, list_suffix):
    """RecBole's sequential augmentation (``SequentialDataset.data_augmentation``), the same samples
    without its Python loop over every sample and field (without it the 5M-event log's build went
    from 93 s to 62 s): for every interaction but a user's first, in (user, time) order, a sample
    whose lists hold the user's previous ``max_len`` (at most) interactions, oldest first,
    zero-padded on the right."""
    uids = inter[uid_field].numpy()
    n = len(uids)
    rows = np.arange(n)
    first_rows, end_rows = user_spans(uids)
    user_start = np.repeat(first_rows, end_rows - first_rows)
    targets = rows[rows != user_start]
    starts = torch.as_tensor(np.maximum(user_start[targets], targets - max_len))
    lengths = torch.as_tensor(targets) - starts
    samples = inter[targets]
    lists = {length_field: lengths}
    offsets = torch.arange(max_len)
    for field in inter.columns:
        if field == uid_field:
            continue
        values = inter[field]
        filled = torch.zeros((len(targets), max_len, *values.shape[1:]), dtype=values.dtype)
        for low in range(0, len(targets), PREFIX_CHUNK_ROWS):
            chunk = slice(low, low + PREFIX_CHUNK_ROWS)
            positions = (starts[chunk, None] + offsets).clamp(max=max(n - 1, 0))
            gathered = values[positions]
            padding = offsets[None, :] >= lengths[chunk, None]
            filled[chunk] = gathered.masked_fill(_expand(padding, gathered), 0)
        lists[field + list_suffix] = filled
    samples.update(Interaction(lists))
    return samples


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


def sliceable_train_tensors(loader, config, dataset):
    """``(tensors, batch device)`` to serve a ``sequence`` or ``session`` split's batches from as slices,
    or ``(None, None)`` for any other training data (RecBole's own loader then serves it).

    RecBole's ``TrainDataLoader`` hands each batch's sample indices to torch's ``DataLoader``, which
    fetches them one by one in Python, and RecBole's ``Interaction`` turns them into a list to index
    every field. For these splits the tensors are moved once to ``config['device']`` when the loader
    is built (see :func:`keeps_on_device` for a split too big for a GPU) and a batch is one index
    slice per field (:func:`sliced_batches`): a slice of the shuffled order (drawn from the loader's
    own generator as torch's ``DataLoader`` draws it, so the batches are RecBole's own), or, for
    ``session`` blocks, a plain slice in order. RecBole's trainer still runs the epoch, moving each
    batch to the device (already there)."""
    inter = getattr(dataset, "inter_feat", None)
    sliceable = (
        isinstance(dataset, SequenceDataset) and isinstance(inter, Interaction) and dataset.target_field in inter
        and loader.neg_sample_args["distribution"] == "none" and config["transform"] is None
    )
    if not sliceable:
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
    """The batches of ``data``: index slices, moved to ``batch_device`` when the data is not there."""
    fields = data.interaction
    device = next(iter(fields.values())).device
    order = None
    if shuffle:
        # torch's DataLoader draws a base seed from the generator before RandomSampler's permutation:
        # drawing both the same way gives the very batches RecBole's own loader would give
        torch.empty((), dtype=torch.int64).random_(generator=generator)
        order = torch.randperm(len(data), generator=generator).to(device)
    for start in range(0, len(data), step):
        index = slice(start, start + step) if order is None else order[start : start + step]
        batch = {name: values[index] for name, values in fields.items()}
        if batch_device is not None:
            # a plain slice of pinned memory is pinned, so its copy overlaps the device's work (a
            # shuffled window batch is gathered into ordinary memory and copied synchronously)
            batch = {name: values.to(batch_device, non_blocking=True) for name, values in batch.items()}
        yield Interaction(batch)


def _expand(mask, like):
    while mask.dim() < like.dim():
        mask = mask.unsqueeze(-1)
    return mask.expand_as(like)
