"""Benchmark comparisons: models × seeds on one dataset and config, with tables, t-tests and plots.

A run is named by a *label*: ``GRU4Rec`` runs that model with the shared settings;
``RNNCCE_untied=RNNCCE:weight_tying=False:hidden_size=200`` runs RNNCCE with those overrides under
the label ``RNNCCE_untied``. Each label runs once per seed; a failed run is kept (status and error).
"""

import csv
import math
import os
import traceback
from pathlib import Path

import numpy as np

from recbole_ext.errors import ConfigError


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
            overrides[key] = _literal(value)
        if label in runs:
            raise ConfigError(f"--models: label {label!r} is given twice; give each run its own LABEL=")
        runs[label] = (model, overrides)
    if not runs:
        raise ConfigError("--models: no model given; use e.g. --models=RNNCCE,GRU4Rec")
    return runs


def _literal(value):
    from recbole.config.configurator import Config

    return Config._convert_config_dict(None, {"value": value})["value"]


def run_all(runs, dataset, seeds, config_files=None, config_dict=None, jobs=1, log=print):
    """Train every label × seed (``jobs`` at a time, in fresh processes when > 1); returns one
    record per run, failed runs included, in label-then-seed order."""
    tasks = [(label, model, overrides, seed, dataset, config_files, config_dict or {})
             for label, (model, overrides) in runs.items() for seed in seeds]
    if jobs <= 1:
        records = [run_one(*task) for task in tasks]
        for record in records:
            log(_describe(record))
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
    import recbole_ext  # noqa: F401  (a spawned worker must register the plugin models)
    from recbole_ext.quick_start import train_and_test

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


def summarize(records, baseline, smaller_metrics=()):
    """Per label: mean and std of every test metric over its successful runs, and a paired t-test
    (scipy.stats.ttest_rel over the seeds both labels finished) against ``baseline``."""
    from scipy import stats

    metrics = sorted({m for r in records for m in r["test"]})
    labels = list(dict.fromkeys(r["label"] for r in records))
    by_label = {label: {r["seed"]: r for r in records if r["label"] == label and r["status"] == "ok"}
                for label in labels}
    summary = []
    for label in labels:
        runs = by_label[label]
        row = {"label": label, "runs": len(runs),
               "failed": sum(r["label"] == label and r["status"] != "ok" for r in records)}
        for metric in metrics:
            values = np.array([r["test"][metric] for r in runs.values() if metric in r["test"]])
            row[metric] = (float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0) if len(values) else None
            common = sorted(set(runs) & set(by_label.get(baseline, {})))
            p_value = None
            if label != baseline and len(common) >= 2:
                ours = [runs[s]["test"][metric] for s in common]
                theirs = [by_label[baseline][s]["test"][metric] for s in common]
                p_value = float(stats.ttest_rel(ours, theirs).pvalue) if ours != theirs else 1.0
            row[f"p({metric})"] = p_value
        summary.append(row)
    best = {}
    for metric in metrics:
        scored = [(row[metric][0], row["label"]) for row in summary if row[metric] is not None]
        if scored:
            pick = min if metric.split("@")[0] in smaller_metrics else max
            best[metric] = pick(scored)[1]
    return summary, metrics, best


def _fmt(mean_std):
    return "–" if mean_std is None else f"{mean_std[0]:.4f} ± {mean_std[1]:.4f}"


def _fmt_p(p):
    return "" if p is None or (isinstance(p, float) and math.isnan(p)) else f"{p:.3g}"


def write_outputs(records, summary, metrics, best, baseline, out_dir):
    """results.csv, curves.csv, summary.{csv,md,tex} and the two PNG plots, each written whole."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    metric_columns = [f"valid/{m}" for m in sorted({m for r in records for m in r["valid"]})] + [f"test/{m}" for m in metrics]
    _write_csv(out / "results.csv", ["label", "model", "seed", "status", "epochs", "seconds", *metric_columns, "error"], [
        {"label": r["label"], "model": r["model"], "seed": r["seed"], "status": r["status"], "epochs": r["epochs"],
         "seconds": "" if r["seconds"] is None else f"{r['seconds']:.1f}", "error": r["error"],
         **{f"valid/{k}": v for k, v in r["valid"].items()}, **{f"test/{k}": v for k, v in r["test"].items()}}
        for r in records
    ])
    _write_csv(out / "curves.csv", ["label", "seed", "epoch", "seconds", "valid_score"], [
        {"label": r["label"], "seed": r["seed"], "epoch": e, "seconds": f"{s:.2f}", "valid_score": v}
        for r in records for e, s, v in r["curve"]
    ])
    _write_csv(out / "summary.csv", ["label", "runs", "failed", *[c for m in metrics for c in (f"{m} mean", f"{m} std", f"p({m})")]], [
        {"label": row["label"], "runs": row["runs"], "failed": row["failed"],
         **{c: v for m in metrics for c, v in zip((f"{m} mean", f"{m} std"), row[m] or ("", ""))},
         **{f"p({m})": _fmt_p(row[f"p({m})"]) for m in metrics}}
        for row in summary
    ])
    header = ["model", "runs (failed)", *metrics]
    md = [f"Test results, mean ± std over seeds; best in bold; p: paired t-test against {baseline}.", "",
          "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    tex = ["\\begin{tabular}{l" + "c" * (len(header) - 1) + "}", "\\toprule",
           " & ".join(_tex_escape(h) for h in header) + " \\\\", "\\midrule"]
    for row in summary:
        cells_md, cells_tex = [], []
        for m in metrics:
            text, p = _fmt(row[m]), _fmt_p(row[f"p({m})"])
            bold = best.get(m) == row["label"]
            cells_md.append((f"**{text}**" if bold else text) + (f" (p={p})" if p else ""))
            tex_text = text.replace("±", "$\\pm$")
            cells_tex.append((f"\\textbf{{{tex_text}}}" if bold else tex_text) + (f" ($p$={p})" if p else ""))
        runs = f"{row['runs']} ({row['failed']})"
        md.append("| " + " | ".join([row["label"], runs, *cells_md]) + " |")
        tex.append(" & ".join([_tex_escape(row["label"]), runs, *cells_tex]) + " \\\\")
    failed = [r for r in records if r["status"] != "ok"]
    if failed:
        md += ["", "Failed runs:", *[f"- {r['label']} seed {r['seed']}: {r['error']}" for r in failed]]
    tex += ["\\bottomrule", "\\end{tabular}"]
    _write_text(out / "summary.md", "\n".join(md) + "\n")
    _write_text(out / "summary.tex", "\n".join(tex) + "\n")
    _plot(records, out)


def _tex_escape(text):
    return str(text).replace("_", "\\_").replace("%", "\\%").replace("&", "\\&").replace("#", "\\#")


def _write_csv(path, columns, rows):
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)


def _write_text(path, text):
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _plot(records, out):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {}
    for x_index, name in ((0, "valid_vs_epoch.png"), (1, "valid_vs_time.png")):
        fig, ax = plt.subplots(figsize=(7, 4))
        for r in records:
            if not r["curve"]:
                continue
            color = colors.setdefault(r["label"], f"C{len(colors) % 10}")
            xs = [point[x_index] for point in r["curve"]]
            ax.plot(xs, [point[2] for point in r["curve"]], color=color, alpha=0.8,
                    label=r["label"] if r["seed"] == min(q["seed"] for q in records if q["label"] == r["label"]) else None)
        ax.set_xlabel("epoch" if x_index == 0 else "wall time (s)")
        ax.set_ylabel("valid metric")
        ax.legend(fontsize=8)
        fig.tight_layout()
        tmp = out / f".{name}"
        fig.savefig(tmp, dpi=110, format="png")
        plt.close(fig)
        os.replace(tmp, out / name)
