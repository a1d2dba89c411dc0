"""One run: the ``run`` command (RecBole's ``run_recbole.py``) and :func:`train_and_test`.

    python -m recbole_ext run --model=RNNCCE --dataset=ml-100k [--config_files="a.yaml b.yaml"] [--key=value ...]

The command takes the flags of RecBole's ``run_recbole.py``; any other ``--key=value`` overrides a
config key (read as a literal, never evaluated). ``--folds=K`` (K >= 2) cross-validates a rating model
(:func:`recbole_ext.rating.cross_validate`) and prints each fold and mean ± std. It trains through RecBole's own ``run`` (so
``--nproc`` works as in RecBole). :func:`train_and_test` is the same run for searches and benchmarks,
which also need each epoch's full valid result and wall time (RecBole's ``Trainer.fit`` callback does
not pass them on).
"""

import argparse
import contextlib
import shutil
import sys
import tempfile
import time

import torch
from recbole.config import Config
from recbole.data import create_dataset, data_preparation
from recbole.utils import get_model, get_trainer, init_logger, init_seed


@contextlib.contextmanager
def prepared_run(model, dataset, config_file_list=None, config_dict=None):
    """RecBole's own preparation of one run — ``Config``, seeds, logger, data splits, model, trainer —
    with the checkpoints in a temporary folder that is removed afterwards.

    Yields ``(config, trainer, (train_data, valid_data, test_data))``; ``trainer.model`` is the model.
    """
    checkpoint_dir = tempfile.mkdtemp(prefix="recbole-ext-run-")
    try:
        config = Config(model=model, dataset=dataset, config_file_list=config_file_list,
                        config_dict={**(config_dict or {}), "checkpoint_dir": checkpoint_dir})
        init_seed(config["seed"], config["reproducibility"])
        init_logger(config)
        train_data, valid_data, test_data = data_preparation(config, create_dataset(config))
        init_seed(config["seed"], config["reproducibility"])
        net = get_model(config["model"])(config, train_data._dataset).to(config["device"])
        trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, net)
        yield config, trainer, (train_data, valid_data, test_data)
    finally:
        shutil.rmtree(checkpoint_dir, ignore_errors=True)


def train_and_test(model, dataset, config_file_list=None, config_dict=None, on_epoch=None):
    """Train ``model`` on ``dataset`` and test its best checkpoint.

    ``on_epoch(epoch, valid_score, valid_result, seconds)`` is called after every validation
    (``seconds`` since training started). The checkpoint lives in a temporary folder, removed at
    the end. Returns RecBole's result dict plus ``epochs`` (epochs trained), ``seconds`` (training
    wall time), ``train_seconds`` (each epoch's training time) and ``train_targets`` per epoch.
    """
    with prepared_run(model, dataset, config_file_list, config_dict) as (config, trainer, splits):
        train_data, valid_data, test_data = splits
        last_valid, epochs, train_seconds = {}, [0], []
        recbole_valid_epoch = trainer._valid_epoch
        recbole_train_epoch = trainer._train_epoch

        def train_epoch(*args, **kwargs):
            start = time.perf_counter()
            loss = recbole_train_epoch(*args, **kwargs)
            if str(config["device"]).startswith("cuda"):
                torch.cuda.synchronize()
            train_seconds.append(time.perf_counter() - start)
            return loss

        def valid_epoch(*args, **kwargs):
            score, result = recbole_valid_epoch(*args, **kwargs)
            last_valid.clear()
            last_valid.update(result)
            return score, result

        def after_validation(epoch_idx, valid_score):
            epochs[0] = epoch_idx + 1
            if on_epoch is not None:
                on_epoch(epoch_idx + 1, float(valid_score), dict(last_valid), time.perf_counter() - started)

        trainer._valid_epoch = valid_epoch
        trainer._train_epoch = train_epoch
        started = time.perf_counter()
        best_score, best_valid = trainer.fit(
            train_data, valid_data, verbose=False, saved=True, show_progress=config["show_progress"],
            callback_fn=after_validation,
        )
        seconds = time.perf_counter() - started
        test = trainer.evaluate(test_data, load_best_model=True, show_progress=config["show_progress"])
    return {
        "best_valid_score": float(best_score),
        "valid_score_bigger": config["valid_metric_bigger"],
        "best_valid_result": dict(best_valid),
        "test_result": dict(test),
        "epochs": epochs[0],
        "seconds": seconds,
        "train_seconds": train_seconds,
        "train_targets": _training_targets(train_data._dataset),
    }


def _training_targets(dataset):
    target_field = getattr(dataset, "target_field", None)
    if target_field is not None and target_field in dataset.inter_feat:
        return int((dataset.inter_feat[target_field] > 0).sum())
    return len(dataset.inter_feat)


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="run", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", "-m", default="RNNCCE", help="model name (default: RNNCCE)")
    parser.add_argument("--dataset", "-d", default="ml-100k", help="dataset name (default: ml-100k)")
    parser.add_argument("--config_files", default=None, help="space-separated config files")
    parser.add_argument("--nproc", type=int, default=1, help="processes for distributed training")
    parser.add_argument("--ip", default="localhost", help="master address for distributed training")
    parser.add_argument("--port", default="5678", help="master port for distributed training")
    parser.add_argument("--world_size", type=int, default=-1, help="total processes across machines")
    parser.add_argument("--group_offset", type=int, default=0, help="rank offset of this machine")
    return parser.parse_known_args(argv)


def main(argv=None, prog="run"):
    """The ``run`` command; returns the exit code (2 for bad input, with one line on stderr)."""
    from recbole.quick_start import run
    from recbole.utils import dict2str

    from recbole_ext import cli
    from recbole_ext.errors import RecBoleExtError

    args, extra = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        if args.nproc < 1:
            raise RecBoleExtError(f"--nproc: {args.nproc} is not allowed; use an integer >= 1")
        overrides = cli.config_overrides(extra)
        config_files = cli.config_files(args.config_files)
        if overrides.get("folds", 1) != 1:
            return _cross_validate(args, overrides, config_files, prog)
        with cli.without_command_line(), cli.one_line_warnings(prog), cli.console_log_held_until_training():
            result = run(
                args.model, args.dataset, config_file_list=config_files, config_dict=overrides,
                nproc=args.nproc, world_size=args.world_size, ip=args.ip, port=args.port,
                group_offset=args.group_offset,
            )
    except RecBoleExtError as error:
        return cli.bad_input(prog, error)
    if result is not None:
        print(f"best valid: {dict2str(result['best_valid_result'])}")
        print(f"test result: {dict2str(result['test_result'])}")
    return 0


def _cross_validate(args, overrides, config_files, prog):
    from recbole_ext import cli, rating

    folds = overrides.pop("folds")
    with cli.without_command_line(), cli.one_line_warnings(prog):
        summary = rating.cross_validate(args.model, args.dataset, folds, config_files, overrides)
    print(rating.format_summary(summary))
    return 0
