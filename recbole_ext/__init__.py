"""recbole-ext: sequential models for RecBole 1.2.1 that run on today's numpy, torch and Ray.

``import recbole_ext`` adapts RecBole to the current stack (:mod:`recbole_ext.compat`) and
registers the plugin models, after which RecBole's own API finds them by name::

    import recbole_ext
    from recbole.quick_start import run_recbole
    run_recbole(model="RNNCCE", dataset="ml-100k")
"""

from recbole_ext import compat

compat.apply()

from recbole.quick_start import load_data_and_model, run_recbole  # noqa: E402  (after compat)

from recbole_ext import model  # noqa: E402,F401  (registers the plugin models)
from recbole_ext.metrics import register_metrics  # noqa: E402

register_metrics()
from recbole_ext import protocols  # noqa: E402,F401  (eval_protocol: user_split, session_split)
from recbole_ext.errors import (  # noqa: E402
    CheckpointError,
    ConfigError,
    DatasetNotFoundError,
    RecBoleExtError,
    UnknownModelError,
)
from recbole_ext.registry import list_models, register_model  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "CheckpointError",
    "ConfigError",
    "DatasetNotFoundError",
    "RecBoleExtError",
    "UnknownModelError",
    "list_models",
    "load_data_and_model",
    "register_model",
    "run_recbole",
]
