"""Searches behind the plugin RNNs' shipped defaults: one run per grid point and seed, to early stopping.

Each run trains ``--model`` on ``--dataset`` with the model's own YAML defaults plus the given
``key=value`` overrides and one point of the ``--grid`` (the cartesian product of every
``--grid key=v1,v2,...``), validating after every epoch, until early stopping (``--stopping_step``)
or the ``--epochs`` cap, then tests the checkpoint with the best valid score. Selection reads
validation only; test results are recorded for the pages, never used to choose::

    python -m benchmarks.defaults run --model=RNNCCE --dataset=ml-100k --train_mode=sequence \\
        --grid learning_rate=0.001,0.003,0.01,0.03 --seeds=2020 --out=benchmarks/results/defaults/rnncce.jsonl
    python -m benchmarks.defaults table benchmarks/results/defaults/rnncce.jsonl

``run`` appends one JSON line per finished run to ``--out`` (model, dataset, config files, every
override, seed, the valid result after every epoch with its wall time, the best epoch, test result,
epochs run, whether the run hit the cap, the load average) and skips runs already in the file, so
an interrupted search resumes. ``table`` prints one markdown row per setting (mean over seeds).
Wall times are recorded for completeness; on a shared machine they are not timing measurements.
"""

import argparse
import ast
import itertools
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def literal(text):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def parse_pairs(items, parser, what):
    pairs = {}
    for item in items or []:
        key, sep, text = item.partition("=")
        if not sep:
            parser.error(f"{what} {item!r} is not key=value")
        pairs[key] = text
    return pairs


def grid_points(grid):
    """[{key: value}] for every combination of the grid's values, in the order given."""
    keys = list(grid)
    values = [[literal(v) for v in _split_values(grid[k])] for k in keys]
    return [dict(zip(keys, combo)) for combo in itertools.product(*values)]


def _split_values(text):
    # a comma-separated list; a value that is itself a list is written in brackets: [a,b];[c,d]
    return text.split(";") if ";" in text else text.split(",")


def run_key(record):
    return json.dumps([record["model"], record["dataset"], record["config_files"], record["overrides"],
                       record["seed"]], sort_keys=True)


def read_records(path):
    path = Path(path)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def commit():
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def one_run(args, overrides, seed):
    import torch

    from recbole_ext.training import train_and_test

    torch.set_num_threads(args.threads)
    curve = []
    metric = args.valid_metric.lower()

    def on_epoch(epoch, score, result, seconds):
        curve.append({"epoch": epoch, "s": round(seconds, 1),
                      **{k: round(float(v), 5) for k, v in result.items()}})
        print(f"  epoch {epoch}: valid {metric} {curve[-1].get(metric, float('nan')):.4f} ({seconds:.0f} s)", flush=True)

    config = {
        **overrides, "epochs": args.epochs, "stopping_step": args.stopping_step, "valid_metric": args.valid_metric,
        "metrics": literal(args.metrics), "topk": literal(args.topk), "show_progress": False, "state": "ERROR",
        "seed": seed, "device": "cpu", "use_gpu": False,
    }
    if args.train_mode:
        config["train_mode"] = args.train_mode
    files = args.config_files.split() if args.config_files else None
    load_start = os.getloadavg()[0]
    started = time.time()
    result = train_and_test(args.model, args.dataset, files, config, on_epoch=on_epoch)
    best = max(curve, key=lambda p: p[metric]) if result["valid_score_bigger"] else min(curve, key=lambda p: p[metric])
    return {
        "best_epoch": best["epoch"], "best_valid": result["best_valid_result"], "test": result["test_result"],
        "epochs_run": result["epochs"], "hit_cap": result["epochs"] >= args.epochs, "curve": curve,
        "train_targets": result["train_targets"], "wall_s": round(time.time() - started, 1),
        "load_start": round(load_start, 2), "load_end": round(os.getloadavg()[0], 2),
    }


def cmd_run(args, parser):
    fixed = {k: literal(v) for k, v in parse_pairs(args.overrides, parser, "override").items()}
    grid = parse_pairs(args.grid, parser, "--grid")
    seeds = [int(s) for s in args.seeds.split(",")]
    done = {run_key(r) for r in read_records(args.out)}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    sys.argv = sys.argv[:1]  # RecBole's Config would read our flags as config keys
    for point in grid_points(grid) or [{}]:
        for seed in seeds:
            overrides = {**fixed, **point}
            if args.train_mode:
                overrides["train_mode"] = args.train_mode
            record = {"label": args.label, "model": args.model, "dataset": args.dataset, "config_files": args.config_files,
                      "overrides": overrides, "seed": seed, "epochs_cap": args.epochs,
                      "stopping_step": args.stopping_step, "valid_metric": args.valid_metric}
            if run_key(record) in done:
                print(f"skip (done): {overrides} seed {seed}", flush=True)
                continue
            try:
                record.update(one_run(args, overrides, seed))
            except Exception as error:  # a setting that fails (NaN loss, bad combination) is a result too
                record.update({"error": f"{type(error).__name__}: {error}"})
            record["commit"] = commit()
            with open(args.out, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(record) + "\n")
            m = args.valid_metric.lower()
            print(f"{overrides} seed {seed}: " + (record.get("error") or
                  f"best valid {m} {record['best_valid'].get(m, float('nan')):.4f} at epoch {record['best_epoch']} "
                  f"of {record['epochs_run']} (cap {args.epochs}), test {m} {record['test'].get(m, float('nan')):.4f}, "
                  f"{record['wall_s']} s"), flush=True)


def label_of(record, keys):
    return ", ".join(f"{k}={record['overrides'][k]}" for k in keys if k in record["overrides"]) or "defaults"


def cmd_table(args):
    records = [r for path in args.files for r in read_records(path)]
    if not records:
        print("no records")
        return
    metric = args.metric.lower() if args.metric else None
    varying = sorted({k for r in records for k in r["overrides"]
                      if len({json.dumps(x["overrides"].get(k)) for x in records}) > 1})
    groups = {}
    for record in records:
        key = (record["model"], record["dataset"], record["overrides"].get("train_mode", "?"), label_of(record, varying))
        groups.setdefault(key, []).append(record)
    print("| model | dataset | train_mode | setting | seeds | best valid " + (metric or "(valid_metric)") +
          " | best epoch | epochs run | at cap | " + f"best valid within {args.within} epochs | test " +
          (metric or "(valid_metric)") + " |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for (model, dataset, mode, label), runs in groups.items():
        ok = [r for r in runs if "error" not in r]
        if not ok:
            print(f"| {model} | {dataset} | {mode} | {label} | {len(runs)} | failed: {runs[0]['error'][:60]} | | | | | |")
            continue
        m = metric or ok[0]["valid_metric"].lower()

        def mean(values):
            return sum(values) / len(values)

        best = [r["best_valid"][m] for r in ok]
        early = [max(p[m] for p in r["curve"][:args.within]) for r in ok]
        test = [r["test"][m] for r in ok]
        seeds = ",".join(str(r["seed"]) for r in ok)
        print(f"| {model} | {dataset} | {mode} | {label} | {seeds} | {mean(best):.4f} "
              f"({' '.join(f'{b:.4f}' for b in best)}) | {' '.join(str(r['best_epoch']) for r in ok)} | "
              f"{' '.join(str(r['epochs_run']) for r in ok)} | {sum(r['hit_cap'] for r in ok)} | "
              f"{mean(early):.4f} | {mean(test):.4f} |")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="train the grid's runs, appending to --out")
    run.add_argument("overrides", nargs="*", help="key=value config overrides for every run (values read as literals)")
    run.add_argument("--model", required=True)
    run.add_argument("--dataset", required=True)
    run.add_argument("--config_files", default=None, help="space-separated config files")
    run.add_argument("--train_mode", default=None)
    run.add_argument("--grid", action="append", help="key=v1,v2,... (repeatable; the runs are the product)")
    run.add_argument("--seeds", default="2020")
    run.add_argument("--epochs", type=int, default=60, help="the cap; early stopping is meant to end every run")
    run.add_argument("--stopping_step", type=int, default=5)
    run.add_argument("--valid_metric", default="NDCG@10")
    run.add_argument("--metrics", default="['NDCG','Recall','MRR']")
    run.add_argument("--topk", default="[10]")
    run.add_argument("--threads", type=int, default=1)
    run.add_argument("--label", default=None, help="a name for the runs' arm (benchmarks/tying.py pairs arms by it)")
    run.add_argument("--out", required=True)
    table = sub.add_parser("table", help="one markdown row per setting")
    table.add_argument("files", nargs="+")
    table.add_argument("--metric", default=None, help="default: each run's valid_metric")
    table.add_argument("--within", type=int, default=12, help="also show the best valid score within this many epochs")
    args = parser.parse_args(argv)
    if args.command == "run":
        cmd_run(args, run)
    else:
        cmd_table(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
