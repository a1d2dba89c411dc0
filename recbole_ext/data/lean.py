"""A lean sequential data path: RecBole's prefix samples without materialising them.

RecBole's ``SequentialDataset.data_augmentation`` stores, for every event but a sequence's first, a
``MAX_ITEM_LIST_LENGTH``-long list of the events before it, for every loaded interaction field
(``item_id_list``, ``timestamp_list`` …): with the default 50 that is ~800 bytes per event before any
copy, and a 31.7M-event log (RSC15) needs ~50 GB just to be built. Here the interactions are held
once, as flat columns ordered by (sequence, time) (:class:`FlatSequences`, token ids in int32), and a
sample is the row of its target (:class:`LeanSamples`); a batch's lists are gathered when the batch
is taken, field by field equal to RecBole's augmented batch.

Which datasets: every :class:`~recbole_ext.data.sequence.SequenceDataset` (the plugin RNNs'), and
RecBole's own ``SequentialDataset`` (GRU4Rec, NARM, SASRec …) with ``lean_sequences: True``.
:func:`build_leave_one_out` makes RecBole's ``eval_args`` split (``order: TO``, ``split: {LS: …}``,
as RecBole's sequential models use it) from the target rows alone; the held-out protocols split the
same samples (:mod:`recbole_ext.protocols.split`).
"""

import numpy as np
import torch
from recbole.data.interaction import Interaction

from recbole_ext import settings
from recbole_ext.errors import ConfigError

INT32_MAX = np.iinfo(np.int32).max


class FlatSequences:
    """Every interaction once, sorted by (sequence, time): ``fields`` maps each loaded interaction
    field to its column (token ids as int32 where they fit, floats as RecBole keeps them);
    ``sequence_start[uid]`` is the first row of sequence ``uid``. ``dtypes`` are the dtypes RecBole
    gives each field, restored when a batch is gathered."""

    def __init__(self, fields, dtypes, uid_field, time_field, sequence_start):
        self.fields = fields
        self.dtypes = dtypes
        self.uid_field = uid_field
        self.time_field = time_field
        self.sequence_start = sequence_start

    def __len__(self):
        return len(self.fields[self.uid_field])

    def column(self, field, rows):
        """``field`` at ``rows`` with RecBole's dtype."""
        return self.fields[field][rows].to(self.dtypes[field])

    def nbytes(self):
        tensors = [*self.fields.values(), self.sequence_start]
        return sum(t.numel() * t.element_size() for t in tensors)


class LeanSamples(Interaction):
    """RecBole's augmented samples as the flat rows of their targets.

    ``samples[field]`` for a whole split and ``samples[index]`` for a batch give what RecBole's
    augmented ``Interaction`` gives (the uid, every field at the target, ``<field>_list`` with up to
    ``max_len`` earlier events of the sequence, oldest first, zero-padded on the right, and
    ``item_length``); only the rows are stored. :meth:`subset` keeps a subset lean (a split);
    ``extra`` holds per-sample fields added later (``goal_length``). With ``max_len`` None a sample's
    lists hold every earlier event of its sequence, padded to the longest of its batch
    (:meth:`whole_prefixes`: held-out cases a plugin RNN reads whole).
    """

    def __init__(self, flat, rows, max_len, length_field, list_suffix, extra=None):
        self.flat = flat
        self.rows = rows
        self.max_len = max_len
        self.length_field = length_field
        self.list_suffix = list_suffix
        self.extra = extra or {}
        self.length = len(rows)

    # -- what RecBole and recbole-ext read of a split
    def __len__(self):
        return len(self.rows)

    @property
    def columns(self):
        fields = list(self.flat.fields)
        lists = [field + self.list_suffix for field in fields if field != self.flat.uid_field]
        return [*fields, self.length_field, *lists, *self.extra]

    def __iter__(self):
        return iter(self.columns)

    def __contains__(self, field):
        return field in self.columns

    def __getitem__(self, index):
        if isinstance(index, str):
            return self._whole_column(index)
        return self.batch(index)

    def __str__(self):
        return f"LeanSamples: {len(self)} samples over {len(self.flat)} interactions, fields {self.columns}"

    __repr__ = __str__

    def subset(self, index):
        """The samples at ``index`` (positions in this split), still lean."""
        index = torch.as_tensor(index, dtype=torch.int64)
        extra = {name: values[index] for name, values in self.extra.items()}
        return LeanSamples(self.flat, self.rows[index], self.max_len, self.length_field, self.list_suffix, extra)

    def whole_prefixes(self):
        """These samples with lists holding every earlier event of the sequence, however many."""
        return LeanSamples(self.flat, self.rows, None, self.length_field, self.list_suffix, dict(self.extra))

    def update(self, new_inter):
        """Add per-sample fields (``new_inter``: an Interaction of this split's length)."""
        for name in new_inter.columns:
            self.extra[name] = new_inter[name]

    def target_rows(self):
        return self.rows

    def first_rows(self):
        """The flat row of each sample's list's first event (the row of its target when the list is empty)."""
        start = self.flat.sequence_start[self.flat.fields[self.flat.uid_field][self.rows].long()]
        return start if self.max_len is None else torch.maximum(start, self.rows - self.max_len)

    def batch(self, index):
        """The samples at ``index`` as RecBole's augmented ``Interaction``."""
        if isinstance(index, slice):
            rows = self.rows[index]
            extra_index = index
        else:
            extra_index = torch.as_tensor(np.asarray(index), dtype=torch.int64).reshape(-1)
            rows = self.rows[extra_index]
        data = self._gather(rows)
        for name, values in self.extra.items():
            data[name] = values[extra_index]
        return Interaction(data)

    def nbytes(self):
        """Bytes held by this split itself (the flat columns are shared by every split)."""
        tensors = [self.rows, *self.extra.values()]
        return sum(t.numel() * t.element_size() for t in tensors)

    # -- gathering
    def _gather(self, rows):
        flat = self.flat
        start = flat.sequence_start[flat.fields[flat.uid_field][rows].long()]
        first = start if self.max_len is None else torch.maximum(start, rows - self.max_len)
        lengths = rows - first
        data = {self.length_field: lengths}
        for field in flat.fields:
            data[field] = flat.column(field, rows)
        data.update(gather_lists(flat, first, lengths, _width(self.max_len, lengths), self.list_suffix))
        return data

    def _whole_column(self, field):
        if field in self.extra:
            return self.extra[field]
        if field in self.flat.fields:
            return self.flat.column(field, self.rows)
        if field == self.length_field:
            return self.rows - self.first_rows()
        if field.endswith(self.list_suffix) and field[: -len(self.list_suffix)] in self.flat.fields:
            # the whole split's lists, materialised on request (RecBole's own code never asks)
            return self._gather(self.rows)[field]
        raise KeyError(field)


class LeanWindows(Interaction):
    """Whole-sequence windows (``train_mode: sequence``, held-out sessions scored in one pass) as the
    flat row of each window's first target and its length: a window's inputs are the events before
    its targets, ``<field>_list`` for each field, its targets ``target_field``, padded to
    ``max_len`` when its batch is taken (``max_len`` None: to the longest window of the batch, for
    windows of any length). ``windows[field]`` gives a whole column, ``windows[index]`` a batch."""

    def __init__(self, flat, first, lengths, max_len, length_field, list_suffix, item_field, target_field):
        self.flat = flat
        self.first = first
        self.lengths = lengths
        self.max_len = max_len
        self.length_field = length_field
        self.list_suffix = list_suffix
        self.item_field = item_field
        self.target_field = target_field
        self.length = len(first)

    def __len__(self):
        return len(self.first)

    @property
    def columns(self):
        lists = [field + self.list_suffix for field in self.flat.fields if field != self.flat.uid_field]
        return [self.flat.uid_field, self.length_field, *lists, self.target_field]

    def __iter__(self):
        return iter(self.columns)

    def __contains__(self, field):
        return field in self.columns

    def __getitem__(self, index):
        if isinstance(index, str):
            if index == self.length_field:
                return self.lengths
            return self._gather(self.first, self.lengths)[index]
        if not isinstance(index, slice):
            index = torch.as_tensor(np.asarray(index), dtype=torch.int64).reshape(-1)
        return Interaction(self._gather(self.first[index], self.lengths[index]))

    def __str__(self):
        return f"LeanWindows: {len(self)} windows of {self.n_targets()} targets, fields {self.columns}"

    __repr__ = __str__

    def n_targets(self):
        return int(self.lengths.sum())

    def targets(self):
        """Every target's item id, window by window."""
        within = torch.arange(self.n_targets()) - torch.repeat_interleave(torch.cumsum(self.lengths, 0) - self.lengths, self.lengths)
        return self.flat.column(self.item_field, torch.repeat_interleave(self.first, self.lengths) + within)

    def nbytes(self):
        return sum(t.numel() * t.element_size() for t in (self.first, self.lengths))

    def _gather(self, first, lengths):
        flat = self.flat
        data = {flat.uid_field: flat.column(flat.uid_field, first), self.length_field: lengths}
        width = _width(self.max_len, lengths)
        inputs = gather_lists(flat, first - 1, lengths, width, self.list_suffix)
        data.update(inputs)
        targets = gather_lists(flat, first, lengths, width, self.list_suffix, fields=[self.item_field])
        data[self.target_field] = targets[self.item_field + self.list_suffix]
        return data


def _width(max_len, lengths):
    """The list width of a batch: ``max_len``, or with None its longest list."""
    if max_len is not None:
        return max_len
    return int(lengths.max()) if len(lengths) else 0


def gather_lists(flat, first, lengths, max_len, list_suffix, fields=None):
    """``{field + list_suffix: [B, max_len]}``: each row the ``lengths`` events from flat row ``first``
    on, zero-padded on the right, for ``fields`` (default: every field but the sequence's id)."""
    offsets = torch.arange(max_len)
    padding = offsets[None, :] >= lengths[:, None]
    positions = (first[:, None] + offsets).masked_fill(padding, 0)
    lists = {}
    for field in fields if fields is not None else [f for f in flat.fields if f != flat.uid_field]:
        values = flat.column(field, positions)
        lists[field + list_suffix] = values.masked_fill(_expand(padding, values), 0)
    return lists


def is_lean(dataset):
    """Whether ``dataset`` keeps its sequences flat (module docstring)."""
    return getattr(type(dataset), "always_lean", False) or settings.of(dataset.config).lean


def flatten(dataset):
    """``SequentialDataset.data_augmentation`` made lean: ``dataset.inter_feat`` (an Interaction of
    the loaded events) becomes :class:`LeanSamples` of every event but each sequence's first, with
    the field properties RecBole's augmentation sets."""
    config = dataset.config
    if config["numerical_features"]:
        raise ConfigError(
            f"numerical_features: {config['numerical_features']} is not supported by the lean sequential "
            "data path (lean_sequences, and every plugin RNN); use lean_sequences: False with a RecBole model"
        )
    if dataset.time_field not in dataset.inter_feat:
        raise ConfigError(
            f"{config['model']} orders each sequence by the time field {dataset.time_field!r}, "
            f"which is not loaded: add it to load_col (now {config['load_col']})"
        )
    dataset._aug_presets()  # RecBole's field properties of the list fields
    sort_by_sequence_and_time(dataset)
    inter = dataset.inter_feat
    uid_field = dataset.uid_field
    uids = inter[uid_field]
    n = len(uids)
    fields, dtypes = {}, {}
    for field in inter.columns:
        values = inter[field]
        dtypes[field] = values.dtype
        compact = values.dtype == torch.int64 and (n == 0 or int(values.max()) <= INT32_MAX)
        fields[field] = values.to(torch.int32) if compact else values
    starts = np.flatnonzero(np.r_[True, uids.numpy()[1:] != uids.numpy()[:-1]]) if n else np.array([], np.int64)
    sequence_start = torch.zeros(dataset.user_num, dtype=torch.int64)
    sequence_start[uids[starts]] = torch.as_tensor(starts, dtype=torch.int64)
    flat = FlatSequences(fields, dtypes, uid_field, dataset.time_field, sequence_start)
    is_first = torch.zeros(n, dtype=torch.bool)
    is_first[torch.as_tensor(starts, dtype=torch.int64)] = True
    rows = torch.nonzero(~is_first).flatten()
    dataset.inter_feat = LeanSamples(flat, rows, dataset.max_item_list_len, dataset.item_list_length_field,
                                     config["LIST_SUFFIX"])


def sort_by_sequence_and_time(dataset):
    """RecBole's order of the events (``dataset.sort(by=[uid, time])``: by sequence, then time, ties
    in the loaded order), found with one stable ``lexsort`` and each column gathered once, and not
    at all when the file is already in that order (logs usually are: 31.7M events sorted by RecBole's
    two passes took 15 s)."""
    inter = dataset.inter_feat
    uids, times = inter[dataset.uid_field].numpy(), inter[dataset.time_field].numpy()
    same_sequence = uids[1:] == uids[:-1]
    if np.all(uids[1:] >= uids[:-1]) and np.all(~same_sequence | (times[1:] >= times[:-1])):
        return
    dataset.inter_feat = inter[torch.as_tensor(np.lexsort((times, uids)))]


def build_leave_one_out(dataset):
    """RecBole's ``SequentialDataset.build`` for ``eval_args`` ``order: TO`` and ``split: {LS: …}``
    on lean samples: the same three splits, their samples in the same order (so the same seed gives
    the same batches), each a lean subset."""
    eval_args = dataset.config["eval_args"]
    if eval_args["order"] != "TO":
        raise ConfigError(f"eval_args.order: {eval_args['order']!r} is not allowed for a sequential model; use TO")
    split = eval_args["split"]
    if not isinstance(split, dict) or list(split) != ["LS"]:
        raise ConfigError(
            f"eval_args.split: {split!r} is not allowed with the lean sequential data path (lean_sequences, "
            "every plugin RNN); use {'LS': 'valid_and_test'} (or valid_only, test_only), "
            "eval_protocol: user_split or session_split, or lean_sequences: False"
        )
    leave_one_num = {"valid_and_test": 2, "valid_only": 1, "test_only": 1}.get(split["LS"])
    if leave_one_num is None:
        raise ConfigError(f"eval_args.split: LS {split['LS']!r} is not allowed; use valid_and_test, valid_only or test_only")
    if dataset.benchmark_filename_list is not None or dataset.config["unused_col"]:
        raise ConfigError("benchmark_filename and unused_col are not supported with the lean sequential data path; "
                          "use lean_sequences: False with a RecBole model")
    dataset._change_feat_format()  # DataFrame to tensors, then the augmentation (flatten)
    samples = dataset.inter_feat
    train, *held_out = leave_one_out_roles(samples, leave_one_num)
    none = np.array([], dtype=np.int64)
    valid, test = {"valid_and_test": held_out, "valid_only": (held_out[0], none),
                   "test_only": (none, held_out[0])}[split["LS"]]
    return [dataset.copy(samples.subset(part)) for part in (train, valid, test)]


def leave_one_out_roles(samples, leave_one_num):
    """Positions of the samples RecBole's leave-one-out puts in training and in the held-out parts:
    ``[train, next, last]`` (``leave_one_num`` 2) or ``[train, last]`` (1), each in RecBole's order.

    RecBole sorts the samples by the target's time (stably), groups them by sequence in order of
    first appearance, and holds out the last ``min(leave_one_num, n - 1)`` of each sequence's n."""
    times = samples.flat.fields[samples.flat.time_field][samples.rows].numpy()
    by_time = np.argsort(times, kind="stable")
    uids = samples.flat.fields[samples.flat.uid_field][samples.rows].numpy()
    # a sequence's samples are contiguous and in time order already; its rank is when it first appears
    first_seen = np.full(int(uids.max()) + 1 if len(uids) else 0, len(uids), dtype=np.int64)
    np.minimum.at(first_seen, uids[by_time], np.arange(len(uids)))
    order = np.lexsort((np.arange(len(uids)), first_seen[uids]))  # by sequence rank, then position
    ordered_uids = uids[order]
    starts = np.flatnonzero(np.r_[True, ordered_uids[1:] != ordered_uids[:-1]]) if len(uids) else np.array([], int)
    counts = np.diff(np.r_[starts, len(uids)])
    held = np.minimum(leave_one_num, counts - 1)
    position = np.arange(len(uids)) - np.repeat(starts, counts)
    from_end = np.repeat(counts, counts) - position  # 1 for a sequence's last sample
    held_per_sample = np.repeat(held, counts)
    # the k-th sample from a sequence's end goes to part -k when held out (a sequence with a single
    # held-out sample gives it to the last part, as RecBole does)
    parts = [order[from_end > held_per_sample]]
    parts += [order[(from_end == k) & (held_per_sample >= k)] for k in range(leave_one_num, 0, -1)]
    return parts


def _expand(mask, like):
    while mask.dim() < like.dim():
        mask = mask.unsqueeze(-1)
    return mask.expand_as(like)


def held_bytes(splits):
    """Bytes the tensors of ``splits`` (the ``inter_feat`` of each) hold, the flat columns they share
    counted once: what a dataset keeps per event, whatever its layout."""
    seen, total = set(), 0
    for inter in splits:
        flat = getattr(inter, "flat", None)
        if flat is not None:
            if id(flat) not in seen:
                seen.add(id(flat))
                total += flat.nbytes()
            total += inter.nbytes()
        else:
            total += sum(t.numel() * t.element_size() for t in inter.interaction.values())
    return total
