"""A seeded generator of click logs shaped like RSC15 (YooChoose clicks), for measuring scale.

    python -m recbole_ext.data.synth --shape rsc15 --events 5000000 --out data --name rsc15-5m

Shape, after GRU4Rec's preprocessing of RSC15 (Hidasi et al., ICLR 2016, table 1: 31,637,239 training
clicks in 7,966,257 sessions, 3.97 clicks a session, over 37,483 items):

* ``n_items`` items (default 37,483) with Zipf popularity: the item of popularity rank r is clicked
  ∝ r^−``popularity_exponent`` (default 1). Ranks are given to item ids at random, so an id says
  nothing about popularity;
* session lengths from 2 to 50 clicks, P(length = L) ∝ L^−``length_exponent``: the default 2.5 gives
  a mean of 3.92 clicks, about half of the sessions of 2 clicks, and 1.7 % of 20 clicks or more;
* from the second click on, with probability ``follow`` (default 0.5) the click is one of
  ``related`` (default 8) items tied to the previous click (drawn once, by popularity), otherwise a
  fresh draw by popularity: some sequential signal, popularity stays Zipf-like;
* times are whole seconds since the start of the log: sessions start uniformly within ``days``
  (default 182, RSC15's six months; float32 — what RecBole stores float fields in — holds every
  whole second below 194 days), clicks ``1 + round(lognormal)`` seconds apart (median about 30 s,
  at most an hour), so times strictly increase within a session.

Exactly ``n_events`` clicks are generated. Everything is vectorised numpy (one pass per click
position, at most 50; times a block of clicks at a time): memory is the three output columns
(24 bytes a click) plus temporaries of one value a session, so it grows with the log by little
more than the columns (benchmarks/results/scaling/streaming-data-tools.md).

These parameters are chosen to match the published totals above, not fitted to RSC15's own
histograms (the raw log is not used here).
"""

import numpy as np

from recbole_ext.errors import DataError

RSC15_ITEMS = 37483
MIN_LENGTH, MAX_LENGTH = 2, 50
MAX_GAP_SECONDS = 3600
SECONDS_PER_DAY = 86400
BLOCK = 1 << 20  # clicks handled at once where a step need not see the whole log


def session_lengths(rng, n_events, exponent=2.5):
    """Session lengths in [2, 50], P(L) ∝ L^−exponent, summing to exactly ``n_events`` (≥ 2)."""
    if n_events < MIN_LENGTH:
        raise DataError(f"--events: {n_events} is not allowed; use at least {MIN_LENGTH} (a session has 2 or more clicks)")
    support = np.arange(MIN_LENGTH, MAX_LENGTH + 1)
    weights = support.astype(float) ** -exponent
    weights /= weights.sum()
    mean = float(weights @ support)
    lengths = np.empty(0, dtype=np.int64)
    while lengths.sum() < n_events:
        more = int((n_events - lengths.sum()) / mean * 1.05) + 16
        lengths = np.r_[lengths, rng.choice(support, more, p=weights)]
    cumulative = np.cumsum(lengths)
    kept = int(np.searchsorted(cumulative, n_events, side="right"))  # sessions that fit whole
    lengths = lengths[:kept]
    rest = n_events - (int(cumulative[kept - 1]) if kept else 0)  # < the next length, so < 50
    if rest >= MIN_LENGTH:
        lengths = np.r_[lengths, rest]
    elif rest == 1:  # one click left over: one session takes it
        short = np.flatnonzero(lengths < MAX_LENGTH)
        if len(short):
            lengths[short[0]] += 1
        else:  # every session is full: 50 + 1 = 49 + 2
            lengths = np.r_[lengths[:-1], MAX_LENGTH - 1, MIN_LENGTH]
    return lengths


def generate_rsc15(n_events, n_items=RSC15_ITEMS, popularity_exponent=1.0, length_exponent=2.5, follow=0.5,
                   related=8, days=182, seed=0):
    """Return (session ids, item ids, times) as numpy arrays, sorted by session then time.

    Session ids run from 1, item ids from 1 (RecBole keeps 0 for padding); times are whole seconds.
    """
    if n_items < 2:
        raise DataError(f"--items: {n_items} is not allowed; use at least 2")
    rng = np.random.default_rng(seed)
    lengths = session_lengths(rng, n_events, length_exponent)
    n_sessions = len(lengths)
    first = np.r_[0, np.cumsum(lengths)[:-1]]

    popularity = np.cumsum(1.0 / np.arange(1, n_items + 1) ** popularity_exponent)
    popularity /= popularity[-1]
    item_of_rank = rng.permutation(n_items) + 1

    def by_popularity(n):
        rank = np.searchsorted(popularity, rng.random(n), side="right")
        return item_of_rank[np.minimum(rank, n_items - 1)]

    related_items = by_popularity(n_items * related).reshape(n_items, related)  # row: item id − 1
    items = np.empty(n_events, dtype=np.int64)
    items[first] = by_popularity(n_sessions)
    # sessions longest first: those of at least k clicks are the first still_going[k] of this order
    by_length = np.argsort(-lengths, kind="stable")
    still_going = np.searchsorted(-lengths[by_length], -np.arange(MAX_LENGTH + 1), side="right")
    for position in range(1, int(lengths.max())):
        at = first[by_length[: still_going[position + 1]]] + position
        follows = rng.random(len(at)) < follow
        tied = related_items[items[at - 1] - 1, rng.integers(0, related, len(at))]
        items[at] = np.where(follows, tied, by_popularity(len(at)))
    del by_length, at, follows, tied  # per-session temporaries: not held on top of the time column

    # Times are built in one float64 column, in place, a block of clicks at a time, so the
    # generator holds the output columns plus one block rather than several whole-log temporaries.
    # Every value is a whole number of seconds below 2**53, so the float64 sums are exact: the same
    # values as summing in int64.
    times = np.empty(n_events)
    elapsed = 0.0  # seconds of all gaps before the block
    for start in range(0, n_events, BLOCK):
        block = times[start: start + BLOCK]
        block[:] = rng.lognormal(np.log(30.0), 1.0, len(block))  # the same draws as one call for the log
        np.round(block, out=block)
        block += 1
        np.minimum(block, MAX_GAP_SECONDS, out=block)
        firsts = first[slice(*np.searchsorted(first, [start, start + len(block)]))]
        block[firsts - start] = 0  # no gap before a session's first click
        np.cumsum(block, out=block)
        block += elapsed
        elapsed = block[-1]
    latest_start = max(1, days * SECONDS_PER_DAY - (MAX_LENGTH - 1) * MAX_GAP_SECONDS)
    starts = rng.integers(0, latest_start, n_sessions)
    shift = starts - times[first]  # moves each session's first click to its start
    bounds = np.r_[np.arange(0, n_sessions, BLOCK // MAX_LENGTH), n_sessions]  # at most BLOCK clicks each
    for begin, end in zip(bounds[:-1], bounds[1:]):
        clicks = slice(first[begin], first[end - 1] + lengths[end - 1])
        times[clicks] += np.repeat(shift[begin:end], lengths[begin:end])
    del starts, shift
    sessions = np.repeat(np.arange(1, n_sessions + 1), lengths)
    return sessions, items, times
