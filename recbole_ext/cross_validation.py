"""k-fold cross-validation of the rating models (RatingMF, RatingNNMF, RatingMLP) through RecBole.

    from recbole_ext.cross_validation import cross_validate, format_summary
    print(format_summary(cross_validate("RatingMF", "ml-100k", folds=5)))

or ``python run.py --model=RatingMF --dataset=ml-100k --folds=5`` (``python -m recbole_ext run ...``). Each fold is one ordinary RecBole
run (``Config``, ``create_dataset``, ``data_preparation``, the model's trainer) with ``folds`` and
``fold`` set, so :class:`~recbole_ext.data.rating_dataset.RatingDataset` makes fold ``fold`` the test set;
the fold of every rating follows from ``seed`` alone. Every fold is tested twice: as configured, and
with predictions rounded to the nearest integer (``rounded_*``, the tutorial's rounded MAE).
"""

import time

import numpy as np
from recbole.utils import get_model

from recbole_ext.data.rating_dataset import check_fold
from recbole_ext.errors import ConfigError
from recbole_ext.model.rating import RatingRecommender
from recbole_ext.training import prepared_run


def cross_validate(model, dataset, folds=5, config_file_list=None, config_dict=None, on_fold=None, only_fold=None):
    """Train and test ``model`` on each of ``folds`` folds of ``dataset`` (on fold ``only_fold`` alone,
    if given: an integer in [0, folds - 1]).

    ``on_fold(result)`` is called after every fold. Returns ``{"folds": [result, ...], "summary":
    {metric: (mean, std)}}``; a fold's result holds ``fold``, ``test_result``, ``rounded_test_result``,
    ``best_valid_result``, ``epochs`` and ``fit_seconds`` (wall time of ``Trainer.fit``, validation
    included). The std is over folds with ddof=0, as Surprise's ``cross_validate`` reports it.
    """
    model_class = get_model(model)
    if not issubclass(model_class, RatingRecommender):
        raise ConfigError(
            f"folds: cross-validation is for the rating models (RatingMF, RatingNNMF, RatingMLP), not {model!r}"
        )
    if isinstance(folds, bool) or not isinstance(folds, int) or folds < 2:
        raise ConfigError(f"folds: {folds!r} is not allowed; use an integer >= 2 for cross-validation")
    if only_fold is not None:
        check_fold(folds, only_fold)
    results = []
    for fold in range(folds) if only_fold is None else [only_fold]:
        fold_dict = {**(config_dict or {}), "folds": folds, "fold": fold}
        result = train_fold(model, dataset, config_file_list, fold_dict)
        results.append(result)
        if on_fold is not None:
            on_fold(result)
    return {"folds": results, "summary": summarize(results)}


def train_fold(model, dataset, config_file_list, config_dict):
    """One RecBole run on the fold ``config_dict`` names (:func:`recbole_ext.training.prepared_run`)."""
    with prepared_run(model, dataset, config_file_list, config_dict) as (config, trainer, splits):
        train_data, valid_data, test_data = splits
        for key in ("folds", "fold"):
            if config[key] != config_dict[key]:
                raise ConfigError(f"{key}: {config[key]!r} from the command line or a config file contradicts "
                                  f"cross-validation's {key}: {config_dict[key]!r}")
        validated = []
        started = time.perf_counter()
        _, best_valid = trainer.fit(train_data, valid_data, verbose=False, saved=True,
                                    show_progress=config["show_progress"],
                                    callback_fn=lambda epoch, score: validated.append(epoch))
        fit_seconds = time.perf_counter() - started
        test = trainer.evaluate(test_data, load_best_model=True, show_progress=False)
        trainer.model.round_predictions = True
        rounded = trainer.evaluate(test_data, load_best_model=False, show_progress=False)
    return {
        "fold": config["fold"],
        "test_result": {k: float(v) for k, v in test.items()},
        "rounded_test_result": {k: float(v) for k, v in rounded.items()},
        "best_valid_result": {k: float(v) for k, v in (best_valid or {}).items()},
        "epochs": validated[-1] + 1 if validated else config["epochs"],
        "fit_seconds": fit_seconds,
    }


def summarize(results):
    """``{name: (mean, std)}`` over folds for each test metric, rounded metric and ``fit_seconds``."""
    columns = {}
    for result in results:
        for name, value in result["test_result"].items():
            columns.setdefault(name, []).append(value)
        for name, value in result["rounded_test_result"].items():
            columns.setdefault(f"rounded_{name}", []).append(value)
        columns.setdefault("fit_seconds", []).append(result["fit_seconds"])
    return {name: (float(np.mean(values)), float(np.std(values))) for name, values in columns.items()}


def format_summary(cross_validation):
    """One line per fold and a mean ± std line per metric."""
    lines = []
    for result in cross_validation["folds"]:
        metrics = ", ".join(f"{k}: {v:.4f}" for k, v in result["test_result"].items())
        rounded = ", ".join(f"rounded_{k}: {v:.4f}" for k, v in result["rounded_test_result"].items())
        lines.append(f"fold {result['fold']}: {metrics}, {rounded}, epochs: {result['epochs']}, "
                     f"fit: {result['fit_seconds']:.1f} s")
    for name, (mean, std) in cross_validation["summary"].items():
        lines.append(f"{name}: {mean:.4f} ± {std:.4f}")
    return "\n".join(lines)
