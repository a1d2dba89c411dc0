"""The seed's weight-tying (and KL) comparison under its own protocol, each arm at its own learning rate.

    python -m benchmarks.tying run --out=benchmarks/results/tying --workers=2
    python -m benchmarks.tying summary benchmarks/results/tying > benchmarks/results/tying/summary.md

``run`` trains RNNCCE on ml-100k under ``user_split`` (benchmarks/configs/ml-100k-user-split.yaml)
with ``benchmarks.defaults run``: every run to early stopping (``--stopping_step`` validations
without a better valid SPS@10) under an epoch cap meant never to be reached. Two stages:

1. **Selection**: every arm at every ``--rates`` value on the ``--select-seeds``.
2. **Confirmation**: every arm on the ``--seeds`` at its chosen rate, the one with the best mean
   validation SPS@10 over the selection seeds (validation only: the test users never enter the
   choice; the selection seeds' runs at that rate count as well).

A seed sets the user split and the initialisation, so each seed is a different split. Each arm's runs
append to ``OUT/runs-<arm>.jsonl`` (its log: ``OUT/log-<arm>.txt``); ``--workers`` arms train at once.
A finished run is skipped when ``run`` is started again (a run that failed is kept as a record with
its error: delete its line to run it again).

``summary`` prints each arm's validation scores per rate, its chosen rate, how many runs reached the
epoch cap, the test metrics at the chosen rate (mean ± std over seeds), and for each pair A:B the mean
difference over the seeds both have with its 95 % t interval, the paired t-test, the Wilcoxon
signed-rank test and Cohen's d_z (mean difference / std of the differences).
"""

import argparse
import math
import subprocess
import sys
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from benchmarks.defaults import read_records

REPO = Path(__file__).resolve().parents[1]
ARMS = {
    "tied50": ["embedding_size=50", "hidden_size=50"],
    "untied50": ["embedding_size=50", "hidden_size=50", "weight_tying=False"],
    "tied100": ["embedding_size=100", "hidden_size=100"],
    "untied100": ["embedding_size=100", "hidden_size=100", "weight_tying=False"],
    "tied200": ["embedding_size=200", "hidden_size=200"],
    "untied200": ["embedding_size=200", "hidden_size=200", "weight_tying=False"],
    "KL100": ["embedding_size=100", "hidden_size=100", "loss_type=KL"],
}
PAIRS = "tied50:untied50,tied100:untied100,tied200:untied200,KL100:tied100"
METRICS = "['SPS','Recall','NDCG','UserCoverage','CorrectItemCoverage','BlockbusterShare']"


def records_of(out):
    return [r for path in sorted(Path(out).glob("runs-*.jsonl")) for r in read_records(path) if "error" not in r]


def choose_rates(records, select, selection_seeds=None):
    """``{arm: (chosen rate, {rate: (mean valid, seeds)})}`` from the runs on the selection seeds
    (all seeds run at every rate of the arm, when ``selection_seeds`` is None)."""
    by_arm = defaultdict(lambda: defaultdict(dict))
    for r in records:
        by_arm[r["label"]][r["overrides"]["learning_rate"]][r["seed"]] = r
    chosen = {}
    for arm, rates in by_arm.items():
        common = set.intersection(*(set(runs) for runs in rates.values()))
        if selection_seeds is not None:
            common &= set(selection_seeds)
        if not common:
            continue
        table = {rate: (float(np.mean([runs[s]["best_valid"][select] for s in common])), sorted(common))
                 for rate, runs in rates.items()}
        chosen[arm] = (max(table, key=lambda rate: table[rate][0]), table)
    order = [arm for arm in ARMS if arm in chosen] + sorted(set(chosen) - set(ARMS))
    return by_arm, {arm: chosen[arm] for arm in order}


def _job(args, arm, rates, seeds):
    command = [sys.executable, "-m", "benchmarks.defaults", "run", "--model=RNNCCE", "--dataset=ml-100k",
               "--config_files=benchmarks/configs/ml-100k-user-split.yaml", "--train_mode=sequence",
               f"--label={arm}", *ARMS[arm], "--grid", "learning_rate=" + ",".join(map(str, rates)),
               "--seeds=" + ",".join(map(str, seeds)), f"--epochs={args.epochs}",
               f"--stopping_step={args.stopping_step}", "--valid_metric=SPS@10", f"--metrics={METRICS}",
               "--topk=[10]", f"--out={Path(args.out) / f'runs-{arm}.jsonl'}"]
    with open(Path(args.out) / f"log-{arm}.txt", "a", encoding="utf-8") as log:
        subprocess.run(command, cwd=REPO, check=True, stdout=log, stderr=subprocess.STDOUT)


def _run_all(args, jobs):
    """Each job ``(arm, rates, seeds)`` as ``--workers`` at once allow."""
    with ThreadPoolExecutor(args.workers) as pool:
        list(pool.map(lambda job: _job(args, *job), jobs))


def cmd_run(args):
    Path(args.out).mkdir(parents=True, exist_ok=True)
    rates = [float(r) for r in args.rates.split(",")]
    selection = [int(s) for s in args.select_seeds.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    _run_all(args, [(arm, rates, selection) for arm in ARMS])
    _, chosen = choose_rates(records_of(args.out), "sps@10", selection)
    rest = [s for s in seeds if s not in selection]
    if rest:
        _run_all(args, [(arm, [chosen[arm][0]], rest) for arm in ARMS])


def paired(a, b):
    from scipy import stats

    d = np.asarray(a) - np.asarray(b)
    n = len(d)
    mean = float(d.mean())
    sd = float(d.std(ddof=1)) if n > 1 else float("nan")
    half = stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n) if n > 1 else float("nan")
    t_p = float(stats.ttest_rel(a, b).pvalue) if n > 1 and sd > 0 else float("nan")
    w_p = float(stats.wilcoxon(a, b).pvalue) if n > 1 and np.any(d != 0) else float("nan")
    return {"n": n, "mean_diff": mean, "ci": (mean - half, mean + half), "t_p": t_p, "wilcoxon_p": w_p,
            "d_z": mean / sd if sd > 0 else float("nan")}


def cmd_summary(args):
    records = records_of(args.out)
    selection = [int(s) for s in args.select_seeds.split(",")]
    by_arm, chosen = choose_rates(records, args.select, selection)
    metrics = args.metrics.split(",")
    rates_all = sorted({rate for _, table in chosen.values() for rate in table})
    print(f"## Learning rate per arm (mean validation {args.select} over selection seeds {args.select_seeds})\n")
    print("| arm | " + " | ".join(f"lr {rate}" for rate in rates_all) +
          " | chosen | seeds at the chosen rate | runs at the epoch cap | best epochs at the chosen rate |")
    print("|---|" + "---|" * len(rates_all) + "---|---|---|---|")
    for arm, (rate, table) in chosen.items():
        runs = by_arm[arm][rate]
        at_cap = sum(r["hit_cap"] for rr in by_arm[arm].values() for r in rr.values())
        total = sum(len(rr) for rr in by_arm[arm].values())
        cells = [f"{table[r][0]:.4f}" if r in table else "" for r in rates_all]
        print(f"| {arm} | " + " | ".join(cells) + f" | {rate} | {len(runs)} | {at_cap} of {total} | "
              f"{' '.join(str(runs[s]['best_epoch']) for s in sorted(runs))} |")
    print("\n## Test, each arm at its chosen rate (mean ± std over seeds)\n")
    print("| arm | seeds | " + " | ".join(metrics) + " |")
    print("|---|---|" + "---|" * len(metrics))
    for arm, (rate, _) in chosen.items():
        runs = list(by_arm[arm][rate].values())
        cells = [f"{np.mean([r['test'][m] for r in runs]):.4f} ± "
                 f"{np.std([r['test'][m] for r in runs], ddof=1) if len(runs) > 1 else 0:.4f}" for m in metrics]
        print(f"| {arm} | {len(runs)} | " + " | ".join(cells) + " |")
    print("\n## Paired comparisons (A − B over the seeds both have, test users)\n")
    print("| A | B | metric | seeds | mean A − B | 95 % CI | paired t p | Wilcoxon p | d_z |")
    print("|---|---|---|---|---|---|---|---|---|")
    for pair in args.pairs.split(","):
        a, b = pair.split(":")
        if a not in chosen or b not in chosen:
            print(f"| {a} | {b} | (arm not run) | | | | | | |")
            continue
        runs_a, runs_b = by_arm[a][chosen[a][0]], by_arm[b][chosen[b][0]]
        seeds = sorted(set(runs_a) & set(runs_b))
        for m in metrics:
            res = paired([runs_a[s]["test"][m] for s in seeds], [runs_b[s]["test"][m] for s in seeds])
            print(f"| {a} | {b} | {m} | {res['n']} | {res['mean_diff']:+.4f} | [{res['ci'][0]:+.4f}, "
                  f"{res['ci'][1]:+.4f}] | {res['t_p']:.3g} | {res['wilcoxon_p']:.3g} | {res['d_z']:+.2f} |")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="the selection runs, then the confirmation runs at each arm's rate")
    run.add_argument("--out", required=True)
    run.add_argument("--rates", default="0.003,0.01")
    run.add_argument("--select-seeds", default="2020,2021,2022")
    run.add_argument("--seeds", default=",".join(str(s) for s in range(2020, 2030)))
    run.add_argument("--epochs", type=int, default=100, help="the cap; early stopping is meant to end every run")
    run.add_argument("--stopping_step", type=int, default=5)
    run.add_argument("--workers", type=int, default=2)
    summary = sub.add_parser("summary", help="markdown tables of the runs in OUT")
    summary.add_argument("out")
    summary.add_argument("--select-seeds", default="2020,2021,2022")
    summary.add_argument("--select", default="sps@10")
    summary.add_argument("--metrics", default="sps@10,recall@10")
    summary.add_argument("--pairs", default=PAIRS)
    args = parser.parse_args(argv)
    {"run": cmd_run, "summary": cmd_summary}[args.command](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
