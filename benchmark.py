"""Compare models × seeds on one dataset and config: tables (markdown, CSV, LaTeX), paired t-tests
against a baseline, and plots of the valid metric against epochs and wall time.

    python benchmark.py --models=RNNCCE,RNNCCE_untied=RNNCCE:weight_tying=False,GRU4Rec \\
        --dataset=ml-100k --seeds=3 --baseline=GRU4Rec --out=results/ml-100k [--jobs=4] [--config_files=...] [--key=value ...]

``LABEL=Model:key=value:...`` runs a model with its own overrides under LABEL. ``--seeds=N`` runs
seeds 2020..2020+N-1 (or give a list: ``--seeds=1,2,3``). Any other ``--key=value`` applies to every run.
"""

import argparse
import os
import sys

import recbole_ext
from recbole_ext import benchmark


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", required=True, help="comma-separated runs: Model or LABEL=Model:key=value")
    parser.add_argument("--dataset", "-d", default="ml-100k")
    parser.add_argument("--config_files", default=None, help="space-separated config files for every run")
    parser.add_argument("--seeds", default="3", help="a count N (seeds 2020..) or a comma-separated list")
    parser.add_argument("--baseline", default=None, help="label the t-tests compare against (default: the last)")
    parser.add_argument("--out", default="benchmark_results", help="output folder")
    parser.add_argument("--jobs", type=int, default=1, help="runs at once, each in its own process (default: 1)")
    args, extra = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    sys.argv = sys.argv[:1]  # RecBole's Config would read our flags as config keys
    try:
        runs = benchmark.parse_runs(args.models)
        seeds = _seeds(args.seeds)
        overrides = {}
        for arg in extra:
            if not arg.startswith("--") or "=" not in arg:
                raise recbole_ext.ConfigError(f"unrecognized argument {arg!r}; config overrides are --key=value")
            key, value = arg[2:].split("=", 1)
            overrides[key] = benchmark._literal(value)
        baseline = args.baseline or list(runs)[-1]
        if baseline not in runs:
            raise recbole_ext.ConfigError(f"--baseline: {baseline!r} is not one of the labels {list(runs)}")
        config_files = args.config_files.split() if args.config_files else None
        for path in config_files or []:
            if not os.path.isfile(path):
                raise recbole_ext.ConfigError(f"--config_files: {path!r} is not a file")
        unknown = [model for model, _ in runs.values() if not recbole_ext.registry.is_known_model(model)]
        if unknown:
            raise recbole_ext.registry.unknown_model_error(unknown[0])
    except recbole_ext.RecBoleExtError as error:
        print(f"benchmark.py: error: {error}", file=sys.stderr)
        return 2
    records = benchmark.run_all(runs, args.dataset, seeds, config_files, overrides, jobs=max(args.jobs, 1))
    from recbole.evaluator import smaller_metrics

    summary, metrics, best = benchmark.summarize(records, baseline, smaller_metrics)
    benchmark.write_outputs(records, summary, metrics, best, baseline, args.out)
    print(open(os.path.join(args.out, "summary.md"), encoding="utf-8").read())
    return 0 if any(r["status"] == "ok" for r in records) else 1


def _seeds(text):
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        raise recbole_ext.ConfigError(f"--seeds: {text!r} is not a count or a list of integers") from None
    if len(values) == 1:
        if values[0] < 1:
            raise recbole_ext.ConfigError(f"--seeds: {values[0]} is not allowed; use a count >= 1")
        return list(range(2020, 2020 + values[0]))
    return values


if __name__ == "__main__":
    sys.exit(main())
