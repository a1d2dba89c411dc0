"""Ray Tune searches over RecBole hyper files, for plugin and built-in models alike.

A hyper file holds one ``name type value`` line per parameter, RecBole's syntax exactly::

    learning_rate loguniform -8,0        # e^-8 .. e^0: bounds are in log space
    dropout_prob choice [0.0,0.1,0.2]
    embedding_size quniform 32,128,32
    kl_weight uniform 0,1

Each trial trains through RecBole's own pipeline, reports the valid metric and the whole valid
result after every epoch (so ASHA can stop it) and its test result at the end.
"""

import ast
import csv
import math
import os
from pathlib import Path

from recbole_ext.errors import ConfigError

PARAM_TYPES = ("choice", "uniform", "loguniform", "quniform")
FORMS = (
    "name choice [v1,v2,...] | name uniform low,high | name loguniform low,high (log space) | "
    "name quniform low,high,q"
)


class HyperFileError(ConfigError):
    """A hyper file line that is not one of RecBole's forms."""


def parse_hyper_file(path):
    """``{name: (type, value)}`` from a RecBole hyper file; ``value`` is a list for ``choice`` and a
    tuple of numbers otherwise. Comments (``#``) and blank lines are allowed."""
    space = {}
    with open(path, encoding="utf-8") as f:
        for number, raw in enumerate(f, start=1):
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            where = f"{path}:{number}"
            parts = line.split(None, 2)
            if len(parts) != 3:
                raise HyperFileError(f"{where}: {raw.strip()!r} is not a hyper line; use one of: {FORMS}")
            name, kind, value = parts
            if kind not in PARAM_TYPES:
                raise HyperFileError(f"{where}: type {kind!r} is not allowed; use one of: {FORMS}")
            if name in space:
                raise HyperFileError(f"{where}: {name!r} is given twice")
            space[name] = (kind, _parse_value(kind, value.replace(" ", ""), where))
    if not space:
        raise HyperFileError(f"{path}: no parameters; use one of: {FORMS}")
    return space


def _parse_value(kind, value, where):
    if kind == "choice":
        try:
            options = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            options = None
        if not isinstance(options, list) or not options:
            raise HyperFileError(f"{where}: choice needs a non-empty Python list like [0.1,0.2], got {value!r}")
        return options
    expected = 3 if kind == "quniform" else 2
    try:
        numbers = tuple(float(v) for v in value.split(","))
    except ValueError:
        numbers = ()
    if len(numbers) != expected or numbers[0] > numbers[1]:
        form = "low,high,q" if kind == "quniform" else "low,high"
        raise HyperFileError(f"{where}: {kind} needs {form} with low <= high, got {value!r}")
    return numbers


def is_grid(space):
    return all(kind == "choice" for kind, _ in space.values())


def grid_size(space):
    return math.prod(len(values) for _, values in space.values())


def to_tune_space(space, grid):
    """Ray Tune search space; ``grid`` turns every ``choice`` into a grid search."""
    from ray import tune

    converted = {}
    for name, (kind, value) in space.items():
        if kind == "choice":
            converted[name] = tune.grid_search(value) if grid else tune.choice(value)
        elif kind == "uniform":
            converted[name] = tune.uniform(*value)
        elif kind == "loguniform":
            converted[name] = tune.loguniform(math.exp(value[0]), math.exp(value[1]))
        else:
            converted[name] = tune.quniform(*value)
    return converted


def check_parameter_names(space, model, dataset, config_files, fixed):
    """Refuse names that are not config keys of ``model`` (before any trial starts)."""
    from recbole.config import Config

    config = Config(model=model, dataset=dataset, config_file_list=config_files, config_dict=dict(fixed))
    unknown = sorted(name for name in space if name not in config.final_config_dict)
    if unknown:
        raise ConfigError(
            f"{', '.join(map(repr, unknown))} {'is not a config key' if len(unknown) == 1 else 'are not config keys'} "
            f"of {model} on {dataset}; hyper files may only name keys RecBole or the model's YAML defines"
        )
    return config


def train_trial(params, model, dataset, config_files, fixed):
    """Ray Tune trainable: one RecBole run, reporting after every epoch."""
    import recbole_ext  # noqa: F401  (a fresh Ray worker must register the plugin models)
    from ray import tune

    from recbole_ext.quick_start import train_and_test

    def report_epoch(epoch, valid_score, valid_result, seconds):
        tune.report({"epoch": epoch, "valid_score": valid_score, **{f"valid/{k}": float(v) for k, v in valid_result.items()}})

    result = train_and_test(model, dataset, config_files, {**fixed, **params, "show_progress": False}, report_epoch)
    tune.report({"epoch": result["epochs"], "valid_score": result["best_valid_score"], "done": True,
                 **{f"best_valid/{k}": float(v) for k, v in result["best_valid_result"].items()},
                 **{f"test/{k}": float(v) for k, v in result["test_result"].items()}})


def results_table(result_grid, space, bigger_is_better):
    """One row per trial: params, best valid, test, epochs run, status (and the error of a failed one)."""
    rows = []
    for result in result_grid:
        history = result.metrics_dataframe
        scores = history["valid_score"].dropna() if history is not None and "valid_score" in history else []
        metrics = result.metrics or {}
        best = (max(scores) if bigger_is_better else min(scores)) if len(scores) else None
        epochs = int(history["epoch"].max()) if history is not None and "epoch" in history and len(history) else 0
        if result.error is not None:
            status = "failed"
        elif metrics.get("done"):
            status = "finished"
        else:
            status = "stopped early"
        params = result.config or _params_on_disk(result.path)
        rows.append({
            **{name: params.get(name) for name in space},
            "best_valid_score": best,
            **{k: v for k, v in metrics.items() if k.startswith("test/")},
            "epochs": epochs,
            "status": status,
            "error": _first_line(result.error) if result.error is not None else "",
        })
    return rows


def _params_on_disk(trial_path):
    # a restored experiment gives failed trials no config; Ray keeps it in the trial's params.json
    import json

    params_file = Path(trial_path or "") / "params.json"
    return json.loads(params_file.read_text()) if params_file.is_file() else {}


def _first_line(error):
    lines = [line for line in str(error).splitlines() if line.strip()]
    return lines[-1].strip() if lines else type(error).__name__


def write_tables(rows, prefix):
    """Write ``prefix.csv`` and ``prefix.md``, each complete or not at all."""
    prefix = Path(prefix)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    columns = list(dict.fromkeys(key for row in rows for key in row))
    csv_tmp = prefix.with_name(prefix.name + ".csv.tmp")
    with open(csv_tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    md_tmp = prefix.with_name(prefix.name + ".md.tmp")
    cell = lambda v: "" if v is None else (f"{v:.4f}" if isinstance(v, float) else str(v).replace("|", "/"))  # noqa: E731
    md_tmp.write_text(
        "| " + " | ".join(columns) + " |\n|" + "---|" * len(columns) + "\n"
        + "".join("| " + " | ".join(cell(row.get(c)) for c in columns) + " |\n" for row in rows),
        encoding="utf-8",
    )
    os.replace(csv_tmp, prefix.with_name(prefix.name + ".csv"))
    os.replace(md_tmp, prefix.with_name(prefix.name + ".md"))
    return prefix.with_name(prefix.name + ".csv"), prefix.with_name(prefix.name + ".md")
