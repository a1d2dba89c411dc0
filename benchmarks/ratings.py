"""Rating benchmark, RecBole side: write the shared folds, cross-validate a rating model, build the table.

    python -m benchmarks.ratings folds  --out=benchmarks/results/ratings            # folds.tsv (once)
    python -m benchmarks.ratings model  --out=... --name=RatingMF --model=RatingMF [--config_files=a.yaml] [--key=value ...]
    python -m benchmarks.ratings tuned  --out=... --model=RatingMF --experiment=ray_results/RatingMF  # tuned config
    python -m benchmarks.ratings table  --out=...                                    # table.md from every *.json

``folds.tsv`` holds RecBole's ml-100k as RecBole loads it (user, item, rating in loading order) with the
fold :func:`recbole_ext.data.rating_dataset.fold_assignment` gives each rating for ``--folds`` and ``--seed``;
benchmarks/ratings_surprise.py reads it, and ``model`` checks that every RecBole test fold holds
exactly the ratings the file puts in that fold before it trains.

``tuned`` turns a finished ``run_hyper.py`` experiment into a config file: the parameters of the
trial with the best valid RMSE, ``epochs`` = the epoch at which that trial's valid RMSE was best,
and ``eval_args`` RS [0.8, 0.0, 0.2], so each fold trains that many epochs on all four training
folds (the hyper search trained on a random 80 % too) with no validation set, as Surprise does.
"""

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
import torch

import recbole_ext  # noqa: F401  (registers the rating models)
from recbole.config import Config
from recbole.data import create_dataset
from recbole_ext.data.rating_dataset import fold_assignment
from recbole_ext.cross_validation import cross_validate, format_summary

COLUMNS = ("rmse", "mae", "rounded_mae", "fit_seconds")


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("step", choices=["folds", "model", "tuned", "table"])
    parser.add_argument("--experiment", help="run_hyper.py experiment folder (tuned step)")
    parser.add_argument("--out", required=True, help="results folder")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=2020)
    parser.add_argument("--name", help="row name (model step)")
    parser.add_argument("--model", help="RatingMF, RatingNNMF or RatingMLP (model step)")
    parser.add_argument("--config_files", default=None)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1: the machine is shared)")
    args, overrides = parser.parse_known_args(argv)
    args.overrides = dict(arg[2:].split("=", 1) for arg in overrides)
    return args


def loaded_ratings(model, seed, config_files=None, overrides=None):
    """(users, items, ratings) as RecBole's RatingDataset holds them before the split, as tokens."""
    config = Config(model=model, dataset="ml-100k", config_file_list=config_files,
                    config_dict={**(overrides or {}), "seed": seed, "state": "ERROR"})
    dataset = create_dataset(config)
    inter = dataset.inter_feat
    users = dataset.id2token(dataset.uid_field, inter[dataset.uid_field].to_numpy())
    items = dataset.id2token(dataset.iid_field, inter[dataset.iid_field].to_numpy())
    return users, items, inter[dataset.label_field].to_numpy()


def write_folds(args):
    users, items, ratings = loaded_ratings("RatingMF", args.seed)
    folds = fold_assignment(len(ratings), args.folds, args.seed)
    target = Path(args.out) / "folds.tsv"
    staging = target.with_suffix(".tsv.part")
    with open(staging, "w", encoding="utf-8") as f:
        f.write(f"# seed={args.seed} folds={args.folds}\nuser_id\titem_id\trating\tfold\n")
        for row in zip(users, items, ratings, folds):
            f.write(f"{row[0]}\t{row[1]}\t{row[2]:g}\t{row[3]}\n")
    os.replace(staging, target)
    print(f"{target}: {len(ratings)} ratings, fold sizes {np.bincount(folds).tolist()}")


def read_folds(out):
    with open(Path(out) / "folds.tsv", encoding="utf-8") as f:
        header = f.readline()
        f.readline()
        rows = [line.rstrip("\n").split("\t") for line in f]
    return header, rows


def run_model(args):
    header, rows = read_folds(args.out)
    config_files = args.config_files.split() if args.config_files else None
    overrides = {"seed": args.seed, "show_progress": False, "state": "ERROR", **_literal(args.overrides)}
    users, items, _ = loaded_ratings(args.model, args.seed, config_files, overrides)
    expected = [(r[0], r[1], int(r[3])) for r in rows]
    actual = list(zip(users, items, fold_assignment(len(users), args.folds, args.seed)))
    if expected != actual:
        sys.exit(f"{args.name}: RecBole's folds differ from {args.out}/folds.tsv ({header.strip()})")
    target = Path(args.out) / f"{args.name}.json"

    def report(result):
        print(f"{args.name} fold {result['fold']}: {result['test_result']} rounded {result['rounded_test_result']} "
              f"epochs {result['epochs']} fit {result['fit_seconds']:.1f} s", flush=True)

    result = cross_validate(args.model, "ml-100k", args.folds, config_files, overrides, on_fold=report)
    print(format_summary(result), flush=True)
    record = {
        "name": args.name, "model": args.model, "config_files": config_files, "overrides": args.overrides,
        "folds": [
            {"fold": r["fold"], "rmse": r["test_result"]["rmse"], "mae": r["test_result"]["mae"],
             "rounded_mae": r["rounded_test_result"]["mae"], "fit_seconds": r["fit_seconds"], "epochs": r["epochs"]}
            for r in result["folds"]
        ],
        "command": " ".join(["python", *sys.argv]),
    }
    staging = target.with_suffix(".json.part")
    staging.write_text(json.dumps(record, indent=1), encoding="utf-8")
    os.replace(staging, target)


def _literal(overrides):
    import ast

    values = {}
    for key, value in overrides.items():
        try:
            values[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            values[key] = value
    return values


def write_tuned_config(args):
    import csv

    experiment = Path(args.experiment)
    with open(experiment / "results.csv", encoding="utf-8") as f:
        trials = [row for row in csv.DictReader(f) if row["status"] == "finished"]
    best = min(trials, key=lambda row: float(row["best_valid_score"]))
    with open(next(experiment.glob(f"train_trial_{best['trial_id']}_*")) / "progress.csv", encoding="utf-8") as f:
        history = list(csv.DictReader(f))
    best_epoch = min(history, key=lambda row: float(row["valid_score"]))["epoch"]
    params = {k: v for k, v in best.items()
              if k not in ("trial_id", "best_valid_score", "test/rmse", "test/mae", "epochs", "status", "error")}
    lines = [f"# {args.model} tuned by run_hyper.py ({experiment.name}: {len(trials)} finished trials); best valid RMSE "
             f"{best['best_valid_score']} at epoch {best_epoch} (trial {best['trial_id']})."]
    lines += [f"{key}: {value}" for key, value in params.items()]
    lines += [f"epochs: {best_epoch}",
              "eval_args: {split: {RS: [0.8, 0.0, 0.2]}, group_by: none, order: RO, mode: labeled}"]
    target = Path(args.out) / f"{args.model}-tuned.yaml"
    target.write_text("\n".join(lines) + "\n", encoding="utf-8")
    (Path(args.out) / f"hyper-{args.model}.md").write_text((experiment / "results.md").read_text(encoding="utf-8"),
                                                          encoding="utf-8")
    print(target.read_text(encoding="utf-8"))


ORDER = ("surprise-BaselineOnly", "surprise-SVD", "surprise-SVDpp", "surprise-NMF", "RatingMF", "RatingMF-tuned",
         "RatingNNMF", "RatingNNMF-tuned", "RatingMLP", "RatingMLP-tuned")


def write_table(args):
    """table.md: mean ± std over folds (ddof=0) per run, then each fold's RMSE side by side."""
    paths = {path.stem: path for path in Path(args.out).glob("*.json")}
    records = [json.loads(paths[stem].read_text(encoding="utf-8"))
               for stem in sorted(paths, key=lambda stem: (ORDER.index(stem) if stem in ORDER else len(ORDER), stem))]
    lines = ["| model | RMSE | MAE | rounded MAE | fit s / fold | epochs |", "|---|---|---|---|---|---|"]
    for record in records:
        cells = []
        for column in COLUMNS:
            values = np.array([f[column] for f in record["folds"]])
            digits = 1 if column == "fit_seconds" else 4
            cells.append(f"{values.mean():.{digits}f} ± {values.std():.{digits}f}")
        epochs = sorted({f["epochs"] for f in record["folds"] if "epochs" in f})
        cells.append("–" if not epochs else str(epochs[0]) if len(epochs) == 1 else f"{epochs[0]}–{epochs[-1]}")
        lines.append(f"| {record['name']} | " + " | ".join(cells) + " |")
    n_folds = len(records[0]["folds"])
    lines += ["", "| RMSE per fold | " + " | ".join(f"fold {k}" for k in range(n_folds)) + " |",
              "|---|" + "---|" * n_folds]
    for record in records:
        lines.append(f"| {record['name']} | " + " | ".join(f"{f['rmse']:.4f}" for f in record["folds"]) + " |")
    target = Path(args.out) / "table.md"
    target.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    torch.set_num_threads(args.threads)
    sys.argv = sys.argv[:1]  # RecBole's Config reads --key=value from sys.argv: the overrides go in as config_dict
    Path(args.out).mkdir(parents=True, exist_ok=True)
    {"folds": write_folds, "model": run_model, "tuned": write_tuned_config, "table": write_table}[args.step](args)


if __name__ == "__main__":
    main()
