"""``recbole.utils.get_model``: an unknown model name is an :class:`UnknownModelError` listing the
models there are. RecBole 1.2.1's last fallback imports ``exlib_recommender``, which imports lightgbm:
an unknown name gave ``ModuleNotFoundError: lightgbm``. ``Config`` and the quick-start functions
imported ``get_model`` by name, so the same wrapper stands in each of those namespaces.

``recbole.utils.utils.ensure_dir``: RecBole checks that a folder exists, then makes it; two ranks of a
distributed run (``run(..., nproc=2)``) both make ``./log`` and the checkpoint folder, and the second
one's ``makedirs`` failed with ``FileExistsError`` when the first got there in between. It is made
with ``exist_ok`` instead, in every namespace that imported it by name."""

import os

import recbole.config.configurator as configurator
import recbole.data.dataset.dataset as dataset_module
import recbole.data.utils as data_utils
import recbole.quick_start.quick_start as quick_start
import recbole.trainer.trainer as trainer_module
import recbole.utils
import recbole.utils.logger as logger
import recbole.utils.utils

from recbole_ext import registry
from recbole_ext.hooks.replace import replace, wrap


def install():
    @wrap(recbole.utils.utils, "get_model", also_in=(recbole.utils, configurator, quick_start))
    def get_model(recbole_get_model, model_name):
        if not isinstance(model_name, str) or not registry.is_known_model(model_name):
            raise registry.unknown_model_error(model_name)
        return recbole_get_model(model_name)

    def ensure_dir(dir_path):
        os.makedirs(dir_path, exist_ok=True)

    replace(recbole.utils.utils, "ensure_dir", ensure_dir, __name__,
            also_in=(recbole.utils, logger, data_utils, trainer_module, dataset_module))
