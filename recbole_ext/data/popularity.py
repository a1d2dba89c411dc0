"""What the popularity metrics count: every item of the training sequences.

RecBole's popularity metrics (``AveragePopularity``, ``TailPercentage``) and the seed's
``BlockbusterShare`` read ``data.count_items``, which RecBole takes from the training split's
``item_counter``: for a sequential dataset, how often each item is a training *target* — a
sequence's first item is never one, so it is never counted. The seed counts every interaction of
its training users (``train_set_triplets``), first items included, and nothing of the held-out
users. :func:`sequence_item_counts` counts that way — each training sample's target, plus the first
item of every sequence whose first sample is among them — and :func:`attach` keeps the counts on the
training split, where the collector hook (:func:`recbole_ext.metrics.collect_training_item_counts`)
hands them to the metrics instead of RecBole's.

Which samples are the training sequences' is the split's to say: under leave-one-out the training
split (each sequence up to its held-out targets), under ``user_split`` the training users' samples
only (with ``extended_train`` the held-out users' input parts are trained on but never counted),
under ``session_split`` the training sessions' (and the validation sessions' too in the final fit
of ``final_train_on_valid``).
"""

from collections import Counter

import numpy as np
import torch

from recbole_ext.data.lean import LeanSamples

TRAINING_ITEM_COUNTS = "training_item_counts"  # the attribute of a training split that holds them


def sequence_item_counts(dataset, samples, positions=None):
    """``Counter`` {item id: occurrences} of the items of the sequences the ``samples`` at
    ``positions`` (all when None) come from: every sample's target, and each sequence's first item
    where that sequence's first sample is among them. ``samples``: lean samples or RecBole's
    augmented ``Interaction``; None when they carry no item lists (RecBole's benchmark files)."""
    iid, uid = dataset.iid_field, dataset.uid_field
    if isinstance(samples, LeanSamples):
        flat = samples.flat
        rows = samples.rows if positions is None else samples.rows[torch.as_tensor(positions, dtype=torch.int64)]
        targets = flat.fields[iid][rows]
        is_first = rows == flat.sequence_start[flat.fields[uid][rows].long()] + 1
        items = torch.cat([targets, flat.fields[iid][rows[is_first] - 1]]).numpy()
    else:
        length_field, list_field = dataset.item_list_length_field, dataset.item_id_list_field
        if length_field not in samples or list_field not in samples:
            return None
        index = slice(None) if positions is None else torch.as_tensor(positions, dtype=torch.int64)
        targets = samples[iid][index].numpy()
        lengths = samples[length_field][index].numpy()
        # a sequence's first sample is the only one reading a single item (with MAX_ITEM_LIST_LENGTH 1,
        # the earliest of them: RecBole's samples of a sequence stay in time order in every split)
        single = np.flatnonzero(lengths == 1)
        _, first = np.unique(samples[uid][index].numpy()[single], return_index=True)
        first_items = samples[list_field][index][torch.as_tensor(single[first], dtype=torch.int64), 0].numpy()
        items = np.concatenate([targets, first_items])
    ids, counts = np.unique(items, return_counts=True)
    return Counter(dict(zip(ids.tolist(), counts.tolist())))


def attach(split, counts):
    """Keep ``counts`` on the training ``split`` (a dataset; its copies carry them along)."""
    if counts is not None:
        setattr(split, TRAINING_ITEM_COUNTS, counts)
    return split


def of(split):
    """The counts kept on a training split, or None (RecBole's ``item_counter`` then stands)."""
    return getattr(split, TRAINING_ITEM_COUNTS, None)
