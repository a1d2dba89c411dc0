"""The ``hyper`` command: Ray Tune searches over RecBole hyper files, for plugin and built-in models.

    python -m recbole_ext hyper --model=RNNCCE --dataset=ml-100k --params_file=hyper/rnncce.hyper --epochs=20
    python -m recbole_ext hyper --model=GRU4Rec --params_file=hyper/gru4rec.hyper --address=auto --gpus_per_trial=1
    python -m recbole_ext hyper --model=RNNCCE --dataset=ml-100k --resume      # continue an interrupted search

Any other ``--key=value`` is a config override for every trial (read as a literal, never evaluated).
The results table goes to ``STORAGE_PATH/NAME/results.{csv,md}`` unless ``--output_file`` names
another prefix. ``run_hyper.py`` is the same command.

A hyper file holds one ``name type value`` line per parameter, RecBole's syntax exactly::

    learning_rate loguniform -8,0        # e^-8 .. e^0: bounds are in log space
    dropout_prob choice [0.0,0.1,0.2]
    embedding_size quniform 32,128,32
    kl_weight uniform 0,1

Each trial trains through RecBole's own pipeline (:func:`recbole_ext.training.train_and_test`),
reports the valid metric and the whole valid result after every epoch (so ASHA can stop it) and its
test result at the end. Keys that no config layer defines are errors here (``strict_keys``), before
Ray starts: a misspelt key would otherwise cost a whole search.

On a Ray cluster (``--address``), ``--max_failures=N`` runs a trial again, up to N times, when it
fails — its worker or its node died, or it raised — and every epoch's report carries a Ray checkpoint
of the trial's training state (:func:`save_trial_state`, loadable weights-only), so a trial run again
continues after its last finished epoch (:func:`restore_trial_state`), with the random state it had
there. The results table counts the retries. A trial whose node cannot see the dataset fails with one
line naming the node and the path. docs/distributed.md shows a cluster search.
"""

import argparse
import ast
import contextlib
import csv
import io
import json
import math
import os
import pickle
import random
import shutil
import socket
import sys
import tempfile
from pathlib import Path

from recbole_ext import cli, files
from recbole_ext.errors import ConfigError, RecBoleExtError
from recbole_ext.keys import closest_key, literal_value

PARAM_TYPES = ("choice", "uniform", "loguniform", "quniform")
FORMS = (
    "name choice [v1,v2,...] | name uniform low,high | name loguniform low,high (log space) | "
    "name quniform low,high,q"
)
SETTINGS_FILE = "run_hyper.json"
# e^709 is the largest power of e a float holds: loguniform bounds are exponents.
MAX_LOG_BOUND = 709
EXIT_NO_TRIAL_FINISHED, EXIT_INTERRUPTED = 1, 130
# Flags that define a search: on --resume they come from the saved experiment and may only repeat it.
# (The hyper file is compared by content.)
SEARCH_FLAGS = ("model", "dataset", "config_files", "num_samples", "scheduler", "max_concurrent", "cpus_per_trial",
                "gpus_per_trial")

# Row statuses of the results table.
FINISHED, STOPPED, FAILED, UNFINISHED = "finished", "stopped early", "failed", "unfinished"


class HyperFileError(ConfigError):
    """A hyper file line that is not one of RecBole's forms."""


def parse_hyper_file(path):
    """``{name: (type, value)}`` from a RecBole hyper file; ``value`` is a list for ``choice`` and a
    tuple of numbers otherwise. Comments (``#``) and blank lines are allowed."""
    space = {}
    for number, raw in enumerate(_hyper_lines(path), start=1):
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


def _hyper_lines(path):
    """The lines of a hyper file, read as UTF-8; a file that cannot be read is one HyperFileError."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as error:
        raise HyperFileError(f"{path}: cannot read the hyper file ({error.strerror or error})") from None
    text = cli.utf8_text(raw, lambda line, bad: HyperFileError(
        f"{path}:{line}: bytes {bad!r} are not UTF-8; save the hyper file as UTF-8"))
    return text.splitlines(keepends=True)


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
    if kind == "loguniform" and max(map(abs, numbers)) > MAX_LOG_BOUND:
        raise HyperFileError(
            f"{where}: loguniform bounds are exponents (e^low..e^high), got {value!r}: e^{max(numbers, key=abs):g} "
            f"is out of range; use bounds within ±{MAX_LOG_BOUND}, e.g. -8,0 for e^-8..1"
        )
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


def check_parameter_names(space, model, dataset, config_files, overrides):
    """Build the model's Config once, strictly, and refuse hyper names that are not keys of it.

    A key counts when any layer defines it: RecBole's ``overall.yaml``, the model's YAML (RecBole's
    or the plugin's), the dataset YAML, recbole-ext's properties, the config files or the overrides.
    An override no layer defines is refused too (``strict_keys``). Returns the Config.
    """
    from recbole.config import Config

    with cli.without_command_line():
        config = Config(model=model, dataset=dataset, config_file_list=config_files,
                        config_dict={**overrides, "strict_keys": True})
    unknown = sorted(name for name in space if name not in config.final_config_dict)
    if unknown:
        hints = "".join(f" (did you mean {closest_key(name, config)!r} for {name!r}?)"
                        for name in unknown if closest_key(name, config))
        raise ConfigError(
            f"{', '.join(map(repr, unknown))} {'is not a config key' if len(unknown) == 1 else 'are not config keys'} "
            f"of {model} on {dataset}{hints}; hyper files may only name keys that RecBole's overall.yaml, the "
            "model's YAML, the dataset YAML, --config_files or a --key=value override define"
        )
    return config


def train_trial(params, model, dataset, config_files, overrides):
    """Ray Tune trainable: one RecBole run, reporting (with a checkpoint) after every epoch, continuing
    from the trial's last checkpoint when Ray runs it again after a failure."""
    import ray

    import recbole_ext  # noqa: F401  (a fresh Ray worker must register the plugin models)
    from ray import tune

    def report_checkpoint(metrics, folder):
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder))

    checkpoint = tune.get_checkpoint()
    with checkpoint.as_directory() if checkpoint is not None else contextlib.nullcontext() as restored:
        run_trial(params, model, dataset, config_files, overrides, tune.report, ray.get_gpu_ids(),
                  report_checkpoint=report_checkpoint, resume_from=restored, node=ray_node())


def run_trial(params, model, dataset, config_files, overrides, report, gpu_ids=(), report_checkpoint=None,
              resume_from=None, node=None):
    """Train one trial through RecBole; ``report(metrics)`` after every epoch and once at the end.

    ``gpu_ids`` are the GPUs Ray gave the trial: RecBole's ``gpu_id`` would otherwise point every
    trial at GPU 0 (it sets ``CUDA_VISIBLE_DEVICES`` itself), and an empty one trains on the CPU.
    With ``report_checkpoint``, each epoch is reported as ``report_checkpoint(metrics, folder)``,
    ``folder`` holding the training state (:func:`save_trial_state`); ``resume_from``, a folder so
    saved, continues the training after that epoch. ``node`` (``{"node_id", "node"}``, the Ray node's
    id and a readable name; the host name by default) is named by a missing-dataset error, and its
    ``node_id`` is added to every epoch's report (the table's trials can be traced to their nodes).
    """
    from recbole_ext.errors import DatasetNotFoundError
    from recbole_ext.training import train_and_test

    node = node or {"node": socket.gethostname()}
    training = {}

    def before_fit(trainer, train_data):
        training.update(trainer=trainer, train_data=train_data)
        if resume_from is not None:
            restore_trial_state(trainer, train_data, resume_from)

    def report_epoch(epoch, valid_score, valid_result, seconds):
        metrics = {"epoch": epoch, "valid_score": valid_score, **_prefixed("valid/", valid_result)}
        if "node_id" in node:
            metrics["node_id"] = node["node_id"]
        if report_checkpoint is None:
            report(metrics)
            return
        with tempfile.TemporaryDirectory(prefix="recbole-ext-trial-") as folder:
            save_trial_state(training["trainer"], training["train_data"], epoch, folder)
            report_checkpoint(metrics, folder)

    config = {**overrides, **params, "strict_keys": True, "show_progress": False,
              "gpu_id": ",".join(map(str, gpu_ids))}
    try:
        with cli.without_command_line():
            checkpointed = report_checkpoint is not None or resume_from is not None
            result = train_and_test(model, dataset, config_files, config, report_epoch,
                                    **({"before_fit": before_fit} if checkpointed else {}))
    except DatasetNotFoundError as error:
        raise DatasetNotFoundError(
            f"node {node['node']} cannot see the dataset: {error} On a Ray cluster every node reads the data "
            "itself: put it on storage that every node mounts at the same path and pass that path as --data_path."
        ) from None
    report({
        "epoch": result["epochs"],
        "valid_score": result["best_valid_score"],
        **_prefixed("best_valid/", result["best_valid_result"]),
        **_prefixed("test/", result["test_result"]),
    })
    return result


def _prefixed(prefix, result):
    return {f"{prefix}{key}": float(value) for key, value in result.items()}


def ray_node():
    """``{"node_id": Ray's id of this node, "node": its IP address, host name and short id}``."""
    import ray

    node_id = ray.get_runtime_context().get_node_id()
    return {"node_id": node_id,
            "node": f"{ray.util.get_node_ip_address()} (host {socket.gethostname()}, Ray node {node_id[:8]})"}


# ---------------------------------------------------------------- trial checkpoints

TRIAL_STATE_FILE, BEST_MODEL_FILE = "trial_state.pth", "best_model.pth"


def save_trial_state(trainer, train_data, epoch, folder):
    """Write what a trial needs to continue after ``epoch`` finished epochs into ``folder``: the
    weights, the optimizer, RecBole's early-stopping state, the best valid result, every random state
    the next epoch draws from (torch, numpy, Python, the training loader's generator) in
    ``trial_state.pth`` (protocol 2, tensors and plain values: it loads with ``weights_only=True``),
    and the best checkpoint so far as ``best_model.pth`` (RecBole's, written weights-only loadable by
    :mod:`recbole_ext.checkpoints`)."""
    import numpy as np
    import torch

    from recbole_ext.checkpoints import CHECKPOINT_PICKLE_PROTOCOL, weights_only_other_parameter

    kind, keys, position, has_gauss, cached_gaussian = np.random.get_state()
    state = {
        "epoch": int(epoch),
        "state_dict": trainer.model.state_dict(),
        "other_parameter": weights_only_other_parameter(trainer.model),
        "optimizer": trainer.optimizer.state_dict(),
        "cur_step": int(trainer.cur_step),
        "best_valid_score": float(trainer.best_valid_score),
        "best_valid_result": {key: float(value) for key, value in (trainer.best_valid_result or {}).items()},
        "stopped": trainer.cur_step > trainer.stopping_step,  # RecBole's early-stopping rule
        "train_loss": {int(k): float(v) for k, v in trainer.train_loss_dict.items()},
        "random": {
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), int(position), int(has_gauss),
                      float(cached_gaussian)),
            "python": random.getstate(),
            "loader": train_data.generator.get_state(),
        },
    }
    torch.save(state, os.path.join(folder, TRIAL_STATE_FILE), pickle_protocol=CHECKPOINT_PICKLE_PROTOCOL)
    if os.path.isfile(trainer.saved_model_file):
        shutil.copyfile(trainer.saved_model_file, os.path.join(folder, BEST_MODEL_FILE))


def restore_trial_state(trainer, train_data, folder):
    """Continue the training :func:`save_trial_state` saved in ``folder``: after its epoch, with its
    random states, its best checkpoint in the place RecBole tests from. When that training had ended
    (the last epoch, or early stopping), the model holds the best weights and trains no more."""
    import numpy as np
    import torch

    state = torch.load(os.path.join(folder, TRIAL_STATE_FILE), map_location=trainer.device, weights_only=True)
    best = os.path.join(folder, BEST_MODEL_FILE)
    if os.path.isfile(best):
        shutil.copyfile(best, trainer.saved_model_file)
    trainer.model.load_state_dict(state["state_dict"])
    trainer.model.load_other_parameter(state["other_parameter"])
    trainer.optimizer.load_state_dict(state["optimizer"])
    trainer.start_epoch = state["epoch"]
    trainer.cur_step = state["cur_step"]
    trainer.best_valid_score = state["best_valid_score"]
    trainer.best_valid_result = state["best_valid_result"]
    trainer.train_loss_dict = dict(state["train_loss"])
    if state["stopped"] or trainer.start_epoch >= trainer.epochs:
        # RecBole's fit then trains no more and saves the model as the best checkpoint
        trainer.epochs = trainer.start_epoch
        if os.path.isfile(best):
            best_state = torch.load(best, map_location=trainer.device, weights_only=True)
            trainer.model.load_state_dict(best_state["state_dict"])
    saved = state["random"]
    torch.set_rng_state(saved["torch"].cpu())
    if saved["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in saved["cuda"]])
    kind, keys, position, has_gauss, cached_gaussian = saved["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, cached_gaussian))
    random.setstate(_tuples(saved["python"]))
    train_data.generator.set_state(saved["loader"].cpu())
    trainer.logger.info(f"trial continues after epoch {trainer.start_epoch} from its checkpoint {folder}")


def _tuples(value):
    # Python's random state is nested tuples; unpickled weights-only they may come back as lists
    return tuple(_tuples(v) for v in value) if isinstance(value, (list, tuple)) else value


def save_settings(experiment_path, settings):
    """Keep what defines a search next to Ray's state, so ``--resume`` runs the same trials."""
    _write_atomically(Path(experiment_path) / SETTINGS_FILE, json.dumps(settings, indent=2) + "\n")


SETTINGS_KEYS = ("model", "dataset", "config_files", "space", "overrides", "num_samples", "scheduler", "max_concurrent",
                 "cpus_per_trial", "gpus_per_trial", "valid_metric", "bigger", "epochs")


def load_settings(experiment_path):
    """The settings :func:`save_settings` kept, or None when there are none; a file that is not
    what it wrote is one ConfigError naming it."""
    path = Path(experiment_path) / SETTINGS_FILE
    if not path.is_file():
        return None
    damaged = f"--resume: {path} is damaged"
    remedy = "; it is not what `hyper` wrote, so the search cannot be resumed (start a new one with another --name)"
    try:
        settings = json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{damaged}: its bytes are not UTF-8{remedy}") from None
    except json.JSONDecodeError as error:
        raise ConfigError(f"{damaged}: not JSON ({error.msg}, line {error.lineno}){remedy}") from None
    missing = [key for key in SETTINGS_KEYS if not isinstance(settings, dict) or key not in settings]
    if missing:
        raise ConfigError(f"{damaged}: it holds no {', '.join(map(repr, missing))}{remedy}")
    try:
        # JSON keeps tuples as lists: give the space back the form parse_hyper_file returns.
        settings["space"] = {
            name: (kind, value if kind == "choice" else tuple(value)) for name, (kind, value) in settings["space"].items()
        }
        if not all(kind in PARAM_TYPES for kind, _ in settings["space"].values()):
            raise ValueError
    except (AttributeError, TypeError, ValueError):
        raise ConfigError(f"{damaged}: its 'space' is not a search space{remedy}") from None
    return settings


def results_table(experiment_path, space, bigger_is_better):
    """One row per trial of the experiment on disk: params, best valid score, test result, epochs
    run, status (finished, stopped early, failed, unfinished), how often Ray ran it again after a
    failure (``retries``, ``--max_failures``) and the error of a failed trial."""
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
            # every failure but a failed trial's last was followed by a retry
            "retries": max(0, trial.num_failures - (status == FAILED)),
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
    # a staging file unique to this writer, renamed over path; a failed write leaves path as it was
    files.write_text(path, text)


# ---------------------------------------------------------------- the command


def parse_args(argv, prog="hyper"):
    parser = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", "-m", default=None, help="model name (default: RNNCCE)")
    parser.add_argument("--dataset", "-d", default=None, help="dataset name (default: ml-100k)")
    parser.add_argument("--config_files", default=None, help="space-separated config files")
    parser.add_argument("--params_file", default=None, help="RecBole hyper file (required unless --resume)")
    parser.add_argument("--num_samples", type=int, default=None,
                        help="trials (default: the grid when every line is `choice`, else 20 samples)")
    parser.add_argument("--scheduler", choices=["asha", "fifo"], default=None,
                        help="asha (default) stops poor trials early on the valid metric; fifo runs all to the end")
    parser.add_argument("--max_concurrent", type=int, default=None, help="trials at once (default: as resources allow)")
    parser.add_argument("--cpus_per_trial", type=float, default=None, help="CPUs per trial (default: 1)")
    parser.add_argument("--gpus_per_trial", type=float, default=None,
                        help="GPUs per trial (default: 0); fractions share a GPU")
    parser.add_argument("--max_failures", type=int, default=None,
                        help="run a failed trial again up to N times, from its last epoch's checkpoint (default: 0; "
                             "on a cluster, where a node can be lost, e.g. 3)")
    parser.add_argument("--address", default=None,
                        help="existing Ray cluster, e.g. auto or HOST:6379 (default: $RAY_ADDRESS, else a local Ray)")
    parser.add_argument("--num_cpus", type=int, default=None, help="CPUs of a local Ray (default: all)")
    parser.add_argument("--storage_path", default="ray_results", help="where Ray keeps experiments (default: ray_results)")
    parser.add_argument("--name", default=None, help="experiment name (default: MODEL-DATASET)")
    parser.add_argument("--resume", action="store_true", help="continue the experiment NAME: finished trials are kept")
    parser.add_argument("--retry_failed", action="store_true", help="with --resume: run failed trials again")
    parser.add_argument("--output_file", default=None, help="results table prefix (default: STORAGE_PATH/NAME/results)")
    args, overrides = parser.parse_known_args(argv)
    for arg in overrides:
        if not arg.startswith("--") or "=" not in arg:
            parser.error(f"unrecognized argument {arg!r}; config overrides are --key=value")
    args.overrides = dict(arg[2:].split("=", 1) for arg in overrides)
    for flag in ("model", "dataset", "name"):
        if getattr(args, flag) is not None and not getattr(args, flag).strip():
            parser.error(f"--{flag}: {getattr(args, flag)!r} is empty; give a name")
    for flag in ("num_samples", "max_concurrent", "num_cpus"):
        if getattr(args, flag) is not None and getattr(args, flag) < 1:
            parser.error(f"--{flag}: {getattr(args, flag)} is not allowed; use a positive integer")
    if args.max_failures is not None and args.max_failures < 0:
        parser.error(f"--max_failures: {args.max_failures} is not allowed; use an integer >= 0")
    if args.max_failures is not None and args.resume:
        parser.error("--max_failures is the search's own: a resumed search keeps the one it started with")
    if args.retry_failed and not args.resume:
        parser.error("--retry_failed needs --resume")
    if args.address and args.num_cpus:
        parser.error("--num_cpus sizes a local Ray; a cluster given by --address has its own CPUs")
    return args


def new_settings(args):
    """The search's settings from the command line, checked before Ray starts."""
    if args.params_file is None:
        raise ConfigError("--params_file is required (a RecBole hyper file, see hyper/)")
    config_files = [str(Path(f).resolve()) for f in args.config_files.split()] if args.config_files else []
    for path in [args.params_file, *config_files]:
        if not os.path.isfile(path):
            raise ConfigError(f"{path!r} is not a file")
    for path in config_files:
        cli.check_config_file(path)
    settings = {
        "model": args.model or "RNNCCE",
        "dataset": args.dataset or "ml-100k",
        "config_files": config_files,
        "params_file": args.params_file,
        "space": parse_hyper_file(args.params_file),
        "overrides": absolute_data_path(args.overrides),
        "num_samples": args.num_samples,
        "scheduler": args.scheduler or "asha",
        "max_concurrent": args.max_concurrent,
        "cpus_per_trial": 1 if args.cpus_per_trial is None else args.cpus_per_trial,
        "gpus_per_trial": 0 if args.gpus_per_trial is None else args.gpus_per_trial,
        "max_failures": args.max_failures or 0,
    }
    config = check_parameter_names(
        settings["space"], settings["model"], settings["dataset"], config_files, config_dict(settings["overrides"])
    )
    settings.update(valid_metric=config["valid_metric"], bigger=config["valid_metric_bigger"], epochs=config["epochs"])
    return settings


def resumed_settings(args, experiment):
    settings = load_settings(experiment)
    if settings is None:
        raise ConfigError(f"--resume: no experiment to resume at {experiment} (see --storage_path, --name)")
    given = {flag: getattr(args, flag) for flag in SEARCH_FLAGS}
    if args.config_files:
        given["config_files"] = [str(Path(f).resolve()) for f in args.config_files.split()]
    for flag in SEARCH_FLAGS:
        if given[flag] is not None and given[flag] != settings[flag]:
            raise ConfigError(
                f"--resume: --{flag}={given[flag]!r} differs from the experiment's {settings[flag]!r}; "
                "a resumed search keeps its settings (drop the flag, or start a new search with another --name)"
            )
    if args.params_file is not None and parse_hyper_file(args.params_file) != settings["space"]:
        raise ConfigError(f"--resume: {args.params_file} changed since the search started")
    overrides = absolute_data_path(args.overrides)
    if overrides and overrides != settings["overrides"]:
        raise ConfigError(
            f"--resume: the overrides {overrides} differ from the experiment's {settings['overrides']}; "
            "a resumed search keeps its settings"
        )
    return settings


def absolute_data_path(overrides):
    # Trials run in their own folders: a relative data_path would point elsewhere there.
    if "data_path" in overrides:
        return {**overrides, "data_path": str(Path(overrides["data_path"]).resolve())}
    return dict(overrides)


def config_dict(overrides):
    """The overrides as values: kept as the strings given on the command line (also in
    ``run_hyper.json``), each read as a literal (:func:`recbole_ext.keys.literal_value`), never run."""
    return {key: literal_value(value) if isinstance(value, str) else value for key, value in overrides.items()}


def build_tuner(args, settings, experiment, callbacks=()):
    from ray import tune

    trainable = tune.with_resources(
        tune.with_parameters(
            train_trial, model=settings["model"], dataset=settings["dataset"],
            config_files=settings["config_files"] or None, overrides=config_dict(settings["overrides"]),
        ),
        {"cpu": settings["cpus_per_trial"], "gpu": settings["gpus_per_trial"]},
    )
    if args.resume and search_started(experiment):
        # An interrupted trial continues from its last epoch's checkpoint (train_trial).
        # Ray restores the run config, callbacks and failure config included, from the experiment's tuner.pkl.
        tuner_file = Path(experiment) / TUNER_FILE
        if not tuner_file.is_file():
            raise ConfigError(f"--resume: {tuner_file} is missing, and Ray restores a search from it; the search "
                              "cannot be resumed (start a new one with another --name)")
        try:
            return tune.Tuner.restore(experiment, trainable=trainable, resume_unfinished=True,
                                      resume_errored=False, restart_errored=args.retry_failed)
        except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, IndexError, TypeError,
                ValueError) as error:
            reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise ConfigError(f"--resume: {tuner_file} cannot be read ({type(error).__name__}: {reason}): Ray's "
                              "record of the search is damaged, so it cannot be resumed (start a new one with another "
                              "--name)") from None
    # A new search, or one killed before Ray started it (run_hyper.json is written first): started now.
    space = settings["space"]
    grid = is_grid(space) and settings["num_samples"] is None
    scheduler = None
    if settings["scheduler"] == "asha":
        from ray.tune.schedulers import ASHAScheduler

        # max_t past the last epoch: ASHA ends trials at max_t, which would cut off the test report.
        scheduler = ASHAScheduler(time_attr="epoch", max_t=int(settings["epochs"]) + 1, grace_period=1)
    return tune.Tuner(
        trainable,
        param_space=to_tune_space(space, grid),
        tune_config=tune.TuneConfig(
            metric="valid_score", mode="max" if settings["bigger"] else "min",
            num_samples=1 if grid else (settings["num_samples"] or 20),
            scheduler=scheduler, max_concurrent_trials=settings["max_concurrent"],
        ),
        run_config=tune.RunConfig(
            name=Path(experiment).name, storage_path=str(Path(experiment).parent), verbose=1,
            # a trial that fails (its worker or node died) runs again from its last checkpoint
            failure_config=tune.FailureConfig(max_failures=settings.get("max_failures", 0), fail_fast=False),
            # every epoch reports a checkpoint (train_trial); the latest is all a retry needs
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
            # each trial's RecBole log (written in its working folder) lands in its trial folder
            sync_config=tune.SyncConfig(sync_artifacts=True),
            callbacks=list(callbacks),
        ),
    )


TUNER_FILE = "tuner.pkl"  # Ray's record of the search (Tuner.restore reads it)


def search_started(experiment):
    """Whether Ray started the search in ``experiment``: it keeps ``experiment_state-*.json`` there
    once trials run. Before that (a search killed while starting) there is nothing to restore."""
    return any(Path(experiment).glob("experiment_state-*.json"))


def _only_leftovers(experiment):
    """Whether ``experiment`` holds nothing but staging files of killed writers (a search killed
    while writing run_hyper.json); they are removed then, and the folder if that empties it."""
    folder = Path(experiment)
    if not folder.is_dir() or folder.is_symlink():
        return False
    entries = os.listdir(folder)
    if not entries or any(files.writer_pid(entry) is None for entry in entries):
        return False
    files.remove_stale_staging(folder)
    try:
        folder.rmdir()
    except OSError:
        return False  # a writer is still running there
    return True


def main(argv=None, prog="hyper", callbacks=()):
    """The ``hyper`` command; returns the exit code (2 for bad input, with one line on stderr,
    130 when interrupted). ``callbacks`` are Ray Tune callbacks for a new search."""
    args = parse_args(sys.argv[1:] if argv is None else argv, prog)
    name = args.name or f"{args.model or 'RNNCCE'}-{args.dataset or 'ml-100k'}"
    experiment = str(Path(args.storage_path).resolve() / name)
    try:
        if args.resume:
            settings = resumed_settings(args, experiment)
        else:
            if os.path.exists(experiment) and not _only_leftovers(experiment):
                raise ConfigError(
                    f"experiment {experiment} exists; add --resume to continue it or choose another --name"
                )
            settings = new_settings(args)
            # first, so that a search killed at any point later can be resumed with --resume
            save_settings(experiment, settings)
    except RecBoleExtError as error:
        return cli.bad_input(prog, error)

    import ray

    started_ray = not ray.is_initialized()
    if started_ray:
        # "local": a Ray of its own, as --address's help says; with no address Ray joins whatever
        # cluster /tmp/ray/ray_current_cluster names, even one that has stopped
        address = args.address or os.environ.get("RAY_ADDRESS") or "local"
        # a cluster has its own CPUs (Ray refuses num_cpus when joining one, e.g. from $RAY_ADDRESS)
        num_cpus = args.num_cpus if address == "local" else None
        ray.init(address=address, num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)
    try:
        try:
            tuner = build_tuner(args, settings, experiment, callbacks)
        except RecBoleExtError as error:
            return cli.bad_input(prog, error)
        tuner.fit()
        rows = results_table(experiment, settings["space"], settings["bigger"])
    finally:
        if started_ray:
            ray.shutdown()
    try:
        return report(rows, settings, args, experiment, prog)
    except RecBoleExtError as error:
        return cli.bad_input(prog, error)


def report(rows, settings, args, experiment, prog="hyper"):
    """Write the results table and print the best trial; returns the exit status."""
    csv_path, md_path = write_tables(rows, args.output_file or os.path.join(experiment, "results"))
    counts = {status: sum(row["status"] == status for row in rows)
              for status in (FINISHED, STOPPED, FAILED, UNFINISHED)}
    print(f"\n{len(rows)} trial{'' if len(rows) == 1 else 's'} "
          f"({', '.join(f'{n} {status}' for status, n in counts.items() if n)}); "
          f"table: {csv_path}, {md_path}")
    best = best_row(rows, settings["bigger"])
    if best is not None:
        print("best params:", {name: best[name] for name in settings["space"]})
        print(f"best valid {settings['valid_metric']}: {best['best_valid_score']:.4f}")
        print("test:", {key[len("test/"):]: round(value, 4) for key, value in best.items() if key.startswith("test/")})
    if counts[UNFINISHED]:
        command = prog if prog.startswith("python") else f"python {prog}"
        print(f"interrupted: continue with `{command} --storage_path={args.storage_path} "
              f"--name={Path(experiment).name} --resume`")
        return EXIT_INTERRUPTED
    return 0 if best is not None else EXIT_NO_TRIAL_FINISHED
