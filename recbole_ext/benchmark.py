"""The ``benchmark`` command: models × seeds on one dataset and config, with tables (markdown, CSV,
LaTeX), paired t-tests against a baseline, and plots of the valid metric against epochs and wall time.

    python -m recbole_ext benchmark --models=RNNCCE,RNNCCE_untied=RNNCCE:weight_tying=False,GRU4Rec \\
        --dataset=ml-100k --seeds=3 --baseline=GRU4Rec --out=results/ml-100k [--jobs=4] [--config_files=...] [--key=value ...]

``LABEL=Model:key=value:...`` runs a model with its own overrides under LABEL. ``--seeds=N`` runs
seeds 2020..2020+N-1 (or give a list: ``--seeds=1,2,3``). Any other ``--key=value`` applies to every run.
``--baseline=tied50:untied50,tied100:untied100`` t-tests labels pairwise; ``--columns=ndcg@10,recall@10``
picks the table's metrics; ``--from_results=DIR`` writes the tables and plots again from DIR/results.csv
(and curves.csv) without training.


A run is named by a *label*: ``GRU4Rec`` runs that model with the shared settings;
``RNNCCE_untied=RNNCCE:weight_tying=False:hidden_size=200`` runs RNNCCE with those overrides under
the label ``RNNCCE_untied``. Each label runs once per seed; a failed run is kept (status and error).
Each label is t-tested against its baseline label (one for all, or per label, see
:func:`parse_baselines`) with a paired t-test over the seeds both finished.
"""

import argparse
import contextlib
import csv
import io
import math
import os
import sys
import traceback
from pathlib import Path

import numpy as np

from recbole_ext import cli, files, registry
from recbole_ext.errors import ConfigError, RecBoleExtError
from recbole_ext.keys import literal_value


def parse_runs(spec):
    """``{label: (model, overrides)}`` from ``A,B=Model:key=value:key=value,...``."""
    runs = {}
    for item in (part.strip() for part in spec.split(",")):
        if not item:
            continue
        label, definition = item.split("=", 1) if "=" in item.split(":", 1)[0] else (item, item)
        model, *settings = definition.split(":")
        overrides = {}
        for setting in settings:
            key, sep, value = setting.partition("=")
            if not sep or not key:
                raise ConfigError(f"--models: {setting!r} in {item!r} is not key=value; use LABEL=Model:key=value")
            overrides[key] = literal_value(value)
        if label in runs:
            raise ConfigError(f"--models: label {label!r} is given twice; give each run its own LABEL=")
        runs[label] = (model, overrides)
    if not runs:
        raise ConfigError("--models: no model given; use e.g. --models=RNNCCE,GRU4Rec")
    return runs


def parse_baselines(spec, labels):
    """``{label: baseline label or None}`` from ``--baseline``.

    ``GRU4Rec`` compares every other label with GRU4Rec; ``tied50:untied50,tied100:untied100`` pairs
    labels; a mix such as ``GRU4Rec,RNNCCE:RNNCCE_untied`` pairs RNNCCE with RNNCCE_untied and
    compares the rest with GRU4Rec. Without a spec the last label is everyone's baseline.
    """
    labels = list(labels)
    default, pairs = (labels[-1] if labels else None), {}
    if spec:
        given_default = None
        for item in (part.strip() for part in spec.split(",")):
            if not item:
                continue
            if item in labels:
                if given_default is not None:
                    raise ConfigError(f"--baseline: {given_default!r} and {item!r} are both given as the baseline "
                                      "of every label; pair the others as LABEL:BASELINE")
                given_default = item
                continue
            splits = [(item[:i], item[i + 1:]) for i, char in enumerate(item)
                      if char == ":" and item[:i] in labels and item[i + 1:] in labels]
            if not splits:
                raise ConfigError(f"--baseline: {item!r} is neither a label nor LABEL:BASELINE of two labels; "
                                  f"the labels are {labels}")
            label, baseline = splits[0]
            if label == baseline:
                raise ConfigError(f"--baseline: {item!r} compares {label!r} with itself")
            pairs[label] = baseline
        default = given_default
    return {label: pairs.get(label, default if label != default else None) for label in labels}


def reported_metric_names(runs, dataset, config_files=None, config_dict=None):
    """The test-result keys (``ndcg@10``, ``auc`` …) RecBole will report for these runs, from each
    label's config; a label whose config cannot be built is left out (its run will fail and say why)."""
    from recbole.config import Config
    from recbole.evaluator import metric_information

    names = set()
    for model, overrides in runs.values():
        try:
            config = Config(model=model, dataset=dataset, config_file_list=config_files,
                            config_dict={**(config_dict or {}), **overrides})
        except Exception:  # noqa: BLE001  (reported by the run itself)
            continue
        for metric in (m.lower() for m in config["metrics"]):
            if {"rec.items", "rec.topk"} & set(metric_information[metric]):
                names.update(f"{metric}@{k}" for k in config["topk"])
            else:
                names.add(metric)
    return names


def check_columns(columns, available):
    """``columns`` (``--columns``) as a list, each one of ``available`` metric names."""
    chosen = [c.strip().lower() for c in columns.split(",") if c.strip()]
    unknown = [c for c in chosen if c not in available]
    if not chosen or unknown:
        raise ConfigError(f"--columns: {unknown or columns!r} not reported by these runs; "
                          f"use names from {sorted(available)}")
    return chosen


def run_all(runs, dataset, seeds, config_files=None, config_dict=None, jobs=1, log=print):
    """Train every label × seed (``jobs`` at a time, in fresh processes when > 1); returns one
    record per run, failed runs included, in label-then-seed order."""
    tasks = [(label, model, overrides, seed, dataset, config_files, config_dict or {})
             for label, (model, overrides) in runs.items() for seed in seeds]
    if jobs <= 1:
        records = []
        for task in tasks:
            records.append(run_one(*task))
            log(_describe(records[-1]))
        return records
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(run_one, *task) for task in tasks]
        records = []
        for future in futures:
            records.append(future.result())
            log(_describe(records[-1]))
    return records


def _describe(record):
    return f"{record['label']} seed {record['seed']}: {record['status']} {record['error'] or record['test']}"


def run_one(label, model, overrides, seed, dataset, config_files, config_dict):
    """One benchmark run; a failure is returned as a record with its error, not raised."""
    import recbole_ext  # noqa: F401  (a spawned worker must register the plugin models and metrics)
    from recbole_ext.training import train_and_test

    curve = []
    record = {"label": label, "model": model, "seed": seed, "curve": curve}
    try:
        result = train_and_test(
            model, dataset, config_files, {**config_dict, **overrides, "seed": seed},
            on_epoch=lambda epoch, score, valid, seconds: curve.append((epoch, seconds, score)),
        )
        record.update(status="ok", error="", epochs=result["epochs"], seconds=result["seconds"],
                      valid={k: float(v) for k, v in result["best_valid_result"].items()},
                      test={k: float(v) for k, v in result["test_result"].items()})
    except Exception as error:  # noqa: BLE001  (a failed run is reported, the benchmark goes on)
        message = "".join(traceback.format_exception_only(type(error), error)).strip()
        record.update(status="failed", error=message, epochs=len(curve), seconds=None, valid={}, test={})
    return record


def summarize(records, baselines, smaller_metrics=()):
    """Per label: mean and std (ddof=1) of every test metric over its successful runs, mean epochs
    and training seconds, and a paired t-test (``scipy.stats.ttest_rel`` over the seeds both
    finished) against its baseline. ``baselines`` is one label for all or ``{label: baseline}``.
    Returns ``(rows, metrics, best)``; ``best[metric]`` is the set of labels with the best mean."""
    from scipy import stats

    labels = list(dict.fromkeys(r["label"] for r in records))
    if not isinstance(baselines, dict):
        baselines = {label: baselines if label != baselines else None for label in labels}
    metrics = sorted({m for r in records for m in r["test"]})
    finished = {label: {r["seed"]: r for r in records if r["label"] == label and r["status"] == "ok"}
                for label in labels}
    rows = []
    for label in labels:
        runs, baseline = finished[label], baselines.get(label)
        row = {"label": label, "model": next(r["model"] for r in records if r["label"] == label),
               "runs": len(runs), "failed": sum(r["label"] == label and r["status"] != "ok" for r in records),
               "baseline": baseline,
               "epochs": _mean([r["epochs"] for r in runs.values()]),
               "seconds": _mean([r["seconds"] for r in runs.values() if r["seconds"] is not None])}
        for metric in metrics:
            values = np.array([r["test"][metric] for r in runs.values() if metric in r["test"]])
            row[metric] = (float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0) if len(values) else None
            row[f"p({metric})"] = None
            base_runs = finished.get(baseline, {})
            common = [s for s in sorted(runs) if s in base_runs and metric in runs[s]["test"] and metric in base_runs[s]["test"]]
            if len(common) >= 2:
                ours = [runs[s]["test"][metric] for s in common]
                theirs = [base_runs[s]["test"][metric] for s in common]
                row[f"p({metric})"] = 1.0 if ours == theirs else float(stats.ttest_rel(ours, theirs).pvalue)
        rows.append(row)
    best = {}
    for metric in metrics:
        means = {row["label"]: row[metric][0] for row in rows if row[metric] is not None}
        if means:
            target = (min if metric.split("@")[0] in smaller_metrics else max)(means.values())
            best[metric] = {label for label, mean in means.items() if mean == target}
    return rows, metrics, best


def _mean(values):
    return float(np.mean(values)) if values else None


def _fmt_mean_std(mean_std, decimals):
    return "–" if mean_std is None else f"{mean_std[0]:.{decimals}f} ± {mean_std[1]:.{decimals}f}"


def _fmt_p(p):
    return "" if p is None or math.isnan(p) else f"{p:.2g}"


def _decimals(records, metric):
    """Counts (e.g. correctitemcoverage) get one decimal, rates four."""
    values = [r["test"][metric] for r in records if metric in r["test"]]
    return 1 if values and all(float(v).is_integer() for v in values) else 4


def write_outputs(records, rows, metrics, best, out_dir, columns=None):
    """results.csv, curves.csv, summary.{csv,md,tex} and (when any run reported a valid score) the
    plots valid_vs_epoch.png and valid_vs_time.png, each written whole (:mod:`recbole_ext.files`),
    results.csv last. ``columns`` picks and orders
    the metrics of the markdown and LaTeX tables (summary.csv always holds every metric)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    valid_metrics = sorted({m for r in records for m in r["valid"]})
    _write_csv(out / "curves.csv", ["label", "seed", "epoch", "seconds", "valid_score"],
               [{"label": r["label"], "seed": r["seed"], "epoch": e, "seconds": f"{s:.2f}", "valid_score": v}
                for r in records for e, s, v in r["curve"]])
    _write_csv(out / "summary.csv",
               ["label", "model", "runs", "failed", "baseline", "epochs", "seconds",
                *[c for m in metrics for c in (f"{m} mean", f"{m} std", f"p({m})")]],
               [{**{k: row[k] for k in ("label", "model", "runs", "failed", "epochs", "seconds")},
                 "baseline": row["baseline"] or "",
                 **{c: v for m in metrics for c, v in zip((f"{m} mean", f"{m} std"), row[m] or ("", ""))},
                 **{f"p({m})": "" if row[f"p({m})"] is None else row[f"p({m})"] for m in metrics}}
                for row in rows])
    md, tex = _tables(records, rows, columns or metrics, best)
    _write_text(out / "summary.md", md)
    _write_text(out / "summary.tex", tex)
    if any(r["curve"] for r in records):
        _plot(records, out)
    # last: results.csv marks a finished benchmark (a later one into --out needs --overwrite), so a
    # benchmark killed while writing its outputs can be run again as it was
    _write_csv(out / "results.csv",
               ["label", "model", "seed", "status", "epochs", "seconds",
                *[f"valid/{m}" for m in valid_metrics], *[f"test/{m}" for m in metrics], "error"],
               [{"label": r["label"], "model": r["model"], "seed": r["seed"], "status": r["status"],
                 "epochs": r["epochs"], "seconds": "" if r["seconds"] is None else f"{r['seconds']:.1f}",
                 "error": r["error"], **{f"valid/{k}": v for k, v in r["valid"].items()},
                 **{f"test/{k}": v for k, v in r["test"].items()}} for r in records])


def _tables(records, rows, columns, best):
    baselines = {row["baseline"] for row in rows if row["baseline"]}
    per_label = len(baselines) > 1
    seeds = sorted({r["seed"] for r in records}, key=lambda seed: (isinstance(seed, str), seed))
    header = ["model", "runs (failed)", *(["vs"] if per_label else []), *columns, "epochs", "train s"]
    against = "the label in column vs" if per_label else (next(iter(baselines)) if baselines else "none")
    md = [f"Test results, mean ± std over seeds {', '.join(map(str, seeds))}; best in bold; "
          f"p: paired t-test against {against}; epochs and training seconds: mean per run.", "",
          "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    tex = ["\\begin{tabular}{l" + "c" * (len(header) - 1) + "}", "\\toprule",
           " & ".join(_tex_escape(h) for h in header) + " \\\\", "\\midrule"]
    decimals = {m: _decimals(records, m) for m in columns}
    for row in rows:
        cells_md, cells_tex = [], []
        for m in columns:
            text, p = _fmt_mean_std(row.get(m), decimals[m]), _fmt_p(row.get(f"p({m})"))
            bold = row["label"] in best.get(m, ())
            cells_md.append((f"**{text}**" if bold else text) + (f" (p={p})" if p else ""))
            tex_text = text.replace("±", "$\\pm$")
            cells_tex.append((f"\\textbf{{{tex_text}}}" if bold else tex_text) + (f" ($p$={p})" if p else ""))
        lead = [row["label"], f"{row['runs']} ({row['failed']})", *([row["baseline"] or ""] if per_label else [])]
        tail = ["–" if row["epochs"] is None else f"{row['epochs']:.0f}",
                "–" if row["seconds"] is None else f"{row['seconds']:.0f}"]
        md.append("| " + " | ".join([*lead, *cells_md, *tail]) + " |")
        tex.append(" & ".join([*map(_tex_escape, lead), *cells_tex, *tail]) + " \\\\")
    failed = [r for r in records if r["status"] != "ok"]
    if failed:
        md += ["", "Failed runs:", *[f"- {r['label']} seed {r['seed']}: {r['error']}" for r in failed]]
    tex += ["\\bottomrule", "\\end{tabular}"]
    return "\n".join(md) + "\n", "\n".join(tex) + "\n"


def read_results(path):
    """The records of an earlier benchmark from its ``results.csv`` (a file or the folder holding
    it) and, when next to it, ``curves.csv``: to summarize again with other baselines or columns."""
    path = Path(path)
    if path.is_dir():
        path = path / "results.csv"
    if not path.is_file():
        raise ConfigError(f"--from_results: {str(path)!r} is not a results.csv written by benchmark.py")
    curves = {}
    if (path.parent / "curves.csv").is_file():
        for line, point in _csv_rows(path.parent / "curves.csv", CURVES_COLUMNS):
            with _row_values(path.parent / "curves.csv", line):
                curves.setdefault((point["label"], point["seed"]), []).append(
                    (int(point["epoch"]), float(point["seconds"]), float(point["valid_score"])))
    records = []
    for line, row in _csv_rows(path, RESULTS_COLUMNS):
        with _row_values(path, line):
            records.append({
                "label": row["label"], "model": row["model"], "seed": _seed(row["seed"]), "status": row["status"],
                "error": row.get("error") or "", "epochs": int(row["epochs"] or 0),
                "seconds": float(row["seconds"]) if row["seconds"] else None,
                "valid": {k[6:]: float(v) for k, v in row.items() if k and k.startswith("valid/") and v},
                "test": {k[5:]: float(v) for k, v in row.items() if k and k.startswith("test/") and v},
                "curve": curves.get((row["label"], row["seed"]), []),
            })
    if not records:
        raise ConfigError(f"--from_results: {path} holds no runs (a header only)")
    return records


RESULTS_COLUMNS = ("label", "model", "seed", "status", "epochs", "seconds")
CURVES_COLUMNS = ("label", "seed", "epoch", "seconds", "valid_score")


def _csv_rows(path, required):
    """``(line, row)`` of a CSV that benchmark.py wrote, checked: UTF-8, the ``required`` columns,
    one value per column in each row; anything else is one ConfigError naming the file."""
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"--from_results: {path} is not UTF-8, so not a file benchmark.py wrote") from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    columns = reader.fieldnames or []
    missing = [name for name in required if name not in columns]
    if missing:
        raise ConfigError(f"--from_results: {path} has no column {', '.join(map(repr, missing))} (its columns: "
                          f"{columns}); give the results.csv (or its folder) that benchmark.py wrote")
    for row in reader:
        if None in row or None in row.values():
            raise ConfigError(f"--from_results: {path}, line {reader.line_num}: the row does not hold one value for "
                              f"each of the header's {len(columns)} columns")
        yield reader.line_num, row


@contextlib.contextmanager
def _row_values(path, line):
    try:
        yield
    except ValueError as error:
        raise ConfigError(f"--from_results: {path}, line {line}: {error}; not a value benchmark.py writes") from None


def _seed(text):
    try:
        return int(text)
    except ValueError:
        return text


def _tex_escape(text):
    return str(text).replace("_", "\\_").replace("%", "\\%").replace("&", "\\&").replace("#", "\\#")


def _write_csv(path, columns, rows):
    with files.staged(path, newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def _write_text(path, text):
    files.write_text(path, text)


def _plot(records, out):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {}
    for x_index, name in ((0, "valid_vs_epoch.png"), (1, "valid_vs_time.png")):
        fig, ax = plt.subplots(figsize=(7, 4))
        labelled = set()
        for r in records:
            if not r["curve"]:
                continue
            color = colors.setdefault(r["label"], f"C{len(colors) % 10}")
            ax.plot([point[x_index] for point in r["curve"]], [point[2] for point in r["curve"]],
                    color=color, alpha=0.8, linestyle="-" if r["status"] == "ok" else ":",
                    label=None if r["label"] in labelled else r["label"])
            labelled.add(r["label"])
        ax.set_xlabel("epoch" if x_index == 0 else "training wall time (s)")
        ax.set_ylabel("valid metric (config valid_metric)")
        ax.legend(fontsize=8)
        fig.tight_layout()
        try:
            with files.staged(out / name, "wb") as f:
                fig.savefig(f, dpi=110, format="png")
        finally:
            plt.close(fig)


# ---------------------------------------------------------------- the command


def main(argv=None, prog="benchmark"):
    """The ``benchmark`` command; returns the exit code (2 for bad input, with one line on stderr)."""
    parser = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=None, help="comma-separated runs: Model or LABEL=Model:key=value")
    parser.add_argument("--dataset", "-d", default=None, help="dataset name (default: ml-100k)")
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
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the results of an earlier benchmark in --out (default: refuse)")
    parser.add_argument("--jobs", type=int, default=1, help="runs at once, each in its own process (default: 1)")
    args, extra = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    with cli.without_command_line():
        return _benchmark(args, extra, prog)


def _benchmark(args, extra, prog):
    try:
        if args.jobs < 1:
            raise ConfigError(f"--jobs: {args.jobs} is not allowed; use an integer >= 1")
        args.dataset = cli.name("--dataset", args.dataset, "ml-100k")
        earlier = os.path.join(args.out, "results.csv")
        if os.path.exists(earlier) and not args.overwrite:
            raise ConfigError(f"--out: {earlier} holds an earlier benchmark's results; "
                              "add --overwrite to replace them or choose another --out")
        if os.path.exists(args.out) and not os.path.isdir(args.out):
            raise ConfigError(f"--out: {args.out!r} is a file, not a folder")
        if args.from_results:
            unused = (["--models"] if args.models else []) + extra
            if unused:
                raise ConfigError(f"--from_results summarizes finished runs; {unused} would be ignored")
            records = read_results(args.from_results)
            labels = list(dict.fromkeys(r["label"] for r in records))
            available = {m for r in records for m in r["test"]}
        else:
            runs, seeds, config_files, overrides = _plan(args, extra)
            labels = list(runs)
            available = None
        baselines = parse_baselines(args.baseline, labels)
        if args.columns:
            if available is None:
                available = reported_metric_names(runs, args.dataset, config_files, overrides)
            columns = check_columns(args.columns, available)
        else:
            columns = None
    except RecBoleExtError as error:
        return cli.bad_input(prog, error)
    if not args.from_results:
        records = run_all(runs, args.dataset, seeds, config_files, overrides, jobs=args.jobs)
    from recbole.evaluator import smaller_metrics

    rows, metrics, best = summarize(records, baselines, smaller_metrics)
    try:
        write_outputs(records, rows, metrics, best, args.out, columns)
    except RecBoleExtError as error:
        return cli.bad_input(prog, error)
    print(open(os.path.join(args.out, "summary.md"), encoding="utf-8").read())
    return 0 if any(r["status"] == "ok" for r in records) else 1


def _plan(args, extra):
    """Runs, seeds, config files and shared overrides from the command line, checked before training."""
    if not args.models:
        raise ConfigError("--models is required (or --from_results=DIR to summarize finished runs)")
    runs = parse_runs(args.models)
    seeds = _seeds(args.seeds)
    overrides = cli.config_overrides(extra)
    config_files = cli.config_files(args.config_files)
    unknown = [model for model, _ in runs.values() if not registry.is_known_model(model)]
    if unknown:
        raise registry.unknown_model_error(unknown[0])
    check_configs(runs, args.dataset, config_files, overrides)
    return runs, seeds, config_files, overrides


def check_configs(runs, dataset, config_files=None, config_dict=None):
    """Build each label's config once before any training: a value a run would refuse (e.g. ``fold``
    outside ``folds``) is one error now instead of a failed run per seed. Warnings (unknown keys)
    are left to the runs, which give them."""
    import warnings

    from recbole.config import Config

    for label, (model, overrides) in runs.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                Config(model=model, dataset=dataset, config_file_list=config_files,
                       config_dict={**(config_dict or {}), **overrides})
            except RecBoleExtError as error:
                raise type(error)(f"{label}: {error}" if len(runs) > 1 else str(error)) from None


def _seeds(text):
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        raise ConfigError(f"--seeds: {text!r} is not a count or a list of integers") from None
    if len(values) == 1:
        if values[0] < 1:
            raise ConfigError(f"--seeds: {values[0]} is not allowed; use a count >= 1")
        return list(range(2020, 2020 + values[0]))
    return values
