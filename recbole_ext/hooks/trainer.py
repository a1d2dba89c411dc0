"""``recbole.trainer.trainer``: checkpoints readable weights-only, written whole; torch's current
``amp``; the moment a trainer is built, announced.

* ``Trainer.__init__``: the model's class is allowlisted for weights-only loading (the checkpoint's
  config names it), and :func:`on_trainer_built` listeners are told (the commands hold RecBole's
  config dump back until the model has accepted its config). The checkpoint's name gets the
  process id (:func:`recbole_ext.checkpoints.unique_checkpoint_file`): RecBole's is the model and the
  time to the second, so two runs started together wrote, and tested, one file. Staging files that
  killed runs left in ``checkpoint_dir`` are removed (:func:`recbole_ext.files.remove_stale_staging`).
* ``Trainer._save_checkpoint``: written anew (:func:`recbole_ext.checkpoints.save_checkpoint`):
  protocol 2, a plain float score, no modules in ``other_parameter``, a staging file renamed into
  place. RecBole's wrote ``pickle_protocol=4``, which torch ≥ 2.6's weights-only loading cannot read.
* ``Trainer.fit``: with ``final_train_on_valid`` (``session_split``), after RecBole's fit a fresh
  model is trained on the training and validation sessions for the best epoch count, and that is
  the model the test reads (:func:`recbole_ext.protocols.final_fit.fit`).
* ``amp`` (the module's ``torch.cuda.amp``): torch 2.4 deprecated ``torch.cuda.amp.GradScaler``, so
  every RecBole training run warned (FutureWarning); ``torch.amp``'s, for CUDA, stand in.
* Distributed training (:mod:`recbole_ext.distributed`): ``AbstractTrainer.__init__`` wraps the model
  in ``DistributedDataParallel`` without a GPU id on the CPU (RecBole's passes ``local_rank`` as one,
  which torch refuses for a CPU module); ``Trainer.evaluate`` loads the best model on every rank from
  rank 0's checkpoint (only rank 0 writes one); ``Trainer._map_reduce`` keeps the metrics every rank
  computed from all ranks' gathered rows (``hooks/evaluator.py``) instead of averaging each rank's by
  its number of batches.

A plugin model's own trainer is a class registered by name, as RecBole looks trainers up
(``register_model(trainer_class=...)``), not a hook.
"""

import functools
import types

import recbole.trainer.trainer as trainer_module
import torch
from recbole.utils import set_color

from recbole_ext import checkpoints, distributed, files
from recbole_ext.hooks.replace import replace, wrap
from recbole_ext.protocols import final_fit

AbstractTrainer, Trainer = trainer_module.AbstractTrainer, trainer_module.Trainer
_built_listeners = []


def on_trainer_built(listener):
    """Call ``listener(trainer)`` whenever a RecBole trainer has been built; returns a function that
    removes it again."""
    _built_listeners.append(listener)
    return lambda: _built_listeners.remove(listener)


def install():
    checkpoints.allow_recbole_types()

    @wrap(Trainer, "__init__")
    def __init__(recbole_init, self, config, model):
        recbole_init(self, config, model)
        if config["single_spec"]:  # DDP ranks each load the file rank 0 writes: RecBole's name stays
            self.saved_model_file = checkpoints.unique_checkpoint_file(self.saved_model_file)
        files.remove_stale_staging(self.checkpoint_dir)
        checkpoints.allow_model_class(type(model))
        for listener in list(_built_listeners):
            listener(self)

    def _save_checkpoint(self, epoch, verbose=True, **kwargs):
        if not self.config["single_spec"] and self.config["local_rank"] != 0:
            return  # RecBole's rule: rank 0 writes
        saved_model_file = kwargs.pop("saved_model_file", self.saved_model_file)
        checkpoints.save_checkpoint(self, epoch, saved_model_file)
        if verbose:
            self.logger.info(set_color("Saving current", "blue") + f": {saved_model_file}")

    replace(Trainer, "_save_checkpoint", _save_checkpoint, __name__)

    @wrap(Trainer, "fit")
    def fit(recbole_fit, self, train_data, valid_data=None, verbose=True, saved=True, show_progress=False,
            callback_fn=None):
        return final_fit.fit(recbole_fit, self, train_data, valid_data, verbose=verbose, saved=saved,
                             show_progress=show_progress, callback_fn=callback_fn)

    def __init__(self, config, model):  # RecBole's AbstractTrainer.__init__, the wrapper built for the device
        self.config = config
        self.model = model
        if not config["single_spec"]:
            self.model, self.distributed_model = distributed.wrap_model(model, config)

    replace(AbstractTrainer, "__init__", __init__, __name__)

    @wrap(Trainer, "evaluate")
    def evaluate(recbole_evaluate, self, eval_data, load_best_model=True, model_file=None, show_progress=False):
        if eval_data and load_best_model and not self.config["single_spec"]:
            distributed.load_best_model(self, model_file or self.saved_model_file)
            load_best_model = False
        return recbole_evaluate(self, eval_data, load_best_model=load_best_model, model_file=model_file,
                                show_progress=show_progress)

    def _map_reduce(self, result, num_sample):
        return result  # every rank computed it from the rows of all ranks

    replace(Trainer, "_map_reduce", _map_reduce, __name__)

    replace(trainer_module, "amp", types.SimpleNamespace(
        GradScaler=functools.partial(torch.amp.GradScaler, "cuda"),
        autocast=functools.partial(torch.amp.autocast, "cuda"),
    ), __name__)
