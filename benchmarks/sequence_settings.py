"""Explore RNNCCE-sequence settings against a target valid NDCG@10, one short run per setting.

Trains RNNCCE (GRU, ``train_mode: sequence``) with ``benchmarks/sequence_training.py``'s GRU4Rec
settings plus the given ``key=value`` overrides, validating after every epoch, until ``--budget``
seconds of wall time have passed (or ``--epochs``), and prints one JSON line: the overrides, the first
wall time at which valid NDCG@10 reached ``--target`` (validation included, as the benchmark counts
it), the best epoch, the seconds per epoch, and then the curve (``epoch:wall_seconds:ndcg``)::

    python -m benchmarks.sequence_settings --threads=1 --budget=45 learning_rate=0.02 train_batch_size=1024

``--target`` defaults to RecBole GRU4Rec's best valid NDCG@10 in the last CPU run
(``benchmarks/results/sequence_training_cpu``).
"""

import argparse
import ast
import json
import sys


import torch  # noqa: E402

from benchmarks.sequence_training import GRU4REC_SETTINGS  # noqa: E402
from recbole_ext.training import train_and_test  # noqa: E402


class _OutOfTime(Exception):
    pass


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("overrides", nargs="*", help="key=value config overrides (values read as literals)")
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--config_files", default=None, help="space-separated config files (e.g. data_path, load_col)")
    parser.add_argument("--target", type=float, default=0.0702)
    parser.add_argument("--budget", type=float, default=60, help="stop after the first epoch ending past this many seconds")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--seed", type=int, default=2020)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: PyTorch's default)")
    args = parser.parse_args()
    overrides = {}
    for item in args.overrides:
        key, sep, text = item.partition("=")
        if not sep:
            parser.error(f"override {item!r} is not key=value")
        try:
            overrides[key] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            overrides[key] = text
    if args.threads:
        torch.set_num_threads(args.threads)
    sys.argv = sys.argv[:1]  # RecBole's Config would read our flags as config keys
    curve = []

    def on_epoch(epoch, score, _, seconds):
        curve.append((epoch, round(seconds, 1), round(score, 4)))
        if seconds > args.budget:
            raise _OutOfTime

    config = {
        **GRU4REC_SETTINGS, "rnn_type": "GRU", "train_mode": "sequence", **overrides, "epochs": args.epochs,
        "stopping_step": args.epochs, "valid_metric": "NDCG@10", "metrics": ["NDCG", "Recall"], "topk": [10],
        "show_progress": False, "device": "cpu", "use_gpu": False, "state": "WARNING", "seed": args.seed,
    }
    try:
        config_files = args.config_files.split() if args.config_files else None
        train_and_test("RNNCCE", args.dataset, config_files, config, on_epoch=on_epoch)
    except _OutOfTime:
        pass
    reached = next((seconds for _, seconds, value in curve if value >= args.target), None)
    best = max(curve, key=lambda point: point[2])
    print(json.dumps({"overrides": overrides, "target": args.target, "wall_s_to_target": reached,
                      "best": {"epoch": best[0], "wall_s": best[1], "valid_ndcg@10": best[2]},
                      "s_per_epoch_with_validation": round(curve[-1][1] / len(curve), 2)}))
    print(" ".join(f"{e}:{s}:{v}" for e, s, v in curve))


if __name__ == "__main__":
    main()
