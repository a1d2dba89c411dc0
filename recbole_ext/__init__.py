"""recbole-ext: models RecBole lacks, for RecBole 1.2.1 on today's numpy, torch, pandas and Ray.

``import recbole_ext`` installs the plugin's hooks in RecBole — every one of them in
:mod:`recbole_ext.hooks`: adaptations to the current stack, config layers and checks, data checks,
whole-sequence batches, evaluation protocols — and registers the plugin models and metrics, after
which RecBole's own API finds them by name::

    import recbole_ext
    from recbole.quick_start import run_recbole
    run_recbole(model="RNNCCE", dataset="ml-100k")

The commands: ``python -m recbole_ext {run,hyper,benchmark} --help``.
"""

from recbole_ext import hooks

hooks.install()

from recbole.quick_start import load_data_and_model, run_recbole  # noqa: E402  (after the hooks)

from recbole_ext import model  # noqa: E402,F401  (registers the plugin models)
from recbole_ext.errors import (  # noqa: E402
    CheckpointError,
    ConfigError,
    DataError,
    DatasetNotFoundError,
    ModelContractError,
    OutputError,
    RecBoleExtError,
    UnknownModelError,
)
from recbole_ext.registry import list_models, register_model  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "CheckpointError",
    "ConfigError",
    "DataError",
    "DatasetNotFoundError",
    "ModelContractError",
    "OutputError",
    "RecBoleExtError",
    "UnknownModelError",
    "list_models",
    "load_data_and_model",
    "register_model",
    "run_recbole",
]
