"""A plugin RNN with its shipped defaults against the official GRU4Rec, after the same epochs.

The data and the official side are ``benchmarks/session_speed.py``'s: generated sessions, the last
``--test-share`` of them by start time held out, every contender trained on the same events (the
training sequences of RecBole's leave-one-out split of the rest), the official GRU4Rec at its own
settings (Adagrad 0.05, sampled cross-entropy, 2048 negatives, ``--units`` GRU units, batch
``--official-batch``). Ours is ``--model`` with nothing but its YAML defaults, ``train_mode`` and the
``label=key:value:...`` contenders' keys, trained by RecBole's own ``Trainer._train_epoch`` for the
same ``--epochs`` (no validation, no early stopping). Every contender is scored by one function:
``benchmarks.session_speed.evaluate`` (each event after the first of a test session predicted from
its prefix, ranked among the whole catalogue; ours reads the test sessions' real times).

    python -m benchmarks.session_defaults --official=/tmp/gru4rec_official --out=benchmarks/results/defaults/session-vs-official \\
        --epochs=3 session=train_mode:session sequence=train_mode:sequence

Writes ``OUT/runs.csv`` (contender, round, Recall@20, MRR@20, seconds) and ``OUT/summary.md``. The
seconds are wall times on whatever machine ran it; on a shared machine they are not timing results.
"""

import argparse
import ast
import os
import platform
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import torch

import recbole_ext  # noqa: F401
from recbole.config import Config
from recbole.data import create_dataset, data_preparation
from recbole.utils import get_model, get_trainer, init_seed
from benchmarks.session_speed import NAME, evaluate_ours, generated_sessions, run_official, train_epochs, training_sequences



def parse_contender(text):
    label, _, rest = text.partition("=")
    settings = {}
    parts = rest.split(":") if rest else []
    if len(parts) % 2:
        raise SystemExit(f"contender {text!r}: give label=key:value[:key:value...]")
    for key, value in zip(parts[::2], parts[1::2]):
        try:
            settings[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            settings[key] = value
    return label, settings


def run_ours(model_name, data_dir, settings, args, test, known_items, round_index):
    config = Config(model=model_name, dataset=NAME, config_dict={
        "data_path": str(data_dir), "USER_ID_FIELD": "session_id", "ITEM_ID_FIELD": "item_id",
        "TIME_FIELD": "timestamp", "load_col": {"inter": ["session_id", "item_id", "timestamp"]},
        "normalize_all": False, "epochs": args.epochs, "show_progress": False, "state": "ERROR", "device": "cpu",
        "use_gpu": False, "seed": args.seed + round_index, "checkpoint_dir": tempfile.mkdtemp(prefix="defaults-ckpt-"),
        **settings})
    init_seed(config["seed"], True)
    dataset = create_dataset(config)
    train, _, _ = data_preparation(config, dataset)
    torch.set_num_threads(args.threads)
    init_seed(config["seed"], True)
    model = get_model(model_name)(config, train._dataset)
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
    seconds = train_epochs(trainer, model, train, args.epochs)
    used = {k: config[k] for k in ("train_mode", "learning_rate", "train_batch_size", "loss_type", "learner")}
    return seconds, evaluate_ours(model, dataset, test, known_items), used


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("contenders", nargs="+", help="label=key:value[:key:value...] (ours: the defaults plus these)")
    parser.add_argument("--official", required=True, help="checkout of hidasib/GRU4Rec_PyTorch_Official")
    parser.add_argument("--out", required=True)
    parser.add_argument("--model", default="DwellGRU4Rec")
    parser.add_argument("--sessions", type=int, default=20000)
    parser.add_argument("--items", type=int, default=400)
    parser.add_argument("--test-share", type=float, default=0.1)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--official-batch", type=int, default=64, help="the official's batch_size (its default: 64)")
    parser.add_argument("--units", type=int, default=64, help="the official's GRU units")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)
    command = " ".join(sys.argv[1:] if argv is None else argv)
    contenders = dict(parse_contender(text) for text in args.contenders)
    out = Path(args.out).resolve()
    if out.exists() and any(out.iterdir()) and not args.overwrite:
        parser.error(f"--out {out} is not empty; pass --overwrite to replace its results")
    out.mkdir(parents=True, exist_ok=True)
    work, test = generated_sessions(args, "session-defaults-")
    sys.argv = sys.argv[:1]  # RecBole's Config would read our flags as config keys
    os.chdir(work)  # RecBole's log/ folders
    # session_speed's helpers read these: the data-only config of its training_sequences, and the
    # official's settings (its defaults, GRU units --units, sampled cross-entropy)
    speed_args = SimpleNamespace(hidden_projection=False, n_sample=2048, sample_alpha=0.5, learning_rate=0.05,
                                 learner="adagrad", epochs=args.epochs, seed=args.seed, units=args.units,
                                 threads=args.threads)
    train_events = training_sequences(work, speed_args)
    known_items = set(train_events["ItemId"].tolist())
    rows, load_at_start = [], os.getloadavg()[0]
    for round_index in range(args.rounds):
        _, seconds, total, (recall, mrr, n_test) = run_official(
            Path(args.official), args.official_batch, train_events, speed_args, test, known_items, round_index)
        rows.append({"contender": f"official-b{args.official_batch}", "round": round_index, "recall@20": round(recall, 4),
                     "mrr@20": round(mrr, 4), "test_events": n_test, "epoch_seconds": " ".join(f"{s:.1f}" for s in seconds),
                     "settings": "official defaults, layers [%d]" % args.units})
        print(rows[-1], flush=True)
        for label, settings in contenders.items():
            seconds, (recall, mrr, n_test), used = run_ours(args.model, work, settings, args, test, known_items, round_index)
            rows.append({"contender": label, "round": round_index, "recall@20": round(recall, 4), "mrr@20": round(mrr, 4),
                         "test_events": n_test, "epoch_seconds": " ".join(f"{s:.1f}" for s in seconds),
                         "settings": " ".join(f"{k}={v}" for k, v in used.items())})
            print(rows[-1], flush=True)
    frame = pd.DataFrame(rows)
    frame.to_csv(out / "runs.csv.tmp", index=False)
    os.replace(out / "runs.csv.tmp", out / "runs.csv")
    lines = [f"# {args.model} defaults vs the official GRU4Rec ({args.sessions} generated sessions, {args.epochs} epochs)", "",
             f"Machine: {os.cpu_count()} CPU cores ({platform.processor() or platform.machine()}), torch {torch.__version__}, "
             f"{args.threads} thread(s); load average (1 min) {load_at_start:.2f} at the start, {os.getloadavg()[0]:.2f} at the end "
             "(seconds are wall times on a shared machine, not timing results).",
             f"Command: `python -m benchmarks.session_defaults {command}`", "",
             "| contender | round | Recall@20 | vs official | MRR@20 | vs official | settings |", "|---|---|---|---|---|---|---|"]
    for round_index, runs in frame.groupby("round"):
        official = runs.iloc[0]
        for _, row in runs.iterrows():
            lines.append(f"| {row['contender']} | {round_index + 1} | {row['recall@20']:.4f} | "
                         f"{row['recall@20'] / official['recall@20']:.3f}x | {row['mrr@20']:.4f} | "
                         f"{row['mrr@20'] / official['mrr@20']:.3f}x | {row['settings']} |")
    (out / "summary.md.tmp").write_text("\n".join(lines) + "\n", encoding="utf-8")
    os.replace(out / "summary.md.tmp", out / "summary.md")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
