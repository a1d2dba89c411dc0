"""One training and test of one model, as the searches, benchmarks and cross-validation run it:
RecBole's own preparation (``Config``, seeds, logger, data splits, model, trainer) and ``Trainer.fit``,
plus what they need beyond RecBole's result dict: each epoch's whole valid result and wall time
(:class:`recbole_ext.trainer.EpochRecords`; RecBole's ``fit`` callback does not pass them on)."""

import contextlib
import shutil
import tempfile
import time

from recbole.config import Config
from recbole.data import create_dataset, data_preparation
from recbole.utils import get_model, get_trainer, init_logger, init_seed

from recbole_ext.trainer import with_epoch_records


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
        trainer = with_epoch_records(get_trainer(config["MODEL_TYPE"], config["model"]))(config, net)
        yield config, trainer, (train_data, valid_data, test_data)
    finally:
        shutil.rmtree(checkpoint_dir, ignore_errors=True)


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
    target_field = getattr(dataset, "target_field", None)
    if target_field is not None and target_field in dataset.inter_feat:
        return int((dataset.inter_feat[target_field] > 0).sum())
    return len(dataset.inter_feat)
