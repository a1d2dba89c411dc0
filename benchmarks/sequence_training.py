"""Whole-sequence training vs RecBole's per-prefix training, in one run on one machine.

Trains RecBole's GRU4Rec (per-prefix samples, as RecBole does it), RNNCCE in ``prefix`` mode and
RNNCCE in ``sequence`` mode with equal embedding / hidden sizes, and writes into ``--out``:
``curves.csv`` (valid NDCG@10 after every epoch against wall time), ``summary.md`` (seconds per
training epoch and their ratio, wall time to reach GRU4Rec's best valid NDCG@10, test NDCG@10) and
``curves.png``.

    python benchmarks/sequence_training.py --dataset=ml-100k --epochs=40 --out=benchmarks/results/sequence_training

On a CPU shared with other jobs, ``--threads=1`` gives steadier epoch times: with PyTorch's default
thread pool, a contended core stalls every parallel step of every run.
"""

import argparse
import csv
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

import recbole_ext  # noqa: E402,F401
from recbole_ext.run import train_and_test  # noqa: E402

SIZES = {"embedding_size": 64, "hidden_size": 128, "num_layers": 1, "dropout_prob": 0.3}
RUNS = {
    "GRU4Rec": ("GRU4Rec", {"train_batch_size": 2048}),
    "RNNCCE-prefix": ("RNNCCE", {"rnn_type": "GRU", "train_mode": "prefix", "train_batch_size": 2048}),
    "RNNCCE-sequence": ("RNNCCE", {"rnn_type": "GRU", "train_mode": "sequence", "train_batch_size": 2048}),
}


def train_and_time(model_name, overrides, args):
    curve = []
    config_files = args.config_files.split() if args.config_files else None
    result = train_and_test(model_name, args.dataset, config_files, config_dict={
        **SIZES, **overrides, "epochs": args.epochs, "stopping_step": args.stopping_step,
        "valid_metric": "NDCG@10", "metrics": ["NDCG", "Recall"], "topk": [10], "learning_rate": 0.001,
        "show_progress": False, "device": args.device, "use_gpu": args.device != "cpu", "state": "WARNING",
        "seed": args.seed,
    }, on_epoch=lambda epoch, score, _, seconds: curve.append((epoch, seconds, score)))
    return {"epoch_seconds": result["train_seconds"], "curve": curve, "test_ndcg": result["test_result"]["ndcg@10"],
            "train_targets": result["train_targets"]}


def first_time_reaching(curve, score):
    return next((seconds for _, seconds, value in curve if value >= score), None)


def write_outputs(results, args):
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "curves.csv.tmp", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["run", "epoch", "wall_seconds", "valid_ndcg@10"])
        for name, result in results.items():
            writer.writerows([name, *point] for point in result["curve"])
    os.replace(out / "curves.csv.tmp", out / "curves.csv")

    baseline = results["GRU4Rec"]
    base_epoch = sum(baseline["epoch_seconds"]) / len(baseline["epoch_seconds"])
    base_best = max(v for _, _, v in baseline["curve"])
    base_reach = first_time_reaching(baseline["curve"], base_best)
    lines = [
        f"Dataset {args.dataset}, device {args.device} ({torch.get_num_threads()} CPU threads), sizes {SIZES}, "
        f"up to {args.epochs} epochs (stopping_step {args.stopping_step}), seed {args.seed}.",
        "",
        "| run | training targets / epoch | s / training epoch | epoch-time ratio vs GRU4Rec | epochs run | best valid NDCG@10 "
        "| wall s to GRU4Rec's best | time ratio | test NDCG@10 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, result in results.items():
        seconds = sum(result["epoch_seconds"]) / len(result["epoch_seconds"])
        reach = first_time_reaching(result["curve"], base_best)
        lines.append(
            f"| {name} | {result['train_targets']} | {seconds:.2f} | {base_epoch / seconds:.1f}× | "
            f"{len(result['curve'])} | {max(v for _, _, v in result['curve']):.4f} | "
            f"{'not reached' if reach is None else f'{reach:.1f}'} | "
            f"{'–' if reach is None else f'{base_reach / reach:.1f}×'} | {result['test_ndcg']:.4f} |"
        )
    (out / "summary.md.tmp").write_text("\n".join(lines) + "\n")
    os.replace(out / "summary.md.tmp", out / "summary.md")
    _plot(results, out)
    print("\n".join(lines))


def _plot(results, out):
    try:
        import matplotlib
    except ImportError:
        print("matplotlib is not installed: no curves.png (curves.csv has the same data)")
        return

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for name, result in results.items():
        ax.plot([s for _, s, _ in result["curve"]], [v for _, _, v in result["curve"]], marker=".", label=name)
    ax.set_xscale("log")
    ax.set_xlabel("wall time (s, log scale)")
    ax.set_ylabel("valid NDCG@10")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "curves.png", dpi=120)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--stopping_step", type=int, default=5)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--config_files", default=None, help="space-separated config files (e.g. data_path, load_col)")
    parser.add_argument("--seed", type=int, default=2020)
    parser.add_argument("--runs", default=",".join(RUNS), help="comma-separated subset of: " + ", ".join(RUNS))
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: PyTorch's default)")
    parser.add_argument("--out", default="benchmarks/results/sequence_training")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    sys.argv = sys.argv[:1]  # RecBole's Config would read our flags as config keys
    names = [name.strip() for name in args.runs.split(",")]
    unknown = [name for name in names if name not in RUNS]
    if unknown or "GRU4Rec" not in names:
        parser.error(f"--runs must include 'GRU4Rec' and name only {list(RUNS)}; got {unknown or names}")
    results = {}
    for name in names:
        model_name, overrides = RUNS[name]
        results[name] = train_and_time(model_name, overrides, args)
        print(f"{name}: {results[name]['epoch_seconds'][0]:.2f} s first epoch", flush=True)
    write_outputs(results, args)


if __name__ == "__main__":
    main()
