"""``final_train_on_valid: True`` (``session_split``): the test is scored by a model trained on the
training *and* validation sessions, as GRU4Rec reports its results.

GRU4Rec's protocol (its ``examples/rsc15/preprocess.py`` writes ``train_tr`` / ``train_valid`` for
choosing a configuration, and ``train_full`` / ``test`` for the reported run): a configuration is
chosen by training on the training sessions and evaluating on the validation sessions; the model
that is tested is trained on both. In RecBole's flow that is one extra fit at the end of
``Trainer.fit`` (the hook in :mod:`recbole_ext.hooks.trainer`), so ``run_recbole``, the ``run``
command, ``training.train_and_test`` (searches, benchmarks) all test that model without a change:

1. RecBole's fit runs as always: training split, validation after every ``eval_step`` epochs, early
   stopping; its best validation result is what ``fit`` returns.
2. Then a fresh model (the same seed, so the same initial weights) is trained on the final split —
   every event of the training and validation sessions, validation events whose item no training
   session has included (:func:`recbole_ext.protocols.split.final_training_split`) — for b + 1
   epochs, b the best validation epoch (0-based; every epoch when no validation ran), without
   validation. Each of its epochs is saved to the run's checkpoint, so the test (``load_best_model``)
   reads its last: the model the test reports and ``load_data_and_model`` loads.

The trainer keeps ``final_fit_epochs`` (b + 1) and, when it records them, the final fit's epoch times
apart (``final_train_seconds``; ``train_seconds`` stays the selection fit's).
"""

from recbole.utils import get_model, init_seed

FINAL_TRAIN = "final_train"  # the attribute of a training split that holds the final fit's split


def attach(train_split, final_split):
    """Keep ``final_split`` on the training split (its copies carry it along); returns ``train_split``."""
    setattr(train_split, FINAL_TRAIN, final_split)
    return train_split


def final_split(train_split):
    """The final fit's split kept on ``train_split``, or None (no final fit)."""
    return getattr(train_split, FINAL_TRAIN, None)


def fit(recbole_fit, trainer, train_data, valid_data=None, verbose=True, saved=True, show_progress=False,
        callback_fn=None):
    """RecBole's ``Trainer.fit``, then, where the training split carries a final split, the final fit
    (module docstring). Returns what RecBole's fit returns: the best validation score and result."""
    final = final_split(train_data._dataset)
    if final is None or not valid_data:
        return recbole_fit(trainer, train_data, valid_data, verbose=verbose, saved=saved,
                           show_progress=show_progress, callback_fn=callback_fn)
    best_epoch = []

    def after_validation(epoch_idx, valid_score):
        if trainer.cur_step == 0:  # RecBole's early stopping has just taken this epoch as its best
            best_epoch[:] = [epoch_idx]
        if callback_fn is not None:
            callback_fn(epoch_idx, valid_score)

    score, result = recbole_fit(trainer, train_data, valid_data, verbose=verbose, saved=saved,
                                show_progress=show_progress, callback_fn=after_validation)
    epochs = best_epoch[0] + 1 if best_epoch else trainer.epochs
    _final_fit(recbole_fit, trainer, train_data, final, epochs, verbose, saved, show_progress)
    return score, result


def _final_fit(recbole_fit, trainer, train_data, final, epochs, verbose, saved, show_progress):
    config = trainer.config
    # as run_recbole: the loader (its shuffling generator seeded), then the seed, then the model
    loader = type(train_data)(config, final, train_data._sampler, shuffle=config["shuffle"])
    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    trainer.model = get_model(config["model"])(config, final).to(config["device"])
    trainer.optimizer = trainer._build_optimizer()
    kept = trainer.epochs, trainer.cur_step
    trainer.start_epoch, trainer.cur_step, trainer.epochs = 0, 0, epochs
    trainer.item_tensor = None
    recorded = getattr(trainer, "train_seconds", None)
    selection_epochs = len(recorded) if recorded is not None else 0
    if verbose:
        trainer.logger.info(f"final_train_on_valid: a fresh {config['model']} trained {epochs} epochs on the "
                            "training and validation sessions, for the test")
    recbole_fit(trainer, loader, None, verbose=verbose, saved=saved, show_progress=show_progress)
    trainer.epochs, trainer.cur_step = kept
    trainer.final_fit_epochs = epochs
    if recorded is not None:
        trainer.final_train_seconds = recorded[selection_epochs:]
        del recorded[selection_epochs:]
