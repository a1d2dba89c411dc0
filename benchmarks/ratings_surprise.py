"""Rating benchmark, Surprise side: BaselineOnly, SVD, SVD++ and NMF on the folds of folds.tsv.

    .venv-bench/bin/python -m benchmarks.ratings_surprise --out=benchmarks/results/ratings [--algorithms=SVD,NMF]

Runs in its own venv (benchmarks/requirements-ratings.txt); reads the folds that
benchmarks/ratings.py wrote from RecBole's loading of ml-100k, fits each algorithm with its default
settings (``random_state=0``) on four folds and tests on the fifth. Surprise clips its estimates to
the rating scale [1, 5], as the rating models clip theirs. Writes ``surprise-<name>.json`` in the
layout benchmarks/ratings.py's ``table`` step reads.
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from surprise import NMF, SVD, BaselineOnly, Dataset, Reader, SVDpp

ALGORITHMS = {
    "BaselineOnly": lambda: BaselineOnly(verbose=False),
    "SVD": lambda: SVD(random_state=0),
    "SVDpp": lambda: SVDpp(random_state=0),
    "NMF": lambda: NMF(random_state=0),
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True)
    parser.add_argument("--algorithms", default=",".join(ALGORITHMS))
    args = parser.parse_args(argv)
    with open(Path(args.out) / "folds.tsv", encoding="utf-8") as f:
        f.readline()
        f.readline()
        rows = [line.rstrip("\n").split("\t") for line in f]
    ratings = [(u, i, float(r)) for u, i, r, _ in rows]
    folds = np.array([int(row[3]) for row in rows])
    reader = Reader(rating_scale=(1, 5))
    for name in args.algorithms.split(","):
        records = []
        for fold in range(folds.max() + 1):
            train = [ratings[k] for k in np.flatnonzero(folds != fold)]
            test = [ratings[k] for k in np.flatnonzero(folds == fold)]
            trainset = Dataset.load_from_df(_frame(train), reader).build_full_trainset()
            algorithm = ALGORITHMS[name]()
            started = time.perf_counter()
            algorithm.fit(trainset)
            fit_seconds = time.perf_counter() - started
            estimates = np.array([p.est for p in algorithm.test(test)])
            truth = np.array([r for _, _, r in test])
            record = {
                "fold": fold,
                "rmse": float(np.sqrt(np.mean((estimates - truth) ** 2))),
                "mae": float(np.mean(np.abs(estimates - truth))),
                "rounded_mae": float(np.mean(np.abs(np.round(estimates) - truth))),
                "fit_seconds": fit_seconds,
            }
            print(name, record, flush=True)
            records.append(record)
        target = Path(args.out) / f"surprise-{name}.json"
        staging = target.with_suffix(".json.part")
        staging.write_text(json.dumps({"name": f"Surprise {name}", "folds": records,
                                       "command": " ".join(["python", *sys.argv])}, indent=1), encoding="utf-8")
        os.replace(staging, target)


def _frame(rows):
    import pandas as pd

    return pd.DataFrame(rows, columns=["user", "item", "rating"])


if __name__ == "__main__":
    main()
