"""A seeded generator of session logs in which dwell time carries signal.

    python -m recbole_ext.data.synth --out data --name synth-sessions --sessions 3000 --seed 0

(``--shape rsc15 --events N`` writes a log shaped like RSC15 instead, for measuring scale:
:mod:`recbole_ext.data.synth_rsc15`.)

What it plants. Every session has an *intent topic* (topics of 20 items, Zipf-popular). Each event
is one of

* an intent click: an item of the session's topic (Zipf-popular within it), long dwell;
* a noise click, with probability ``--noise``: any item, short dwell;
* from the third event on, with probability ``--revisit``: a return to the earlier item the user
  dwelt on longest, leaving out the item just left (comparison shopping), long dwell.

Dwells are log-normal: intent and returns median ``intent_dwell`` (90 s), noise median
``noise_dwell`` (6 s). Both signals are readable without the dwell of the item being viewed — which
no model may know before the next click: earlier dwells tell which items reveal the intent and
which earlier item the user will return to. A model that reads dwell can use them; one that does
not can only guess from the items.

Times are whole seconds since the start of the log (sessions start within 30 days), so float32 —
what RecBole stores float fields in — holds them exactly.
"""

import argparse
import sys

import numpy as np

from recbole_ext.data.atomic import NAME_RULE, check_output, write_sessions
from recbole_ext.data.synth_rsc15 import RSC15_ITEMS, generate_rsc15
from recbole_ext.cli import bad_input
from recbole_ext.errors import RecBoleExtError

MAX_LENGTH = 40
SHAPES = ("dwell", "rsc15")


def generate(n_sessions, n_items=400, topic_size=20, noise=0.35, revisit=0.2, intent_dwell=90.0,
             noise_dwell=6.0, mean_length=8, seed=0):
    """Return (session ids, item ids, times) as numpy arrays, sorted by session then time."""
    rng = np.random.default_rng(seed)
    n_topics = n_items // topic_size
    topic_popularity = 1.0 / np.arange(1, n_topics + 1)
    topic_popularity /= topic_popularity.sum()
    within_topic = 1.0 / np.arange(1, topic_size + 1) ** 0.8
    within_topic /= within_topic.sum()

    lengths = np.clip(rng.geometric(1.0 / (mean_length - 1), n_sessions) + 1, 2, MAX_LENGTH)
    width = int(lengths.max())
    topics = rng.choice(n_topics, n_sessions, p=topic_popularity)
    items = np.zeros((n_sessions, width), dtype=np.int64)
    dwell = np.zeros((n_sessions, width))
    rows = np.arange(n_sessions)
    # one column at a time over all sessions: a return depends on the dwells before it
    for position in range(width):
        draw = rng.random(n_sessions)
        returns = (draw < revisit) if position >= 2 else np.zeros(n_sessions, dtype=bool)
        is_noise = ~returns & (draw < noise + (revisit if position >= 2 else 0.0))
        intent_item = topics * topic_size + rng.choice(topic_size, n_sessions, p=within_topic)
        noise_item = rng.integers(0, n_items, n_sessions)
        if position >= 2:
            longest = dwell[:, : position - 1].argmax(1)
            intent_item = np.where(returns, items[rows, longest], intent_item)
        items[:, position] = np.where(is_noise, noise_item, intent_item)
        dwell[:, position] = np.where(
            is_noise,
            rng.lognormal(np.log(noise_dwell), 0.6, n_sessions),
            rng.lognormal(np.log(intent_dwell), 0.5, n_sessions),
        )

    real = np.arange(width)[None, :] < lengths[:, None]
    # an event happens when the previous one's dwell ends
    starts = rng.uniform(0, 30 * 86400, n_sessions)
    times = np.round(starts[:, None] + np.cumsum(dwell, 1) - dwell)
    session_ids = np.repeat(np.arange(1, n_sessions + 1), lengths)
    return session_ids, items[real] + 1, times[real]  # item ids from 1: RecBole keeps 0 for padding


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="output folder; the dataset goes to OUT/NAME/")
    parser.add_argument("--name", default="synth-sessions", help=f"dataset name, {NAME_RULE} (default: synth-sessions)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing OUT/NAME written by this tool (NAME.inter and NAME.yaml only)")
    parser.add_argument("--shape", choices=SHAPES, default="dwell",
                        help="dwell: sessions with planted dwell-time signal (default); rsc15: a click log "
                             "shaped like RSC15 (recbole_ext.data.synth_rsc15)")
    parser.add_argument("--sessions", type=int, help="dwell: number of sessions (default: 3000)")
    parser.add_argument("--events", type=int, help="rsc15: number of clicks (required)")
    parser.add_argument("--items", type=int,
                        help=f"number of items (default: 400 for dwell, {RSC15_ITEMS} for rsc15)")
    parser.add_argument("--noise", type=float, help="dwell: share of noise clicks (default: 0.35)")
    parser.add_argument("--revisit", type=float,
                        help="dwell: share of returns to the longest-dwelled earlier item (default: 0.2)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.shape == "rsc15":
        return _main_rsc15(parser, args)
    if args.events is not None:
        parser.error("--events is for --shape rsc15; the dwell shape counts --sessions")
    args.sessions = 3000 if args.sessions is None else args.sessions
    args.items = 400 if args.items is None else args.items
    args.noise = 0.35 if args.noise is None else args.noise
    args.revisit = 0.2 if args.revisit is None else args.revisit
    if args.sessions < 1:
        parser.error(f"--sessions: {args.sessions} is not allowed; use a positive integer")
    if args.items < 20:
        parser.error(f"--items: {args.items} is not allowed; use at least 20 (one topic holds 20 items)")
    for key in ("noise", "revisit"):
        if not 0 <= getattr(args, key) < 1:
            parser.error(f"--{key}: {getattr(args, key)} is not allowed; use a share in [0, 1)")
    if args.noise + args.revisit >= 1:
        parser.error(f"--noise {args.noise} + --revisit {args.revisit} is not allowed; their sum must be < 1")
    try:
        check_output(args.out, args.name, args.overwrite)
        sessions, items, times = generate(args.sessions, n_items=args.items, noise=args.noise, revisit=args.revisit,
                                          seed=args.seed)
        config = write_sessions(sessions, items, times, args.out, args.name, args.overwrite)
    except RecBoleExtError as error:
        return bad_input("synth", error)  # exit 2; 1 for an output that could not be written
    print(f"wrote {len(items)} events in {args.sessions} sessions; config: {config}")
    return 0


def _main_rsc15(parser, args):
    for key in ("sessions", "noise", "revisit"):
        if getattr(args, key) is not None:
            parser.error(f"--{key} is for --shape dwell; --shape rsc15 takes --events, --items and --seed")
    if args.events is None:
        parser.error("--shape rsc15 needs --events N (the number of clicks, at least 2)")
    if args.events < 2:
        parser.error(f"--events: {args.events} is not allowed; use at least 2 (a session has 2 or more clicks)")
    items = RSC15_ITEMS if args.items is None else args.items
    if items < 2:
        parser.error(f"--items: {items} is not allowed; use at least 2")
    try:
        check_output(args.out, args.name, args.overwrite)
        sessions, item_ids, times = generate_rsc15(args.events, n_items=items, seed=args.seed)
        config = write_sessions(sessions, item_ids, times, args.out, args.name, args.overwrite)
    except RecBoleExtError as error:
        return bad_input("synth", error)  # exit 2; 1 for an output that could not be written
    n_sessions = int(sessions[-1])
    del sessions, times  # np.unique sorts a copy of the items: not on top of all three columns
    print(f"wrote {len(item_ids)} events in {n_sessions} sessions over {len(np.unique(item_ids))} items; "
          f"config: {config}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
