"""Compare models × seeds on one dataset and config: tables (markdown, CSV, LaTeX), paired t-tests
against a baseline, and plots of the valid metric against epochs and wall time.

    python benchmark.py --models=RNNCCE,RNNCCE_untied=RNNCCE:weight_tying=False,GRU4Rec \\
        --dataset=ml-100k --seeds=3 --baseline=GRU4Rec --out=results/ml-100k [--jobs=4] [--config_files=...] [--key=value ...]

``LABEL=Model:key=value:...`` runs a model with its own overrides under LABEL. ``--seeds=N`` runs
seeds 2020..2020+N-1 (or give a list: ``--seeds=1,2,3``). Any other ``--key=value`` applies to every run.
``--baseline=tied50:untied50,tied100:untied100`` t-tests labels pairwise; ``--columns=ndcg@10,recall@10``
picks the table's metrics; ``--from_results=DIR`` writes the tables and plots again from DIR/results.csv
(and curves.csv) without training.
"""

import argparse
import os
import sys

import recbole_ext
from recbole_ext import benchmark


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=None, help="comma-separated runs: Model or LABEL=Model:key=value")
    parser.add_argument("--dataset", "-d", default="ml-100k")
    parser.add_argument("--config_files", default=None, help="space-separated config files for every run")
    parser.add_argument("--seeds", default="3", help="a count N (seeds 2020..) or a comma-separated list")
    parser.add_argument("--baseline", default=None,
                        help="label every other label is t-tested against (default: the last), and/or "
                             "LABEL:BASELINE pairs, e.g. GRU4Rec or tied50:untied50,tied100:untied100")
    parser.add_argument("--columns", default=None,
                        help="metrics of the markdown and LaTeX tables, in order (default: all), e.g. ndcg@10,recall@10")
    parser.add_argument("--from_results", default=None,
                        help="summarize an earlier benchmark's results.csv (file or folder) again instead of training")
    parser.add_argument("--out", default="benchmark_results", help="output folder")
    parser.add_argument("--jobs", type=int, default=1, help="runs at once, each in its own process (default: 1)")
    args, extra = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    sys.argv = sys.argv[:1]  # RecBole's Config would read our flags as config keys
    try:
        if args.from_results:
            unused = (["--models"] if args.models else []) + extra
            if unused:
                raise recbole_ext.ConfigError(f"--from_results summarizes finished runs; {unused} would be ignored")
            records = benchmark.read_results(args.from_results)
            labels = list(dict.fromkeys(r["label"] for r in records))
            available = {m for r in records for m in r["test"]}
        else:
            runs, seeds, config_files, overrides = _plan(args, extra)
            labels = list(runs)
            available = None
        baselines = benchmark.parse_baselines(args.baseline, labels)
        if args.columns:
            if available is None:
                available = benchmark.reported_metric_names(runs, args.dataset, config_files, overrides)
            columns = benchmark.check_columns(args.columns, available)
        else:
            columns = None
    except recbole_ext.RecBoleExtError as error:
        print(f"benchmark.py: error: {error}", file=sys.stderr)
        return 2
    if not args.from_results:
        records = benchmark.run_all(runs, args.dataset, seeds, config_files, overrides, jobs=max(args.jobs, 1))
    from recbole.evaluator import smaller_metrics

    rows, metrics, best = benchmark.summarize(records, baselines, smaller_metrics)
    benchmark.write_outputs(records, rows, metrics, best, args.out, columns)
    print(open(os.path.join(args.out, "summary.md"), encoding="utf-8").read())
    return 0 if any(r["status"] == "ok" for r in records) else 1


def _plan(args, extra):
    """Runs, seeds, config files and shared overrides from the command line, checked before training."""
    if not args.models:
        raise recbole_ext.ConfigError("--models is required (or --from_results=DIR to summarize finished runs)")
    runs = benchmark.parse_runs(args.models)
    seeds = _seeds(args.seeds)
    overrides = {}
    for arg in extra:
        if not arg.startswith("--") or "=" not in arg:
            raise recbole_ext.ConfigError(f"unrecognized argument {arg!r}; config overrides are --key=value")
        key, value = arg[2:].split("=", 1)
        overrides[key] = benchmark._literal(value)
    config_files = args.config_files.split() if args.config_files else None
    for path in config_files or []:
        if not os.path.isfile(path):
            raise recbole_ext.ConfigError(f"--config_files: {path!r} is not a file")
    unknown = [model for model, _ in runs.values() if not recbole_ext.registry.is_known_model(model)]
    if unknown:
        raise recbole_ext.registry.unknown_model_error(unknown[0])
    return runs, seeds, config_files, overrides


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
