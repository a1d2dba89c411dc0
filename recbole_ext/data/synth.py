"""A seeded generator of session logs in which dwell time carries signal.

    python -m recbole_ext.data.synth --out data --name synth-sessions --sessions 3000 --seed 0

What it plants: every session has an *intent topic*. An event is an intent click (an item of that
topic, Zipf-popular within the topic) with a long dwell, or, with probability ``--noise``, a noise
click (any item) with a short dwell. The next item is drawn from the intent topic regardless of what
was clicked last, so the dwell of the items already seen tells which of them reveal the intent:
a model that reads dwell can discount noise clicks, one that does not cannot. Dwells are log-normal
(intent median ``--intent_dwell`` s, noise median ``--noise_dwell`` s). Times are seconds since the
start of the log (float32 keeps whole seconds exactly for ~194 days).
"""

import argparse
import sys

import numpy as np

from recbole_ext.data.atomic import write_sessions


def generate(n_sessions, n_items=400, topic_size=20, noise=0.35, intent_dwell=90.0, noise_dwell=6.0,
             mean_length=8, seed=0):
    """Return (session ids, item ids, times) as numpy arrays, sorted by session then time."""
    rng = np.random.default_rng(seed)
    n_topics = n_items // topic_size
    topic_popularity = 1.0 / np.arange(1, n_topics + 1)
    topic_popularity /= topic_popularity.sum()
    within_topic = 1.0 / np.arange(1, topic_size + 1) ** 0.8
    within_topic /= within_topic.sum()

    lengths = np.clip(rng.geometric(1.0 / (mean_length - 1), n_sessions) + 1, 2, 40)
    session_ids = np.repeat(np.arange(1, n_sessions + 1), lengths)
    n_events = len(session_ids)
    intents = np.repeat(rng.choice(n_topics, n_sessions, p=topic_popularity), lengths)
    is_noise = rng.random(n_events) < noise
    intent_items = intents * topic_size + rng.choice(topic_size, n_events, p=within_topic)
    noise_items = rng.integers(0, n_items, n_events)
    items = np.where(is_noise, noise_items, intent_items) + 1  # RecBole tokens; 0 stays free

    dwell = np.where(
        is_noise,
        rng.lognormal(np.log(noise_dwell), 0.6, n_events),
        rng.lognormal(np.log(intent_dwell), 0.5, n_events),
    )
    starts = np.repeat(rng.uniform(0, 30 * 86400, n_sessions), lengths)
    # an event happens when the previous one's dwell ends: time = start + dwells before it
    elapsed = np.cumsum(dwell) - dwell
    first = np.r_[0, np.cumsum(lengths)[:-1]]
    times = np.round(starts + elapsed - np.repeat(elapsed[first], lengths))
    return session_ids, items, times


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="output folder; the dataset goes to OUT/NAME/")
    parser.add_argument("--name", default="synth-sessions", help="dataset name (default: synth-sessions)")
    parser.add_argument("--sessions", type=int, default=3000, help="number of sessions (default: 3000)")
    parser.add_argument("--items", type=int, default=400, help="number of items (default: 400)")
    parser.add_argument("--noise", type=float, default=0.35, help="share of noise clicks (default: 0.35)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.sessions < 1:
        parser.error(f"--sessions: {args.sessions} is not allowed; use a positive integer")
    if args.items < 20:
        parser.error(f"--items: {args.items} is not allowed; use at least 20 (one topic holds 20 items)")
    if not 0 <= args.noise < 1:
        parser.error(f"--noise: {args.noise} is not allowed; use a share in [0, 1)")
    sessions, items, times = generate(args.sessions, n_items=args.items, noise=args.noise, seed=args.seed)
    config = write_sessions(sessions, items, times, args.out, args.name)
    print(f"wrote {len(items)} events in {args.sessions} sessions; config: {config}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
