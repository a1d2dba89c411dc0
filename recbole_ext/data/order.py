"""Each sequence in the order of its raw times, equal times in the order of the file.

RecBole orders a sequence by a stable sort on its time field, but by then that field has been
turned coarser: ``normalize_all`` (ml-100k's dataset YAML) min-max scales it into [0, 1], and every
float field becomes float32 in RecBole's tensors (~1e-7 relative: 64–128 s apart for Unix seconds
near 1.4e9). Events that were a second apart then tie, and a tie keeps the order the events happen
to have in the interaction file, not their time order.

:func:`sort_by_raw_time` (called by the hooks before RecBole's ``Dataset._normalize``, which is
before any conversion) puts a sequential dataset's interactions in (sequence, raw time) order, equal
raw times in file order; every later order is a stable sort on a time field that is a
non-decreasing function of the raw one, so it keeps this order within each sequence.
:func:`remove_duplication` is RecBole's ``rm_dup_inter`` with the same stable sort (RecBole's own
sorts with pandas' default quicksort, which may reorder equal times).
"""

import numpy as np


def sort_by_raw_time(dataset):
    """Sort ``dataset.inter_feat`` (a DataFrame of raw values) by (sequence, raw time), ties in file
    order; nothing is copied when every sequence is in that order already (a log sorted by time,
    or grouped by sequence and sorted by time within each, as the converters write)."""
    frame = dataset.inter_feat
    uid, time = dataset.uid_field, dataset.time_field
    if frame is None or dataset.benchmark_filename_list is not None:
        return  # benchmark files are split by their row positions: their order is theirs
    if time is None or time not in frame or uid is None or uid not in frame or len(frame) < 2:
        return
    uids, times = frame[uid].to_numpy(), frame[time].to_numpy()
    if in_sequence_time_order(uids, times):
        return
    order = np.lexsort((times, uids))  # stable: equal (sequence, time) keep the file's order
    dataset.inter_feat = frame.take(order).reset_index(drop=True)


def in_sequence_time_order(uids, times):
    """True when the events of each sequence already follow each other in time order: the times are
    non-decreasing overall, or the sequences are contiguous blocks (ids non-decreasing) with
    non-decreasing times inside each."""
    rising = times[1:] >= times[:-1]
    if rising.all():
        return True
    same = uids[1:] == uids[:-1]
    return bool((uids[1:] >= uids[:-1]).all() and (rising | ~same).all())


def remove_duplication(dataset):
    """RecBole's ``Dataset._remove_duplication`` (``rm_dup_inter``: keep the first or last of the
    repeated user-item pairs by time), with a stable sort by time, so that equal times keep the
    file's order and ``keep`` picks the same row every time."""
    keep = dataset.config["rm_dup_inter"]
    if keep is None:
        return
    dataset._check_field("uid_field", "iid_field")
    frame = dataset.inter_feat
    if dataset.time_field in frame:
        frame.sort_values(by=[dataset.time_field], ascending=True, inplace=True, kind="stable")
        dataset.logger.info(f"Records in original dataset have been sorted by value of [{dataset.time_field}] "
                            "in ascending order.")
    else:
        dataset.logger.warning("Timestamp field has not been loaded or specified, "
                               f"thus strategy [{keep}] of duplication removal may be meaningless.")
    frame.drop_duplicates(subset=[dataset.uid_field, dataset.iid_field], keep=keep, inplace=True)
