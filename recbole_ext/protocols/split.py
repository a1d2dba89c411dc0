"""Building the training, validation and test data of ``user_split`` and ``session_split``.

Both start from RecBole's augmented samples (one per prefix: ``item_id_list`` → ``item_id``), sorted
by user (session) and time, so every field a model reads (``timestamp_list`` …) is there as under
leave-one-out. Sample j of a user predicts the item at position j + 1 of the user's sequence.

* ``user_split``: users shuffled with ``seed``; ``test_users`` then ``val_users`` of them are held
  out. Training: every sample of the other users (plus, with ``extended_train``, the samples of a
  held-out user whose target lies in its input part). A held-out user of n items is split at
  s = ⌊n·input_fraction⌋ (kept in 1..n−1): one case, the sample predicting position s, whose goal
  is the sequence from s on; with ``eval_all_prefixes`` one case per sample, each with the rest of
  the sequence as goal. A plugin RNN's case lists every input item (its state carried through the
  whole input); RecBole's models read their window, the last ``MAX_ITEM_LIST_LENGTH`` input items.
* ``session_split`` (GRU4Rec's ``preprocess.py``): sessions ending in the last ``test_days`` days
  of the log are test; of the others, those ending in the last ``valid_days`` days before their own
  last event are validation, the rest training. Held-out events whose item the scoring model never
  trained on are dropped *before* the samples are made (so the prefixes are the filtered ones):
  validation keeps the items of training sessions, the test those of training and validation
  sessions; then held-out sessions shorter than 2 are dropped. With ``final_train_on_valid`` the
  training split also carries the samples of every training and validation session, unfiltered
  (:func:`final_training_split`, :mod:`recbole_ext.protocols.final_fit`). Every sample of a
  held-out session is a case. A plugin RNN dataset (:class:`~recbole_ext.data.sequence.SequenceDataset`)
  turns each held-out session into one window of its own length, which the model scores in one
  pass, its state carried through the whole session (RecBole's models: one prefix sample per
  case, reading the last ``MAX_ITEM_LIST_LENGTH`` events).

An evaluation split carries a :class:`HeldOutCases` as ``held_out``; the dataloader hooks in
:mod:`recbole_ext.protocols.evaluation` read it.
"""

from dataclasses import dataclass

import numpy as np
import torch

from recbole.data.interaction import Interaction

from recbole_ext.data import popularity
from recbole_ext.data.lean import LeanSamples
from recbole_ext.data.sequence import SequenceDataset, user_spans
from recbole_ext.errors import ConfigError
from recbole_ext.keys import require_raw_seconds
from recbole_ext.metrics import GOAL_LENGTH_FIELD
from recbole_ext.protocols.settings import SECONDS_PER_DAY, SESSION_SPLIT, held_out_count

TRAIN, VALID, TEST = 0, 1, 2


@dataclass
class HeldOutCases:
    """What an evaluation split needs besides its samples. ``goals[offsets[r]:offsets[r+1]]`` are
    row r's goal items (None: the row's own target is its only goal); ``seen`` likewise, the items
    ranked last for row r (None: none); ``unranked`` items are ranked last in every row."""

    goals: np.ndarray = None
    goal_offsets: np.ndarray = None
    seen: np.ndarray = None
    seen_offsets: np.ndarray = None
    unranked: torch.Tensor = None
    one_pass: bool = False


def check_time_field(dataset, settings):
    """session_split splits by days: it needs the time field, loaded and in raw seconds."""
    if settings.protocol != SESSION_SPLIT:
        return
    time_field = dataset.time_field
    config = dataset.config
    if time_field is None or time_field not in dataset.inter_feat:
        raise ConfigError(
            f"eval_protocol: session_split splits sessions by the days of their last event and needs "
            f"the time field {time_field!r}, which this dataset does not load: add it to load_col "
            f"(now {config['load_col']}) or use eval_protocol: user_split"
        )
    # test_days and valid_days are counted in seconds of the time field
    require_raw_seconds(config, time_field, "eval_protocol: session_split")


def session_roles_and_filter(dataset, settings):
    """On the raw interactions (a DataFrame), GRU4Rec's split (its ``examples/rsc15/preprocess.py``):
    ``(session roles indexed by session id, the events kept, each event's role, {VALID: items ranked
    last, TEST: …})``.

    * test: sessions whose last event is at or after T − ``test_days`` days, T the log's last time;
    * validation: of the sessions before (GRU4Rec's ``train_full``), those ending at or after
      T′ − ``valid_days`` days, T′ their own last time; training (``train_tr``): the rest;
    * kept: every training event, a validation event whose item is in a training session, a test
      event whose item is in a training or validation session; then held-out sessions of 2 or more
      kept events only;
    * ranked last: items the model that scores the split never trained on — for validation, those of
      no training session; for the test, those of no training or validation session with
      ``final_train_on_valid`` (the test model trains on both), else of no training session.
    """
    frame = dataset.inter_feat
    uid, iid, time = dataset.uid_field, dataset.iid_field, dataset.time_field
    # ids are dense (remapped), so per-session and per-item facts are arrays indexed by id: O(events),
    # no hashing (31.7M events: under 2 s, against 14 s with pandas' groupby and numpy's unique)
    uids = frame[uid].to_numpy(dtype=np.int64)
    items = frame[iid].to_numpy(dtype=np.int64)
    times = frame[time].to_numpy(dtype=np.float64)
    session_end = np.full(dataset.user_num, -np.inf)
    np.maximum.at(session_end, uids, times)
    session_end = session_end[uids]
    is_test = session_end >= float(times.max()) - settings.test_days * SECONDS_PER_DAY
    if is_test.all():
        raise ConfigError(_no_training_session(settings))
    valid_start = float(times[~is_test].max()) - settings.valid_days * SECONDS_PER_DAY
    event_role = np.where(is_test, TEST, np.where(session_end >= valid_start, VALID, TRAIN))
    in_train = np.bincount(items[event_role == TRAIN], minlength=dataset.item_num) > 0
    if not in_train.any():
        raise ConfigError(_no_training_session(settings))
    in_pre_test = np.bincount(items[event_role != TEST], minlength=dataset.item_num) > 0
    keep = (event_role == TRAIN) | np.where(event_role == VALID, in_train[items], in_pre_test[items])
    long_enough = np.bincount(uids[keep], minlength=dataset.user_num)[uids] >= 2
    keep &= (event_role == TRAIN) | long_enough
    roles = np.full(dataset.user_num, -1, dtype=np.int64)
    roles[uids] = event_role
    test_model_items = in_pre_test if settings.final_train_on_valid else in_train
    # ids 1.. (0 is the padding item) that the scoring model never trained on
    unranked = {VALID: np.flatnonzero(~in_train[1:]) + 1, TEST: np.flatnonzero(~test_model_items[1:]) + 1}
    unranked = {role: torch.as_tensor(items, dtype=torch.int64) for role, items in unranked.items()}
    return roles, keep, event_role, unranked


def _no_training_session(settings):
    return (f"test_days: {settings.test_days} and valid_days: {settings.valid_days} leave no training "
            "session (every session ends in the held-out days); lower them")


def final_training_events(dataset, event_role):
    """The events of every training and validation session, unfiltered (GRU4Rec's ``train_full``), as
    an ``Interaction``: taken before the held-out events are filtered, made a split by
    :func:`final_training_split` once the dataset's features are converted."""
    events = dataset.inter_feat[event_role != TEST]
    return dataset._dataframe_to_interaction(events.reset_index(drop=True))


def final_training_split(dataset, events):
    """``final_train_on_valid``'s training split: the samples of ``events`` (RecBole's augmentation, or
    lean samples), with its popularity counts (every item of those sessions)."""
    final = dataset.copy(events)
    final.data_augmentation()
    return popularity.attach(final, popularity.sequence_item_counts(final, final.inter_feat))


def user_roles(dataset, settings):
    """Each user's role, indexed by user id: users shuffled with ``seed``, then test, valid, train."""
    users = np.unique(dataset.inter_feat[dataset.uid_field].numpy())
    n_test = held_out_count("test_users", settings.test_users, len(users))
    n_valid = held_out_count("val_users", settings.val_users, len(users))
    if n_test + n_valid >= len(users):
        raise ConfigError(
            f"val_users: {settings.val_users} and test_users: {settings.test_users} hold out "
            f"{n_valid} + {n_test} of the {len(users)} users with at least 2 items: no training user "
            "is left; lower val_users or test_users"
        )
    order = np.random.default_rng(dataset.config["seed"]).permutation(users)
    roles = np.full(dataset.user_num, -1, dtype=np.int64)
    roles[order[:n_test]] = TEST
    roles[order[n_test : n_test + n_valid]] = VALID
    roles[order[n_test + n_valid :]] = TRAIN
    return roles


def split_user_samples(dataset, roles, settings):
    """``(train rows, training users' rows, {VALID: (case rows, HeldOutCases, goal lengths), TEST: …})``
    for ``user_split``; the train rows add the held-out input parts with ``extended_train``."""
    inter = dataset.inter_feat
    uids = inter[dataset.uid_field].numpy()
    targets = inter[dataset.iid_field].numpy()
    first_items = _first_items(dataset, inter)
    train_rows, counted_rows, cases = [], [], {VALID: ([], [], []), TEST: ([], [], [])}
    for start, end in zip(*user_spans(uids)):
        role = roles[uids[start]]
        if role == TRAIN:
            train_rows.append(np.arange(start, end))
            counted_rows.append(train_rows[-1])
            continue
        sequence = np.r_[first_items[start], targets[start:end]]
        n = len(sequence)
        split_at = min(max(int(n * settings.input_fraction), 1), n - 1)
        if settings.extended_train:
            train_rows.append(np.arange(start, start + split_at - 1))
        positions = range(1, n) if settings.eval_all_prefixes else (split_at,)
        rows, goals, seen = cases[role]
        for position in positions:
            rows.append(start + position - 1)
            goals.append(sequence[position:])
            seen.append(np.unique(sequence[:position]))
    train = np.concatenate(train_rows) if train_rows else np.array([], dtype=np.int64)
    training_users = np.concatenate(counted_rows) if counted_rows else np.array([], dtype=np.int64)
    split = {}
    for role, (rows, goals, seen) in cases.items():
        held_out = HeldOutCases(
            goals=np.concatenate(goals), goal_offsets=_offsets(goals),
            seen=np.concatenate(seen) if settings.exclude_seen else None,
            seen_offsets=_offsets(seen) if settings.exclude_seen else None,
        )
        split[role] = (np.array(rows, dtype=np.int64), held_out, np.array([len(g) for g in goals]))
    return train, training_users, split


def _first_items(dataset, inter):
    """The first item of each sample's sequence."""
    if isinstance(inter, LeanSamples):
        flat = inter.flat
        return flat.column(dataset.iid_field, flat.sequence_start[inter[dataset.uid_field]]).numpy()
    return inter[dataset.item_id_list_field][:, 0].numpy()


def take(inter, rows):
    """The samples at ``rows`` (positions): a lean subset of lean samples, else RecBole's indexing."""
    rows = torch.as_tensor(rows, dtype=torch.int64)
    return inter.subset(rows) if isinstance(inter, LeanSamples) else inter[rows]


def _offsets(arrays):
    return np.r_[0, np.cumsum([len(a) for a in arrays])].astype(np.int64)


def build_held_out(dataset, settings, roles, unranked=None):
    """The three splits of ``dataset`` (already augmented) as RecBole's ``build`` returns them;
    ``unranked``: session_split's items ranked last, by role."""
    inter = dataset.inter_feat
    uids = inter[dataset.uid_field].numpy()
    sample_roles = roles[uids]
    if settings.protocol == SESSION_SPLIT:
        train_rows = counted_rows = np.flatnonzero(sample_roles == TRAIN)
        evaluation = {role: _session_cases(dataset, np.flatnonzero(sample_roles == role), unranked[role])
                      for role in (VALID, TEST)}
    else:
        train_rows, counted_rows, split = split_user_samples(dataset, roles, settings)
        evaluation = {}
        for role, (rows, held_out, goal_lengths) in split.items():
            cases = take(inter, rows)
            if isinstance(dataset, SequenceDataset):
                cases = cases.whole_prefixes()  # a plugin RNN reads the whole input part
            cases.update(Interaction({GOAL_LENGTH_FIELD: torch.as_tensor(goal_lengths, dtype=torch.int64)}))
            evaluation[role] = _with_cases(dataset.copy(cases), held_out)
    for role, key in ((VALID, "valid"), (TEST, "test")):
        if len(evaluation[role].inter_feat) == 0:
            raise ConfigError(_empty_message(settings, key))
    train = dataset.copy(take(inter, train_rows))
    # popularity (BlockbusterShare …): every item of the training sequences, never a held-out user's
    popularity.attach(train, popularity.sequence_item_counts(dataset, inter, counted_rows))
    return [train, evaluation[VALID], evaluation[TEST]]


def _session_cases(dataset, rows, unranked):
    cases = take(dataset.inter_feat, rows)
    one_pass = isinstance(dataset, SequenceDataset)
    if one_pass and len(cases):
        cases = dataset.held_out_runs(cases)
    return _with_cases(dataset.copy(cases), HeldOutCases(unranked=unranked, one_pass=one_pass))


def _with_cases(split, held_out):
    split.held_out = held_out
    return split


def _empty_message(settings, key):
    if settings.protocol == SESSION_SPLIT:
        days = "test_days" if key == "test" else "valid_days"
        return (f"{days}: {getattr(settings, days)} leaves no {key} session of 2 or more events whose items "
                "occur in training; use more days or a longer log")
    users = "test_users" if key == "test" else "val_users"
    return f"{users}: {getattr(settings, users)} leaves no {key} case"
