"""One training and test of one model: as the ``run`` command runs it (:func:`run`, RecBole's
``run_recbole`` with a trainer that can be resumed after a kill) and as the searches, benchmarks and
cross-validation run it (:func:`train_and_test`): RecBole's own preparation (``Config``, seeds,
logger, data splits, model, trainer) and ``Trainer.fit``, plus what they need beyond RecBole's result
dict: each epoch's whole valid result and wall time (:class:`recbole_ext.trainer.EpochRecords`;
RecBole's ``fit`` callback does not pass them on)."""

import contextlib
import logging
import os
import shutil
import sys
import tempfile
import time

from recbole.config import Config
from recbole.data import create_dataset, data_preparation
from recbole.data.transform import construct_transform
from recbole.utils import get_environment, get_flops, get_model, get_trainer, init_logger, init_seed, set_color

from recbole_ext import checkpoints, files
from recbole_ext.trainer import resumable, with_epoch_records

TEMPORARY_CHECKPOINTS = "recbole-ext-run"


def run(model=None, dataset=None, config_file_list=None, config_dict=None, resume_file=None, saved=True):
    """The ``run`` command's run in one process: RecBole's ``run_recbole``, step for step (the same log
    and result dict), with a trainer that saves the state to continue the run before every epoch
    (:class:`recbole_ext.trainer.ResumableTraining`, ``saved/NAME.resume.pth``, removed once the run
    is tested). With ``resume_file`` it continues the run saved there, with that run's config
    (``model``, ``dataset``, ``config_file_list`` and ``config_dict`` are then unused): same data,
    same epochs, the same weights at the end as without the interruption."""
    state = checkpoints.load_resume_state(resume_file) if resume_file is not None else None
    if state is not None:
        config = state["config"]
    else:
        config = Config(model=model, dataset=dataset, config_file_list=config_file_list, config_dict=config_dict)
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
    logger = logging.getLogger()
    logger.info(sys.argv)
    logger.info(config)
    data = create_dataset(config)
    logger.info(data)
    train_data, valid_data, test_data = data_preparation(config, data)
    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    net = get_model(config["model"])(config, train_data._dataset).to(config["device"])
    logger.info(net)
    flops = get_flops(net, data, config["device"], logger, construct_transform(config))
    logger.info(set_color("FLOPs", "blue") + f": {flops}")
    trainer = resumable(get_trainer(config["MODEL_TYPE"], config["model"]))(config, net)
    if state is not None:
        trainer.resume_checkpoint(resume_file, state=state)
        del state
    best_valid_score, best_valid_result = trainer.fit(
        train_data, valid_data, saved=saved, show_progress=config["show_progress"]
    )
    test_result = trainer.evaluate(test_data, load_best_model=saved, show_progress=config["show_progress"])
    logger.info("The running environment of this training is as follows:\n" + get_environment(config).draw())
    logger.info(set_color("best valid ", "yellow") + f": {best_valid_result}")
    logger.info(set_color("test result", "yellow") + f": {test_result}")
    trainer.finish()
    return {
        "best_valid_score": best_valid_score,
        "valid_score_bigger": config["valid_metric_bigger"],
        "best_valid_result": best_valid_result,
        "test_result": test_result,
    }


@contextlib.contextmanager
def prepared_run(model, dataset, config_file_list=None, config_dict=None):
    """RecBole's own preparation of one run — ``Config``, seeds, logger, data splits, model, trainer —
    with the checkpoints in a temporary folder that is removed afterwards.

    Yields ``(config, trainer, (train_data, valid_data, test_data))``; ``trainer.model`` is the model.
    """
    remove_stale_checkpoint_dirs()
    checkpoint_dir = tempfile.mkdtemp(prefix=f"{TEMPORARY_CHECKPOINTS}-{os.getpid()}-")
    try:
        config = Config(model=model, dataset=dataset, config_file_list=config_file_list,
                        config_dict={**(config_dict or {}), "checkpoint_dir": checkpoint_dir})
        init_seed(config["seed"], config["reproducibility"])
        init_logger(config)
        train_data, valid_data, test_data = data_preparation(config, create_dataset(config))
        init_seed(config["seed"], config["reproducibility"])
        net = get_model(config["model"])(config, train_data._dataset).to(config["device"])
        trainer = with_epoch_records(get_trainer(config["MODEL_TYPE"], config["model"]))(config, net)
        yield config, trainer, (train_data, valid_data, test_data)
    finally:
        shutil.rmtree(checkpoint_dir, ignore_errors=True)


def remove_stale_checkpoint_dirs():
    """Remove the temporary checkpoint folders (:func:`prepared_run`) of runs that were killed: their
    name holds their process id. Only the files a run writes there are removed, by name pattern."""
    folder = tempfile.gettempdir()
    prefix = f"{TEMPORARY_CHECKPOINTS}-"
    for entry in os.listdir(folder):
        pid = entry[len(prefix):].split("-", 1)[0] if entry.startswith(prefix) else ""
        if not pid.isdigit() or files.process_is_running(int(pid)):
            continue
        path = os.path.join(folder, entry)
        if not os.path.isdir(path) or os.path.islink(path):
            continue
        for name in os.listdir(path):
            if name.endswith(".pth") or files.writer_pid(name) is not None:
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(path, name))
        with contextlib.suppress(OSError):
            os.rmdir(path)  # left in place if anything else is inside


def train_and_test(model, dataset, config_file_list=None, config_dict=None, on_epoch=None, before_fit=None):
    """Train ``model`` on ``dataset`` and test its best checkpoint.

    ``on_epoch(epoch, valid_score, valid_result, seconds)`` is called after every validation
    (``seconds`` since training started); ``before_fit(trainer, train_data)`` once the trainer is
    built, before it trains (a search's trial restores its state there and continues from
    ``trainer.start_epoch``). The checkpoint lives in a temporary folder, removed at the end.
    Returns RecBole's result dict plus ``epochs`` (epochs trained), ``seconds`` (training wall
    time), ``train_seconds`` (each epoch's training time) and ``train_targets`` per epoch.
    """
    with prepared_run(model, dataset, config_file_list, config_dict) as (config, trainer, splits):
        train_data, valid_data, test_data = splits
        if before_fit is not None:
            before_fit(trainer, train_data)
        epochs = [trainer.start_epoch]

        def after_validation(epoch_idx, valid_score):
            epochs[0] = epoch_idx + 1
            if on_epoch is not None:
                on_epoch(epoch_idx + 1, float(valid_score), dict(trainer.last_valid_result),
                         time.perf_counter() - started)

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
        "train_seconds": list(getattr(trainer, "train_seconds", [])),
        "train_targets": _training_targets(train_data._dataset),
    }


def _training_targets(dataset):
    count = getattr(dataset, "n_training_targets", None)
    return count() if count is not None else len(dataset.inter_feat)
