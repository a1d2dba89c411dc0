"""``recbole.quick_start``: weights-only ``load_data_and_model`` and Ray ≥ 2.7's ``tune.report``.

* ``load_data_and_model``: the file is checked first (:func:`recbole_ext.checkpoints.check_checkpoint`:
  one :class:`CheckpointError` for a missing, truncated or non-RecBole file, or one that needs more
  than weights-only unpickling) and the model class it names is allowlisted; RecBole then loads it
  with torch's default, ``weights_only=True``. Replaced in ``recbole.quick_start`` too, which
  imported it by name.
* ``tune`` (the module's ``ray.tune``): Ray 2.7 changed ``tune.report(**metrics)`` to
  ``tune.report(metrics)``, so ``objective_function`` raised TypeError; a stand-in keeps the old form.
* ``run_recboles``: what ``run(..., nproc=N)`` starts in each of its processes (``mp.spawn``, which
  pickles the function by name): RecBole's, reached through this module, so that every process
  imports recbole_ext, and with it the hooks and the plugin models, before building its ``Config``.
"""

import recbole.quick_start as quick_start_package
import recbole.quick_start.quick_start as quick_start

from recbole_ext import checkpoints
from recbole_ext.hooks.replace import replace, wrap


class _Tune:
    """The part of ``ray.tune`` RecBole 1.2.1 calls, with the pre-2.7 ``report(**metrics)``."""

    @staticmethod
    def report(**metrics):
        from ray import tune

        tune.report(dict(metrics))


def run_recboles(rank, *args):
    """RecBole's ``run_recboles`` (one process of a distributed ``run``), named in recbole_ext."""
    return run_recboles.__wrapped__(rank, *args)


def install():
    @wrap(quick_start, "load_data_and_model", also_in=(quick_start_package,))
    def load_data_and_model(recbole_load_data_and_model, model_file):
        checkpoints.allow_checkpoint_model_class(model_file)
        checkpoints.check_checkpoint(model_file)
        return recbole_load_data_and_model(model_file)

    replace(quick_start, "tune", _Tune(), __name__)
    replace(quick_start, "run_recboles", run_recboles, __name__)
