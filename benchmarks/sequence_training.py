"""Whole-sequence training vs RecBole's per-prefix training vs a raw PyTorch loop, in one run on one machine.

Trains RecBole's GRU4Rec (per-prefix samples, as RecBole does it) and RNNCCE (GRU) in ``prefix`` mode
and in ``sequence`` mode (at GRU4Rec's settings and at its own learning rate; ``--runs`` picks), each
to early stopping on valid NDCG@10, then times the
``raw-loop``: RNNCCE's sequence-mode network and training windows in a plain PyTorch loop
(``benchmarks/raw_sequence_loop.py``), its epochs alternating with epochs of the same model trained by
RecBole's trainer, so that the two share the machine's load. Writes into ``--out``:

- ``curves.csv``: valid NDCG@10 after every epoch against wall time (validation included);
- ``epochs.csv``: the seconds of every training epoch of every run (``paired`` rows: the alternation);
- ``summary.md``: seconds per training epoch and their ratios, wall time to reach GRU4Rec's best
  valid NDCG@10, test NDCG@10, the command and the machine;
- ``curves.png`` (with matplotlib).

    python -m benchmarks.sequence_training --dataset=ml-100k --epochs=40 --threads=1 --out=benchmarks/results/sequence_training

``--out`` must be empty or absent unless ``--overwrite`` is given; results are written to a staging
folder beside it and renamed into place at the end. On a CPU shared with other jobs, ``--threads=1``
gives steadier epoch times: with PyTorch's default thread pool, a contended core stalls every
parallel step of every run.
"""

import argparse
import csv
import os
import platform
import shlex
import shutil
import statistics
import sys
import time
from pathlib import Path


import torch  # noqa: E402
from recbole.utils import init_seed  # noqa: E402

import recbole_ext  # noqa: E402,F401
from benchmarks.raw_sequence_loop import RawRNNNextItem, train_epoch, training_windows  # noqa: E402
from recbole_ext.training import prepared_run, train_and_test  # noqa: E402

# GRU4Rec's settings (RecBole's defaults but the sizes), also used by RNNCCE-*-gru4rec-settings
SIZES = {"embedding_size": 64, "hidden_size": 128, "num_layers": 1, "dropout_prob": 0.3}
GRU4REC_SETTINGS = {**SIZES, "train_batch_size": 2048, "learning_rate": 0.001}
# RNNCCE-sequence: GRU4Rec's settings but a 10x larger Adam step: sequence mode makes one update per
# 2048 targets where GRU4Rec makes one per 2048 prefixes. Of the steps tried on the 2-core CPU, 0.01
# reached GRU4Rec's best valid NDCG@10 with both seeds tried (2020, 2021); 0.02 was sooner with 2020
# but did not learn with 2021 (docs/benchmarks/ml-100k-speed.md)
SEQUENCE_SETTINGS = {**GRU4REC_SETTINGS, "learning_rate": 0.01}
RUNS = {
    "GRU4Rec": ("GRU4Rec", GRU4REC_SETTINGS),
    "RNNCCE-prefix": ("RNNCCE", {**GRU4REC_SETTINGS, "rnn_type": "GRU", "train_mode": "prefix"}),
    "RNNCCE-sequence-gru4rec-settings": ("RNNCCE", {**GRU4REC_SETTINGS, "rnn_type": "GRU", "train_mode": "sequence"}),
    "RNNCCE-sequence": ("RNNCCE", {**SEQUENCE_SETTINGS, "rnn_type": "GRU", "train_mode": "sequence"}),
}
RAW_LOOP = "raw-loop"
DEFAULT_RUNS = ("GRU4Rec", "RNNCCE-prefix", "RNNCCE-sequence-gru4rec-settings", "RNNCCE-sequence", RAW_LOOP)


def run_config(overrides, args):
    return {
        **overrides, "epochs": args.epochs, "stopping_step": args.stopping_step, "valid_metric": "NDCG@10",
        "metrics": ["NDCG", "Recall"], "topk": [10], "show_progress": False, "device": args.device,
        "use_gpu": args.device != "cpu", "state": "WARNING", "seed": args.seed,
    }


def config_files(args):
    return args.config_files.split() if args.config_files else None


def train_and_time(model_name, overrides, args):
    curve = []
    result = train_and_test(
        model_name, args.dataset, config_files(args), config_dict=run_config(overrides, args),
        on_epoch=lambda epoch, score, _, seconds: curve.append((epoch, seconds, score)),
    )
    return {"epoch_seconds": result["train_seconds"], "curve": curve, "test_ndcg": result["test_result"]["ndcg@10"],
            "train_targets": result["train_targets"]}


def paired_epoch_times(overrides, args):
    """Training-epoch seconds of the same RNNCCE run through RecBole's trainer and through the raw
    loop, epochs alternating (RecBole, raw, RecBole, raw, ...), both from a fresh model."""
    with prepared_run("RNNCCE", args.dataset, config_files(args), run_config(overrides, args)) as (config, trainer, splits):
        train_data = splits[0]
        windows, windows_per_batch = training_windows(train_data)
        windows = {name: values.to(config["device"]) for name, values in windows.items()}
        init_seed(config["seed"], config["reproducibility"])
        raw = RawRNNNextItem.like(config, trainer.model.n_items).to(config["device"])
        optimizer = torch.optim.Adam(raw.parameters(), lr=config["learning_rate"], weight_decay=config["weight_decay"] or 0)
        generator = torch.Generator().manual_seed(config["seed"])
        recbole, plain = [], []
        for epoch in range(args.paired_epochs):
            recbole.append(_timed(lambda k=epoch: trainer._train_epoch(train_data, k), config["device"]))
            plain.append(_timed(lambda: train_epoch(raw, optimizer, windows, windows_per_batch, generator), config["device"]))
        return {"recbole": recbole, "raw": plain, "windows_per_batch": windows_per_batch,
                "batches": -(-len(windows["lengths"]) // windows_per_batch)}


def _timed(step, device):
    start = time.perf_counter()
    step()
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - start


def first_time_reaching(curve, score):
    return next((seconds for _, seconds, value in curve if value >= score), None)


def write_outputs(results, paired, args, out, started_load):
    out.mkdir(parents=True)
    with open(out / "curves.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["run", "epoch", "wall_seconds", "valid_ndcg@10"])
        for name, result in results.items():
            writer.writerows([name, *point] for point in result["curve"])
    with open(out / "epochs.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["phase", "run", "epoch", "train_seconds"])
        for name, result in results.items():
            writer.writerows(["full", name, k + 1, s] for k, s in enumerate(result["epoch_seconds"]))
        if paired is not None:
            for name, key in ((f"{args.raw_against} (RecBole trainer)", "recbole"), (RAW_LOOP, "raw")):
                writer.writerows(["paired", name, k + 1, s] for k, s in enumerate(paired[key]))
    lines = summary_lines(results, paired, args, started_load)
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    _plot(results, out)
    print("\n".join(lines))


def summary_lines(results, paired, args, started_load):
    baseline = results["GRU4Rec"]
    base_epoch = statistics.median(baseline["epoch_seconds"])
    base_best = max(v for _, _, v in baseline["curve"])
    base_reach = first_time_reaching(baseline["curve"], base_best)
    lines = [
        f"Command: `{' '.join(shlex.quote(a) for a in args.command)}`",
        "",
        (
            f"Dataset {args.dataset}, device {args.device}; machine: {os.cpu_count()} CPU cores "
            f"({platform.processor() or platform.machine()}), {torch.get_num_threads()} torch thread(s) per contender, "
            f"torch {torch.__version__}; load average (1 min) {started_load:.2f} at the start, "
            f"{os.getloadavg()[0]:.2f} at the end. Up to {args.epochs} epochs (stopping_step {args.stopping_step}), "
            f"seed {args.seed}."
        ),
        "",
        "Settings: " + "; ".join(f"{name}: {RUNS[name][1]}" for name in results),
        "",
        "s / training epoch: median over the run's epochs. Wall s: since training started, validation included.",
        "",
        (
            "| run | training targets / epoch | s / training epoch | GRU4Rec's epoch time / this one | epochs run "
            "| best valid NDCG@10 | wall s to GRU4Rec's best | GRU4Rec's time / this one | test NDCG@10 |"
        ),
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, result in results.items():
        seconds = statistics.median(result["epoch_seconds"])
        reach = first_time_reaching(result["curve"], base_best)
        lines.append(
            f"| {name} | {result['train_targets']} | {seconds:.2f} | {base_epoch / seconds:.1f}× | "
            f"{len(result['curve'])} | {max(v for _, _, v in result['curve']):.4f} | "
            f"{'not reached' if reach is None else f'{reach:.1f}'} | "
            f"{'–' if reach is None else f'{base_reach / reach:.1f}×'} | {result['test_ndcg']:.4f} |"
        )
    if paired is not None:
        ours, raw = statistics.median(paired["recbole"]), statistics.median(paired["raw"])
        lines += [
            "",
            (
                f"Raw loop against RecBole's trainer, same network, settings and windows as {args.raw_against} "
                f"({paired['batches']} batches of {paired['windows_per_batch']} windows per epoch), "
                f"{args.paired_epochs} epochs each, alternating:"
            ),
            "",
            "| contender | s / training epoch (median) | every epoch |",
            "|---|---|---|",
            f"| {args.raw_against} (RecBole trainer) | {ours:.2f} | {', '.join(f'{s:.2f}' for s in paired['recbole'])} |",
            f"| {RAW_LOOP} | {raw:.2f} | {', '.join(f'{s:.2f}' for s in paired['raw'])} |",
            "",
            f"RecBole trainer / raw loop: **{ours / raw:.2f}×**.",
        ]
    return lines


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


def publish(staging, out):
    """Rename ``staging`` to ``out``, replacing an earlier ``out`` (the caller checked --overwrite)."""
    earlier = out.with_name(f".{out.name}.replaced")
    if out.exists():
        os.replace(out, earlier)
    os.replace(staging, out)
    if earlier.exists():
        shutil.rmtree(earlier)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="ml-100k")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--stopping_step", type=int, default=5)
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--config_files", default=None, help="space-separated config files (e.g. data_path, load_col)")
    parser.add_argument("--seed", type=int, default=2020)
    parser.add_argument("--runs", default=",".join(DEFAULT_RUNS),
                        help="comma-separated subset of: " + ", ".join([*RUNS, RAW_LOOP]))
    parser.add_argument("--raw_against", default="RNNCCE-sequence",
                        help="the sequence-mode run whose settings the raw loop takes (default: RNNCCE-sequence)")
    parser.add_argument("--paired_epochs", type=int, default=5,
                        help="raw-loop epochs, each after one epoch of the same model in RecBole's trainer")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: PyTorch's default)")
    parser.add_argument("--out", default="benchmarks/results/sequence_training")
    parser.add_argument("--overwrite", action="store_true", help="replace the results already in --out")
    args = parser.parse_args()
    args.command = ["python", *sys.argv]
    names = [name.strip() for name in args.runs.split(",")]
    unknown = [name for name in names if name not in RUNS and name != RAW_LOOP]
    if unknown or "GRU4Rec" not in names:
        parser.error(f"--runs must include 'GRU4Rec' and name only {[*RUNS, RAW_LOOP]}; got {unknown or names}")
    if RAW_LOOP in names and RUNS.get(args.raw_against, ("", {}))[1].get("train_mode") != "sequence":
        parser.error(f"--raw_against must name a sequence-mode run of {list(RUNS)}; got {args.raw_against!r}")
    if args.paired_epochs < 1:
        parser.error(f"--paired_epochs must be >= 1; got {args.paired_epochs}")
    out = Path(args.out)
    if out.exists() and any(out.iterdir()) and not args.overwrite:
        parser.error(f"--out {out} already holds results; pass --overwrite to replace them or choose another --out")
    staging = out.with_name(f".{out.name}.staging")
    if staging.exists():
        parser.error(f"{staging} exists: another run is writing there, or one was interrupted (remove it yourself)")
    if args.threads:
        torch.set_num_threads(args.threads)
    sys.argv = sys.argv[:1]  # RecBole's Config would read our flags as config keys
    started_load = os.getloadavg()[0]
    results = {}
    for name in names:
        if name == RAW_LOOP:
            continue
        model_name, overrides = RUNS[name]
        results[name] = train_and_time(model_name, overrides, args)
        print(f"{name}: {results[name]['epoch_seconds'][0]:.2f} s first epoch", flush=True)
    paired = paired_epoch_times(RUNS[args.raw_against][1], args) if RAW_LOOP in names else None
    out.parent.mkdir(parents=True, exist_ok=True)
    write_outputs(results, paired, args, staging, started_load)
    publish(staging, out)


if __name__ == "__main__":
    main()
