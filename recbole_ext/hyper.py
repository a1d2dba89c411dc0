"""Ray Tune searches over RecBole hyper files, for plugin and built-in models alike.

A hyper file holds one ``name type value`` line per parameter, RecBole's syntax exactly::

    learning_rate loguniform -8,0        # e^-8 .. e^0: bounds are in log space
    dropout_prob choice [0.0,0.1,0.2]
    embedding_size quniform 32,128,32
    kl_weight uniform 0,1

Each trial trains through RecBole's own pipeline (:func:`recbole_ext.quick_start.train_and_test`),
reports the valid metric and the whole valid result after every epoch (so ASHA can stop it) and its
test result at the end. ``run_hyper.py`` is the command line; this module holds the pieces it and
the tests share: the parser, the checks made before Ray starts, the trainable and the results table.
"""

import ast
import contextlib
import csv
import io
import json
import math
import os
import sys
from pathlib import Path

from recbole_ext.errors import ConfigError

PARAM_TYPES = ("choice", "uniform", "loguniform", "quniform")
FORMS = (
    "name choice [v1,v2,...] | name uniform low,high | name loguniform low,high (log space) | "
    "name quniform low,high,q"
)
SETTINGS_FILE = "run_hyper.json"

# Row statuses of the results table.
FINISHED, STOPPED, FAILED, UNFINISHED = "finished", "stopped early", "failed", "unfinished"


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
            raise HyperFileError(
                f"{where}: choice needs a non-empty Python list like [0.1,0.2], got {value!r}; forms: {FORMS}"
            )
        return options
    form = "low,high,q" if kind == "quniform" else "low,high"
    try:
        numbers = tuple(float(v) for v in value.split(","))
    except ValueError:
        numbers = ()
    if len(numbers) != len(form.split(",")) or not all(map(math.isfinite, numbers)) or numbers[0] > numbers[1]:
        raise HyperFileError(f"{where}: {kind} needs {form} with low <= high, got {value!r}; forms: {FORMS}")
    if kind == "quniform" and numbers[2] <= 0:
        raise HyperFileError(f"{where}: quniform needs a step q > 0, got {value!r}; forms: {FORMS}")
    return numbers


def is_grid(space):
    return all(kind == "choice" for kind, _ in space.values())


def grid_size(space):
    return math.prod(len(values) for _, values in space.values())


def to_tune_space(space, grid):
    """Ray Tune search space; ``grid`` turns every ``choice`` into a grid search.

    ``quniform`` with whole-number bounds and step draws integers (``embedding_size quniform
    32,128,32`` must give 64, not 64.0, or ``nn.Embedding`` refuses it); otherwise floats.
    """
    from ray import tune

    converted = {}
    for name, (kind, value) in space.items():
        if kind == "choice":
            converted[name] = tune.grid_search(value) if grid else tune.choice(value)
        elif kind == "uniform":
            converted[name] = tune.uniform(*value)
        elif kind == "loguniform":
            converted[name] = tune.loguniform(math.exp(value[0]), math.exp(value[1]))
        elif all(float(v).is_integer() for v in value):
            converted[name] = tune.qrandint(*(int(v) for v in value))
        else:
            converted[name] = tune.quniform(*value)
    return converted


@contextlib.contextmanager
def without_command_line():
    """Hide ``sys.argv`` from RecBole's ``Config``, which reads every ``--key=value`` in it as a
    config key: run_hyper.py's own flags in the driver, Ray's (``--node-ip-address=…``) in a worker."""
    saved = sys.argv
    sys.argv = saved[:1]
    try:
        yield
    finally:
        sys.argv = saved


def check_parameter_names(space, model, dataset, config_files, overrides):
    """Build the model's Config once and refuse hyper names that are not keys of it.

    A key counts when any layer defines it: RecBole's ``overall.yaml``, the model's YAML (RecBole's
    or the plugin's), the dataset YAML, the config files or the overrides. Returns the Config.
    """
    from recbole.config import Config

    with without_command_line():
        config = Config(model=model, dataset=dataset, config_file_list=config_files, config_dict=dict(overrides))
    unknown = sorted(name for name in space if name not in config.final_config_dict)
    if unknown:
        raise ConfigError(
            f"{', '.join(map(repr, unknown))} {'is not a config key' if len(unknown) == 1 else 'are not config keys'} "
            f"of {model} on {dataset}; hyper files may only name keys that RecBole's overall.yaml, the model's "
            "YAML, the dataset YAML, --config_files or a --key=value override define"
        )
    return config


def train_trial(params, model, dataset, config_files, overrides):
    """Ray Tune trainable: one RecBole run, reporting after every epoch."""
    import ray

    import recbole_ext  # noqa: F401  (a fresh Ray worker must register the plugin models)
    from ray import tune

    run_trial(params, model, dataset, config_files, overrides, tune.report, ray.get_gpu_ids())


def run_trial(params, model, dataset, config_files, overrides, report, gpu_ids=()):
    """Train one trial through RecBole; ``report(metrics)`` after every epoch and once at the end.

    ``gpu_ids`` are the GPUs Ray gave the trial: RecBole's ``gpu_id`` would otherwise point every
    trial at GPU 0 (it sets ``CUDA_VISIBLE_DEVICES`` itself), and an empty one trains on the CPU.
    """
    from recbole_ext.quick_start import train_and_test

    def report_epoch(epoch, valid_score, valid_result, seconds):
        report({"epoch": epoch, "valid_score": valid_score, **_prefixed("valid/", valid_result)})

    config = {**overrides, **params, "show_progress": False, "gpu_id": ",".join(map(str, gpu_ids))}
    with without_command_line():
        result = train_and_test(model, dataset, config_files, config, report_epoch)
    report({
        "epoch": result["epochs"],
        "valid_score": result["best_valid_score"],
        **_prefixed("best_valid/", result["best_valid_result"]),
        **_prefixed("test/", result["test_result"]),
    })
    return result


def _prefixed(prefix, result):
    return {f"{prefix}{key}": float(value) for key, value in result.items()}


def save_settings(experiment_path, settings):
    """Keep what defines a search next to Ray's state, so ``--resume`` runs the same trials."""
    _write_atomically(Path(experiment_path) / SETTINGS_FILE, json.dumps(settings, indent=2) + "\n")


def load_settings(experiment_path):
    path = Path(experiment_path) / SETTINGS_FILE
    if not path.is_file():
        return None
    settings = json.loads(path.read_text(encoding="utf-8"))
    # JSON keeps tuples as lists: give the space back the form parse_hyper_file returns.
    settings["space"] = {
        name: (kind, value if kind == "choice" else tuple(value)) for name, (kind, value) in settings["space"].items()
    }
    return settings


def results_table(experiment_path, space, bigger_is_better):
    """One row per trial of the experiment on disk: params, best valid score, test result, epochs
    run, status (finished, stopped early, failed, unfinished) and the error of a failed trial."""
    from ray.tune import ExperimentAnalysis
    from ray.tune.experiment import Trial

    analysis = ExperimentAnalysis(str(experiment_path))
    histories = analysis.trial_dataframes
    rows = []
    for trial in sorted(analysis.trials, key=lambda t: t.trial_id):
        history = histories.get(trial.trial_id)
        scores = history["valid_score"].dropna() if history is not None and "valid_score" in history else []
        epochs = history["epoch"].dropna() if history is not None and "epoch" in history else []
        last = trial.last_result or {}
        tested = any(key.startswith("test/") for key in last)
        if trial.status == Trial.ERROR:
            status = FAILED
        elif trial.status == Trial.TERMINATED:
            status = FINISHED if tested else STOPPED
        else:
            status = UNFINISHED
        rows.append({
            "trial_id": trial.trial_id,
            **{name: trial.config.get(name) for name in space},
            "best_valid_score": ((max if bigger_is_better else min)(scores) if len(scores) else None),
            **{key: value for key, value in last.items() if key.startswith("test/")},
            "epochs": int(max(epochs)) if len(epochs) else 0,
            "status": status,
            "error": _error_summary(trial.get_error()) if status == FAILED else "",
        })
    return rows


def best_row(rows, bigger_is_better):
    """The finished trial with the best valid score, or None."""
    finished = [row for row in rows if row["status"] == FINISHED]
    if not finished:
        return None
    return (max if bigger_is_better else min)(finished, key=lambda row: row["best_valid_score"])


def _error_summary(error):
    # Ray wraps the trial's exception in its traceback text; the exception's own line is the last.
    lines = [line.strip() for line in str(error or "").splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__


def write_tables(rows, prefix):
    """Write ``prefix.csv`` and ``prefix.md``, each complete or not at all."""
    prefix = Path(prefix)
    columns = list(dict.fromkeys(key for row in rows for key in row))
    csv_path, md_path = prefix.with_name(prefix.name + ".csv"), prefix.with_name(prefix.name + ".md")

    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    _write_atomically(csv_path, text.getvalue())

    def cell(value):
        if value is None:
            return ""
        # 4 significant digits keep small learning rates (5e-05) and metrics (0.0823) readable
        return f"{value:.4g}" if isinstance(value, float) else str(value).replace("|", "\\|")

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row.get(c)) for c in columns) + " |" for row in rows]
    _write_atomically(md_path, "\n".join(lines) + "\n")
    return csv_path, md_path


def _write_atomically(path, text):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)
