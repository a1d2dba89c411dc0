"""``recbole.utils.get_model``: an unknown model name is an :class:`UnknownModelError` listing the
models there are. RecBole 1.2.1's last fallback imports ``exlib_recommender``, which imports lightgbm:
an unknown name gave ``ModuleNotFoundError: lightgbm``. ``Config`` and the quick-start functions
imported ``get_model`` by name, so the same wrapper stands in each of those namespaces."""

import recbole.config.configurator as configurator
import recbole.quick_start.quick_start as quick_start
import recbole.utils
import recbole.utils.utils

from recbole_ext import registry
from recbole_ext.hooks.replace import wrap


def install():
    @wrap(recbole.utils.utils, "get_model", also_in=(recbole.utils, configurator, quick_start))
    def get_model(recbole_get_model, model_name):
        if not isinstance(model_name, str) or not registry.is_known_model(model_name):
            raise registry.unknown_model_error(model_name)
        return recbole_get_model(model_name)
