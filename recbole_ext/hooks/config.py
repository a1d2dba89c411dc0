"""``recbole.config.configurator.Config``: numpy 2's aliases, literal values instead of ``eval``,
recbole-ext's YAML layers, key checks and the run settings (:mod:`recbole_ext.settings`).

* ``compatibility_settings``: numpy 2 removed ``np.float_``, ``np.complex_`` and ``np.unicode_``, so
  RecBole's own version raises AttributeError and no ``Config`` can be built; RecBole then needs the
  aliases it sets (``np.float`` in metrics.py, ``np.long`` in layers.py, ``np.bool`` …).
* ``_convert_config_dict``: RecBole ``eval``s every string from the command line and ``config_dict``
  (``--foo=__import__('os').system(...)`` runs); values are read as literals (:func:`keys.literal_value`).
* ``_update_internal_config_dict``: recbole-ext's layers are read right after RecBole's
  ``overall.yaml`` (:func:`recbole_ext.registry.property_files`).
* ``_set_default_parameters``: RecBole's numeric keys in range first (:func:`keys.check_ranges`),
  no negative sampler for a CE sequential model that did not ask for one (RecBole's ``overall.yaml``
  sets one and then refuses it), unknown keys last (:func:`keys.check_known_keys`).
* ``__init__``: an error RecBole raises for a bad value becomes a :class:`ConfigError`; the run
  settings are read and checked once the config is complete (:func:`recbole_ext.settings.resolve`).
* ``_init_device``: in a process of a distributed run (a config with ``local_rank``), the process
  group starts with ``ddp_backend`` (``gloo`` on the CPU, ``nccl`` on GPUs) and the process trains on
  the CPU where there is no GPU (:func:`recbole_ext.distributed.init_device`); RecBole's own always
  starts ``nccl`` and asserts a GPU per process. A single process's device is RecBole's choice.
"""

import os

import numpy as np
from recbole.config import configurator

from recbole_ext import distributed, keys, registry, settings
from recbole_ext.errors import ConfigError, RecBoleExtError
from recbole_ext.hooks.replace import replace, wrap

Config = configurator.Config
NUMPY_ALIASES = {
    "bool": np.bool_,
    "int": np.int_,
    "float": np.float64,
    "complex": np.complex128,
    "object": np.object_,
    "str": np.str_,
    "long": np.int_,
    "unicode": np.str_,
}
RECBOLE_OVERALL_YAML = os.path.normpath(
    os.path.join(os.path.dirname(configurator.__file__), "..", "properties", "overall.yaml")
)


def install():
    def compatibility_settings(self):
        for name, value in NUMPY_ALIASES.items():
            setattr(np, name, value)

    compatibility_settings(None)  # RecBole's modules read the aliases before any Config exists
    replace(Config, "compatibility_settings", compatibility_settings, __name__)

    def _convert_config_dict(self, config_dict):
        for key, value in config_dict.items():
            if isinstance(value, str):
                config_dict[key] = keys.literal_value(value)
        return config_dict

    replace(Config, "_convert_config_dict", _convert_config_dict, __name__)

    @wrap(Config, "_update_internal_config_dict")
    def _update_internal_config_dict(recbole_update, self, file):
        loaded = recbole_update(self, file)
        if os.path.normpath(file) == RECBOLE_OVERALL_YAML:
            for layer in registry.property_files(self.model):
                recbole_update(self, str(layer))
        return loaded

    @wrap(Config, "_set_default_parameters")
    def _set_default_parameters(recbole_set_defaults, self):
        keys.check_ranges(self)
        keys.no_sampler_for_ce(self)
        recbole_set_defaults(self)
        keys.check_known_keys(self)

    @wrap(Config, "__init__")
    def __init__(recbole_init, self, *args, **kwargs):
        try:
            recbole_init(self, *args, **kwargs)
        except RecBoleExtError:
            raise
        except (ValueError, KeyError, NotImplementedError, SyntaxError) as error:
            message = error.args[0] if isinstance(error, KeyError) and error.args else error
            raise ConfigError(f"RecBole's Config refused the configuration: {message}") from error
        settings.resolve(self)

    @wrap(Config, "_init_device")
    def _init_device(recbole_init_device, self):
        if "local_rank" not in self.final_config_dict:
            return recbole_init_device(self)
        distributed.init_device(self.final_config_dict)
