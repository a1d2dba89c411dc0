"""Session-parallel training vs sequence mode vs the official GRU4Rec, in one run on one machine.

On generated sessions (``python -m recbole_ext.data.synth``): the last ``--test-share`` of the
sessions by start time are held out; the rest is a RecBole dataset. Every contender trains on the
same events: the training sequences of that dataset (RecBole's leave-one-out split keeps each
session's last one or two events for validation and test; those are left out for the official code
too). The contenders run in turn, ``--rounds`` times each, alternating (official, ours, ours, ...),
each from scratch for ``--epochs`` epochs, so a slow moment of the shared machine hits them alike.

Measured: training events (targets) per second of each epoch (RecBole's own trainer for ours: the
same ``Trainer._train_epoch`` that ``run_recbole`` calls; the official ``GRU4Rec.fit`` for it), and
Recall@20 / MRR@20 on the held-out sessions after the last epoch, evaluated by one function for
all: every event after the first of each test session is predicted from its prefix, ranked among
the contender's whole catalogue (rank = 1 + items scored higher, the official "standard" rank).
Test events whose item never occurs in training are dropped, as the official evaluation does.

The official code is used for measuring only, from a checkout outside this repository:

    git clone <the fetched mirror of hidasib/GRU4Rec_PyTorch_Official> /tmp/gru4rec_official
    nice -n 10 python -m benchmarks.session_speed --official=/tmp/gru4rec_official \\
        --out=benchmarks/results/speed/cpu

Writes ``OUT/runs.csv`` (one line per contender, round and epoch) and ``OUT/summary.md``.
"""

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

import recbole_ext  # noqa: E402,F401
from recbole.config import Config  # noqa: E402
from recbole.data import create_dataset, data_preparation  # noqa: E402
from recbole.data.interaction import Interaction  # noqa: E402
from recbole.utils import get_trainer, init_seed  # noqa: E402
from benchmarks.official import load_gru4rec  # noqa: E402
from recbole_ext.data.atomic import write_sessions  # noqa: E402
from recbole_ext.data.sequence import user_spans  # noqa: E402
from recbole_ext.model.dwellgru4rec import DwellGRU4Rec  # noqa: E402

NAME = "speed-train"


def ours(train_mode, batch, **extra):
    return {"train_mode": train_mode, "train_batch_size": batch, **extra}


def contenders(args):
    """{name: settings}, for each batch size the official code first (settings: its batch size)."""
    units = {"embedding_size": args.units, "hidden_size": args.units}
    runs = {}
    for batch in args.batch:
        runs[official_name(batch)] = {"batch": batch}
        for steps in args.session_steps:
            runs[f"session-b{batch}-k{steps}"] = ours("session", batch, session_steps=steps, **units)
        if not args.no_sequence:
            runs[f"sequence-b{batch}"] = ours("sequence", batch, **units)
    return runs


def official_name(batch):
    return f"official-b{batch}"


def batch_of(contender):
    return int(contender.split("-b")[1].split("-")[0])


def summary_lines(frame):
    """Per round: each contender's median events/s over the round's epochs, its ratio to the official
    code's at the same batch size in the same round, and its accuracy after the round's last epoch."""
    lines = []
    for round_index, runs in frame.groupby("round", sort=True):
        medians = runs.groupby("contender", sort=False)["events_per_s"].median()
        last = runs[runs["epoch"] == runs["epoch"].max()].set_index("contender")
        lines += [f"Round {round_index + 1}:", "",
                  "| contender | events/epoch | events/s (median of the round's epochs) | vs official, same batch size "
                  "| Recall@20 | MRR@20 |", "|---|---|---|---|---|---|"]
        for name, median in medians.items():
            ratio = median / medians[official_name(batch_of(name))]
            lines.append(f"| {name} | {last.loc[name, 'events']} | {median:.0f} | {ratio:.2f}x | "
                         f"{float(last.loc[name, 'recall@20']):.4f} | {float(last.loc[name, 'mrr@20']):.4f} |")
        lines.append("")
    return lines


def read_sessions(inter_file):
    frame = pd.read_csv(inter_file, sep="\t")
    frame.columns = [c.split(":")[0] for c in frame.columns]
    return frame


def split_by_time(frame, test_share):
    starts = frame.groupby("session_id")["timestamp"].min().sort_values(kind="stable")
    n_test = int(round(len(starts) * test_share))
    test_ids = set(starts.index[len(starts) - n_test:])
    is_test = frame["session_id"].isin(test_ids)
    return frame[~is_test], frame[is_test]


def generated_sessions(args, prefix):
    """A new folder holding ``--sessions`` generated sessions (``--items``, ``--seed``) whose training
    part is written as NAME's atomic files; returns it and the test sessions (the last
    ``--test-share`` of the sessions by start time)."""
    work = Path(tempfile.mkdtemp(prefix=prefix))
    subprocess.run([sys.executable, "-m", "recbole_ext.data.synth", "--out", str(work), "--name", "all",
                    "--sessions", str(args.sessions), "--items", str(args.items), "--seed", str(args.seed)],
                   check=True, cwd=REPO)
    train_frame, test = split_by_time(read_sessions(work / "all" / "all.inter"), args.test_share)
    write_sessions(train_frame["session_id"], train_frame["item_id"], train_frame["timestamp"], work, NAME)
    return work, test


def recbole_config(data_dir, args, settings):
    return Config(model="DwellGRU4Rec", dataset=NAME, config_dict={
        "data_path": str(data_dir), "USER_ID_FIELD": "session_id", "ITEM_ID_FIELD": "item_id",
        "TIME_FIELD": "timestamp", "load_col": {"inter": ["session_id", "item_id", "timestamp"]},
        "normalize_all": False, "dwell_mode": "none", "num_layers": 1, "dropout_prob": 0.0,
        "hidden_projection": args.hidden_projection,
        "loss_type": "XE-sampled", "n_sample": args.n_sample, "sample_alpha": args.sample_alpha,
        "learning_rate": args.learning_rate, "learner": args.learner, "MAX_ITEM_LIST_LENGTH": 50, "epochs": args.epochs,
        "show_progress": False, "state": "ERROR", "device": "cpu", "use_gpu": False, "seed": args.seed,
        "checkpoint_dir": tempfile.mkdtemp(prefix="speed-ckpt-"), **settings})


def training_sequences(data_dir, args):
    """RecBole's training sequences {session token: (item tokens, times)}, from its prefix samples."""
    config = recbole_config(data_dir, args, {"train_mode": "prefix"})
    dataset = create_dataset(config)
    inter = data_preparation(config, dataset)[0]._dataset.inter_feat
    users, lengths = inter["session_id"].numpy(), inter["item_length"].numpy()
    item_lists, items = inter["item_id_list"].numpy(), inter["item_id"].numpy()
    time_lists, times = inter["timestamp_list"].numpy(), inter["timestamp"].numpy()
    first, ends = user_spans(users)
    user_tokens, item_tokens = dataset.field2id_token["session_id"], dataset.field2id_token["item_id"]
    rows = []
    for start, end in zip(first, ends):
        head = lengths[start]
        sequence = np.r_[item_lists[start, :head], items[start:end]]
        seconds = np.r_[time_lists[start, :head], times[start:end]]
        rows.append(pd.DataFrame({"SessionId": int(user_tokens[users[start]]),
                                  "ItemId": item_tokens[sequence].astype(int), "Time": seconds}))
    return pd.concat(rows, ignore_index=True)


def test_batches(test, known_items, batch=256):
    """Padded test sessions (item tokens and their times), after dropping items unseen in training
    and sessions left shorter than two events."""
    test = test[test["item_id"].isin(known_items)].sort_values(["session_id", "timestamp"], kind="stable")
    sessions = [(g["item_id"].to_numpy(), g["timestamp"].to_numpy(dtype=np.float64))
                for _, g in test.groupby("session_id", sort=True)]
    sessions = [s for s in sessions if len(s[0]) >= 2]
    for start in range(0, len(sessions), batch):
        chunk = sessions[start:start + batch]
        width = max(len(items) for items, _ in chunk)
        tokens = np.zeros((len(chunk), width), dtype=np.int64)
        times = np.zeros((len(chunk), width), dtype=np.float64)
        for row, (items, seconds) in enumerate(chunk):
            tokens[row, :len(items)] = items
            times[row, :len(items)] = seconds
        yield tokens, times, np.array([len(items) for items, _ in chunk])


def evaluate(score_positions, to_ids, test, known_items, cutoff=20):
    """Recall@cutoff and MRR@cutoff over every test event after the first of its session.

    ``score_positions(ids [B, L], lengths, times [B, L])`` gives ``[B, L, n]`` scores: position t has
    read items 0..t (and their times: an item's dwell is known once the next one is clicked, so a
    prediction never sees its target's time) and scores the next item; ``to_ids`` maps item tokens
    to the contender's ids.
    """
    hits = reciprocal = events = 0.0
    with torch.no_grad():
        for tokens, times, lengths in test_batches(test, known_items):
            ids = torch.as_tensor(to_ids(tokens))
            scores = score_positions(ids, torch.as_tensor(lengths), torch.as_tensor(times, dtype=torch.float32))[:, :-1]
            targets = ids[:, 1:]
            real = torch.arange(targets.size(1))[None, :] < torch.as_tensor(lengths)[:, None] - 1
            target_scores = scores.gather(2, targets.unsqueeze(-1))
            ranks = 1 + (scores > target_scores).sum(-1)
            ranks = ranks[real].double()
            hits += float((ranks <= cutoff).sum())
            reciprocal += float(torch.where(ranks <= cutoff, 1.0 / ranks, 0.0).sum())
            events += float(real.sum())
    return hits / events, reciprocal / events, int(events)


def run_ours(data_dir, settings, args, test, known_items, round_index):
    config = recbole_config(data_dir, args, settings)
    init_seed(args.seed + round_index, True)
    dataset = create_dataset(config)
    train, _, _ = data_preparation(config, dataset)
    torch.set_num_threads(args.threads)
    model = DwellGRU4Rec(config, train._dataset)
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
    targets = train._dataset.inter_feat[train._dataset.target_field]
    events = int((targets > 0).sum())
    epochs = train_epochs(trainer, model, train, args.epochs)
    return events, epochs, evaluate_ours(model, dataset, test, known_items)


def train_epochs(trainer, model, train, epochs):
    """``epochs`` epochs of RecBole's own ``Trainer._train_epoch`` (no validation); each one's seconds."""
    seconds = []
    for epoch in range(epochs):
        model.train()
        start = time.perf_counter()
        trainer._train_epoch(train, epoch, show_progress=False)
        seconds.append(time.perf_counter() - start)
    model.eval()
    return seconds


def evaluate_ours(model, dataset, test, known_items):
    """:func:`evaluate` of a plugin RNN, each test session read in one pass (with its times)."""
    token_id = dataset.field2token_id["item_id"]
    lookup = np.vectorize(lambda token: token_id.get(str(token), 0))

    def score_positions(ids, lengths, times):
        batch = Interaction({"item_id_list": ids, "item_length": lengths, "timestamp_list": times})
        scores = model.forward(batch) @ model.output_weight.t() + model.output_bias
        scores[..., 0] = -torch.inf  # the padding item
        return scores

    return evaluate(score_positions, lookup, test, known_items)


def run_official(official_dir, batch, train_events, args, test, known_items, round_index):
    official = load_gru4rec(official_dir)
    torch.manual_seed(args.seed + round_index)
    np.random.seed(args.seed + round_index)
    torch.set_num_threads(args.threads)
    gru = official.GRU4Rec(layers=[args.units], loss="cross-entropy", batch_size=batch, dropout_p_embed=0.0,
                           dropout_p_hidden=0.0, learning_rate=0.05, momentum=0.0, sample_alpha=args.sample_alpha,
                           n_sample=args.n_sample, constrained_embedding=True, n_epochs=1,
                           device=torch.device("cpu"))
    # fit() starts from scratch, so all epochs run in one call; its own per-epoch log gives the
    # per-epoch times (parsed below) and our wall time of the whole call gives the total
    gru.n_epochs = args.epochs
    data = train_events.copy()
    start = time.perf_counter()
    log = _captured(lambda: gru.fit(data))
    total = time.perf_counter() - start
    epochs = [float(line.split("(")[1].split("s)")[0]) for line in log.splitlines() if line.startswith("Epoch")]
    events = int(len(train_events) - train_events["SessionId"].nunique())
    itemidmap = gru.data_iterator.itemidmap
    lookup = np.vectorize(lambda token: int(itemidmap.get(token, 0)))
    gru.model.eval()

    def score_positions(ids, lengths, times):
        hidden = [torch.zeros((ids.size(0), args.units))]
        scores = [gru.model.forward(ids[:, t], hidden, None, training=False) for t in range(ids.size(1))]
        return torch.stack(scores, 1)

    return events, epochs, total, evaluate(score_positions, lookup, test, known_items)


def _captured(call):
    import contextlib
    import io

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        call()
    return buffer.getvalue()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--official", required=True, help="checkout of hidasib/GRU4Rec_PyTorch_Official")
    parser.add_argument("--out", required=True)
    parser.add_argument("--sessions", type=int, default=20000)
    parser.add_argument("--items", type=int, default=400)
    parser.add_argument("--test-share", type=float, default=0.1)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--batch", type=int, nargs="+", default=[64],
                        help="batch sizes (rows); every contender runs at each, compared with the official at the same")
    parser.add_argument("--no-sequence", action="store_true", help="leave out ours in sequence mode")
    parser.add_argument("--session-steps", type=int, nargs="+", default=[1])
    parser.add_argument("--units", type=int, default=64)
    parser.add_argument("--n-sample", type=int, default=2048)
    parser.add_argument("--sample-alpha", type=float, default=0.5)
    parser.add_argument("--learner", default="adam", help="ours: RecBole's learner (the official uses its own Adagrad)")
    parser.add_argument("--learning-rate", type=float, default=0.001, help="ours (the official: 0.05, its default)")
    parser.add_argument("--hidden-projection", action="store_true",
                        help="ours: RecBole GRU4Rec's dense layer before the output (default: none, as the official)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)
    out = Path(args.out).resolve()  # RecBole writes log/ into the working folder: run from the work folder
    if out.exists() and any(out.iterdir()) and not args.overwrite:
        parser.error(f"--out {out} is not empty; pass --overwrite to replace its results")
    out.mkdir(parents=True, exist_ok=True)
    work, test = generated_sessions(args, "session-speed-")
    os.chdir(work)  # RecBole's log/ folders
    train_events = training_sequences(work, args)
    known_items = set(train_events["ItemId"].tolist())

    rows, load_at_start = [], os.getloadavg()[0]
    for round_index in range(args.rounds):
        for name, settings in contenders(args).items():
            if "batch" in settings:
                events, epochs, total, (recall, mrr, n_test) = run_official(
                    Path(args.official), settings["batch"], train_events, args, test, known_items, round_index)
            else:
                events, epochs, (recall, mrr, n_test) = run_ours(work, settings, args, test, known_items, round_index)
            for epoch, seconds in enumerate(epochs):
                rows.append({"contender": name, "round": round_index, "epoch": epoch + 1, "events": events,
                             "seconds": round(seconds, 3), "events_per_s": round(events / seconds, 1),
                             "recall@20": round(recall, 4) if epoch == len(epochs) - 1 else "",
                             "mrr@20": round(mrr, 4) if epoch == len(epochs) - 1 else "",
                             "test_events": n_test})
            print(f"round {round_index} {name}: {[round(events / s) for s in epochs]} events/s, "
                  f"Recall@20 {recall:.4f} MRR@20 {mrr:.4f} ({n_test} test events)", flush=True)

    frame = pd.DataFrame(rows)
    staged = out / "runs.csv.tmp"
    frame.to_csv(staged, index=False)
    os.replace(staged, out / "runs.csv")
    command = " ".join(sys.argv[1:] if argv is None else argv)
    lines = [f"# Session-parallel training vs the official GRU4Rec ({args.sessions} generated sessions)", "",
             f"Machine: {os.cpu_count()} CPU cores ({platform.processor() or platform.machine()}), torch "
             f"{torch.__version__}, {args.threads} thread(s) per contender; load average (1 min) "
             f"{load_at_start:.2f} at the start, {os.getloadavg()[0]:.2f} at the end.",
             f"Command: `python -m benchmarks.session_speed {command}`", "", *summary_lines(frame)]
    staged = out / "summary.md.tmp"
    staged.write_text("\n".join(lines) + "\n", encoding="utf-8")
    os.replace(staged, out / "summary.md")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
