"""Rating benchmark, RecBole side, nested: each outer fold tuned on its own training folds only.

    python -m benchmarks.ratings_nested inner  --out=benchmarks/results/ratings       # inner.tsv (once)
    python -m benchmarks.ratings_nested search --out=... --model=RatingMF --params_file=hyper/ratingmf.hyper [--key=value ...]

For every outer fold k of ``folds.tsv`` (benchmarks/ratings.py), ``search`` runs ``run_hyper.py``
(``--folds=5 --fold=k``: RecBole's RatingDataset trains on 8/9 of the four training folds and
validates on the other 1/9; fold k is never used for selection, only reported by the trials) with
the full grid of ``--params_file``, ``--trials_at_once`` trials side by side; takes the trial with the best valid RMSE and
the epoch of its best valid RMSE; then trains those parameters for that many epochs on all four
training folds (no validation set) and tests on fold k. Writes ``<Model>-nested.json`` (the
layout benchmarks/ratings.py's ``table`` step reads, plus each fold's chosen parameters) and each
fold's search table ``hyper-<Model>-fold<k>.md``.

``inner`` writes ``inner.tsv``: for every rating (folds.tsv's order) its role in each outer fold's
search (``t`` train, ``v`` valid, ``x`` the outer test fold), by RatingDataset.build's own rule
(checked against the datasets RecBole builds), so that benchmarks/ratings_surprise.py ``--tuned``
selects on exactly the same validation ratings.
"""

import argparse
import ast
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
ROLES = {"train": "t", "valid": "v", "test": "x"}


def literal(text):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def read_folds(out):
    with open(Path(out) / "folds.tsv", encoding="utf-8") as f:
        header = f.readline().strip("# \n")
        f.readline()
        rows = [line.rstrip("\n").split("\t") for line in f]
    settings = dict(item.split("=") for item in header.split())
    return int(settings["seed"]), int(settings["folds"]), rows


def inner_roles(folds, n_folds, seed, valid_share=1 / 9):
    """roles[k][i]: rating i's role in outer fold k's search, as RatingDataset.build splits it."""
    roles = []
    for fold in range(n_folds):
        role = np.full(len(folds), "t")
        role[folds == fold] = "x"
        rest = np.flatnonzero(folds != fold)
        rest = rest[np.random.default_rng([seed, fold]).permutation(len(rest))]
        role[rest[:int(round(valid_share * len(rest)))]] = "v"
        roles.append(role)
    return roles


def write_inner(args):
    import recbole_ext  # noqa: F401
    from recbole.config import Config
    from recbole.data import create_dataset

    seed, n_folds, rows = read_folds(args.out)
    folds = np.array([int(r[3]) for r in rows])
    roles = inner_roles(folds, n_folds, seed)
    for fold in range(n_folds):  # RecBole's own split of the same fold must hold the same ratings
        config = Config(model="RatingMF", dataset="ml-100k",
                        config_dict={"folds": n_folds, "fold": fold, "seed": seed, "state": "ERROR"})
        dataset = create_dataset(config)
        for part, name in zip(dataset.build(), ("train", "valid", "test")):
            inter = part.inter_feat
            got = sorted(zip(part.id2token(part.uid_field, inter[part.uid_field].numpy()),
                             part.id2token(part.iid_field, inter[part.iid_field].numpy())))
            want = sorted((rows[i][0], rows[i][1]) for i in np.flatnonzero(roles[fold] == ROLES[name]))
            if [tuple(map(str, g)) for g in got] != want:
                sys.exit(f"fold {fold}: RecBole's {name} split differs from the rule written to inner.tsv")
        print(f"fold {fold}: train {int((roles[fold] == 't').sum())}, valid {int((roles[fold] == 'v').sum())}, "
              f"test {int((roles[fold] == 'x').sum())} (equal to RecBole's split)", flush=True)
    target = Path(args.out) / "inner.tsv"
    with open(target.with_suffix(".part"), "w", encoding="utf-8") as f:
        f.write(f"# seed={seed} folds={n_folds}: role of each rating of folds.tsv (same order) in each outer "
                "fold's search: t train, v valid, x the outer test fold\n")
        f.write("\t".join(f"fold{k}" for k in range(n_folds)) + "\n")
        for i in range(len(folds)):
            f.write("\t".join(roles[k][i] for k in range(n_folds)) + "\n")
    os.replace(target.with_suffix(".part"), target)
    print(target)


def best_trial(experiment):
    """(params, best epoch, best valid RMSE, finished trials) of a run_hyper.py experiment."""
    with open(experiment / "results.csv", encoding="utf-8") as f:
        trials = [row for row in csv.DictReader(f)]
    finished = [row for row in trials if row["status"] == "finished"]
    best = min(finished, key=lambda row: float(row["best_valid_score"]))
    with open(next(experiment.glob(f"train_trial_{best['trial_id']}_*")) / "progress.csv", encoding="utf-8") as f:
        history = list(csv.DictReader(f))
    best_epoch = int(min(history, key=lambda row: float(row["valid_score"]))["epoch"])
    params = {k: literal(v) for k, v in best.items()
              if k not in ("trial_id", "best_valid_score", "epochs", "status", "error") and not k.startswith("test/")}
    return params, best_epoch, float(best["best_valid_score"]), len(finished), len(trials)


def search(args):
    from recbole_ext.cross_validation import train_fold
    import torch

    torch.set_num_threads(1)
    seed, n_folds, _ = read_folds(args.out)
    storage = Path(args.storage_path).resolve()
    partial = Path(args.out) / f"{args.model}-nested.partial.json"
    done = json.loads(partial.read_text(encoding="utf-8")) if partial.exists() else {}
    for fold in range(n_folds):
        if str(fold) in done:
            continue
        name = f"{args.model}-fold{fold}"
        experiment = storage / name
        if not (experiment / "results.csv").exists():
            command = [sys.executable, "run_hyper.py", f"--model={args.model}", "--dataset=ml-100k",
                       f"--params_file={args.params_file}", "--scheduler=fifo", f"--num_cpus={args.trials_at_once}",
                       f"--max_concurrent={args.trials_at_once}",
                       f"--storage_path={storage}", f"--name={name}", f"--folds={n_folds}", f"--fold={fold}",
                       f"--seed={seed}", "--state=ERROR", "--show_progress=False", *args.overrides]
            print(" ".join(command), flush=True)
            subprocess.run(command, cwd=REPO, check=True)
        params, best_epoch, valid_rmse, finished, trials = best_trial(experiment)
        (Path(args.out) / f"hyper-{name}.md").write_text((experiment / "results.md").read_text(encoding="utf-8"),
                                                          encoding="utf-8")
        fixed = {}
        for override in args.overrides:
            key, _, value = override.lstrip("-").partition("=")
            fixed[key] = literal(value)
        config = {**fixed, **params, "epochs": best_epoch, "folds": n_folds, "fold": fold, "seed": seed,
                  "eval_args": {"split": {"RS": [0.8, 0.0, 0.2]}, "group_by": "none", "order": "RO", "mode": "labeled"},
                  "show_progress": False, "state": "ERROR"}
        config = {k: v for k, v in config.items() if k not in ("dataset", "model")}
        result = train_fold(args.model, "ml-100k", None, config)
        done[str(fold)] = {
            "fold": fold, "rmse": result["test_result"]["rmse"], "mae": result["test_result"]["mae"],
            "rounded_mae": result["rounded_test_result"]["mae"], "fit_seconds": result["fit_seconds"],
            "epochs": best_epoch, "params": params, "inner_valid_rmse": valid_rmse,
            "trials": f"{finished} finished of {trials}",
        }
        print(f"{name}: {params}, epochs {best_epoch} (inner valid RMSE {valid_rmse:.4f}) -> test RMSE "
              f"{done[str(fold)]['rmse']:.4f}", flush=True)
        partial.write_text(json.dumps(done, indent=1), encoding="utf-8")
    record = {"name": f"{args.model} nested", "model": args.model, "params_file": args.params_file,
              "overrides": args.overrides, "folds": [done[str(k)] for k in range(n_folds)],
              "command": args.command}
    target = Path(args.out) / f"{args.model}-nested.json"
    target.with_suffix(".part").write_text(json.dumps(record, indent=1), encoding="utf-8")
    os.replace(target.with_suffix(".part"), target)
    partial.unlink()
    print(target)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("step", choices=["inner", "search"])
    parser.add_argument("--out", required=True)
    parser.add_argument("--model")
    parser.add_argument("--params_file")
    parser.add_argument("--storage_path", default="/tmp/ratings-nested-ray")
    parser.add_argument("--trials_at_once", type=int, default=1, help="trials run side by side (one CPU each)")
    args, overrides = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    args.overrides = overrides
    args.command = " ".join(["python -m benchmarks.ratings_nested", *(sys.argv[1:] if argv is None else argv)])
    sys.argv = sys.argv[:1]  # RecBole's Config reads --key=value from sys.argv
    {"inner": write_inner, "search": search}[args.step](args)


if __name__ == "__main__":
    main()
