"""Rating benchmark, Surprise side: BaselineOnly, SVD, SVD++ and NMF on the folds of folds.tsv.

    .venv-bench/bin/python -m benchmarks.ratings_surprise --out=benchmarks/results/ratings [--algorithms=SVD,NMF]

Runs in its own venv (benchmarks/requirements-ratings.txt); reads the folds that
benchmarks/ratings.py wrote from RecBole's loading of ml-100k, fits each algorithm with its default
settings (``random_state=0``) on four folds and tests on the fifth. Surprise clips its estimates to
the rating scale [1, 5], as the rating models clip theirs. Writes ``surprise-<name>.json`` in the
layout benchmarks/ratings.py's ``table`` step reads.

``--tuned`` (nested, as benchmarks/ratings_nested.py tunes the rating models): for every outer fold,
Surprise's own ``GridSearchCV`` over the algorithm's grid in ``GRIDS`` (as many points as the rating
models' grids) selects on the validation ratings inner.tsv gives that fold (the very ratings
RecBole's RatingDataset validates on; the search trains on the rest of the four training folds);
the best parameters (by validation RMSE) are then fitted on all four training folds and tested on
the outer fold, which never takes part in the selection. Writes ``surprise-<name>-tuned.json``
with each fold's chosen parameters::

    .venv-bench/bin/python -m benchmarks.ratings_surprise --out=benchmarks/results/ratings --tuned --algorithms=SVD,SVDpp
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from surprise import NMF, SVD, BaselineOnly, Dataset, Reader, SVDpp
from surprise.model_selection import GridSearchCV

ALGORITHMS = {
    "BaselineOnly": lambda: BaselineOnly(verbose=False),
    "SVD": lambda: SVD(random_state=0),
    "SVDpp": lambda: SVDpp(random_state=0),
    "NMF": lambda: NMF(random_state=0),
}

# Nested tuning: 9 points each, as RatingMF's and RatingNNMF's grids (hyper/ratingmf.hyper). Surprise
# has no early stopping, so the number of epochs is in the grid (the rating models' searches pick the
# epoch by validation), around Surprise's default of 20 (SVD++'s grid stays at 10-30: one SVD++ epoch
# costs ~1.3 s here, 45 fits); the other settings are Surprise's defaults (SVD: 100 factors, lr 0.005;
# SVD++: 20 factors, lr 0.007, its cache_ratings=True: the same fit, faster).
GRIDS = {
    "SVD": (SVD, {"n_epochs": [20, 40, 80], "reg_all": [0.05, 0.1, 0.15], "random_state": [0]}),
    "SVDpp": (SVDpp, {"n_epochs": [10, 20, 30], "reg_all": [0.02, 0.05, 0.1], "random_state": [0],
                      "cache_ratings": [True]}),
}


class FixedSplit:
    """One train/validation split for GridSearchCV: the search's training and validation ratings."""

    def __init__(self, train, valid, reader):
        self.train, self.valid, self.reader = train, valid, reader

    def split(self, data):
        yield Dataset.load_from_df(_frame(self.train), self.reader).build_full_trainset(), self.valid

    def get_n_folds(self):
        return 1


def tuned(args, ratings, folds, reader):
    with open(Path(args.out) / "inner.tsv", encoding="utf-8") as f:
        f.readline()
        f.readline()
        roles = np.array([line.rstrip("\n").split("\t") for line in f])
    if len(roles) != len(ratings):
        sys.exit("inner.tsv does not match folds.tsv: run python -m benchmarks.ratings_nested inner first")
    for name in args.algorithms.split(","):
        algo_class, grid = GRIDS[name]
        records = []
        for fold in range(folds.max() + 1):
            role = roles[:, fold]
            if not np.array_equal(role == "x", folds == fold):
                sys.exit(f"inner.tsv's fold {fold} is not folds.tsv's")
            search = GridSearchCV(algo_class, grid, measures=["rmse"], refit=False, n_jobs=1,
                                  cv=FixedSplit([ratings[k] for k in np.flatnonzero(role == "t")],
                                                [ratings[k] for k in np.flatnonzero(role == "v")], reader))
            search.fit(None)
            params = search.best_params["rmse"]
            trials = [{"params": {k: v for k, v in p.items() if k not in ("random_state", "cache_ratings")},
                       "valid_rmse": float(r)}
                      for p, r in zip(search.cv_results["params"], search.cv_results["mean_test_rmse"])]
            record = _fit_and_test(algo_class(**params), ratings, folds, fold, reader)
            record.update({"params": {k: v for k, v in params.items() if k not in ("random_state", "cache_ratings")},
                           "inner_valid_rmse": float(search.best_score["rmse"]), "trials": trials})
            print(name, "tuned", record, flush=True)
            records.append(record)
        _write(args.out, f"surprise-{name}-tuned", f"Surprise {name} nested", records)


def _fit_and_test(algorithm, ratings, folds, fold, reader):
    """Fit on every fold but ``fold``, test on ``fold``: RMSE, MAE, rounded MAE, fit seconds."""
    train = [ratings[k] for k in np.flatnonzero(folds != fold)]
    test = [ratings[k] for k in np.flatnonzero(folds == fold)]
    trainset = Dataset.load_from_df(_frame(train), reader).build_full_trainset()
    started = time.perf_counter()
    algorithm.fit(trainset)
    fit_seconds = time.perf_counter() - started
    estimates = np.array([p.est for p in algorithm.test(test)])
    truth = np.array([r for _, _, r in test])
    return {
        "fold": fold,
        "rmse": float(np.sqrt(np.mean((estimates - truth) ** 2))),
        "mae": float(np.mean(np.abs(estimates - truth))),
        "rounded_mae": float(np.mean(np.abs(np.round(estimates) - truth))),
        "fit_seconds": fit_seconds,
    }


def _write(out, stem, name, records):
    target = Path(out) / f"{stem}.json"
    staging = target.with_suffix(".json.part")
    staging.write_text(json.dumps({"name": name, "folds": records, "command": " ".join(["python", *sys.argv])},
                                  indent=1), encoding="utf-8")
    os.replace(staging, target)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True)
    parser.add_argument("--algorithms", default=None, help="default: all four, or with --tuned SVD,SVDpp")
    parser.add_argument("--tuned", action="store_true", help="nested tuning on inner.tsv's validation ratings")
    args = parser.parse_args(argv)
    args.algorithms = args.algorithms or ",".join(GRIDS if args.tuned else ALGORITHMS)
    with open(Path(args.out) / "folds.tsv", encoding="utf-8") as f:
        f.readline()
        f.readline()
        rows = [line.rstrip("\n").split("\t") for line in f]
    ratings = [(u, i, float(r)) for u, i, r, _ in rows]
    folds = np.array([int(row[3]) for row in rows])
    reader = Reader(rating_scale=(1, 5))
    if args.tuned:
        return tuned(args, ratings, folds, reader)
    for name in args.algorithms.split(","):
        records = []
        for fold in range(folds.max() + 1):
            record = _fit_and_test(ALGORITHMS[name](), ratings, folds, fold, reader)
            print(name, record, flush=True)
            records.append(record)
        _write(args.out, f"surprise-{name}", f"Surprise {name}", records)


def _frame(rows):
    import pandas as pd

    return pd.DataFrame(rows, columns=["user", "item", "rating"])


if __name__ == "__main__":
    main()
