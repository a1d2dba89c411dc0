"""Model lookup: makes plugin models visible to RecBole's own ``get_model``.

RecBole finds a model by importing ``recbole.model.<group>.<name.lower()>`` and taking the
attribute ``<name>`` from it (``importlib.util.find_spec`` answers from ``sys.modules`` first).
Registering a plugin model puts a small module under that key, so every RecBole caller —
``Config``, ``run_recbole``, ``objective_function``, ``load_data_and_model`` — finds it, in any
process that has imported :mod:`recbole_ext`.
"""

import importlib
import importlib.machinery
import importlib.util
import inspect
import sys
import types
from pathlib import Path

from recbole.utils import ModelType

from recbole_ext.errors import UnknownModelError

PROPERTIES_DIR = Path(__file__).resolve().parent / "properties" / "model"

_GROUP_OF_TYPE = {
    ModelType.GENERAL: "general_recommender",
    ModelType.SEQUENTIAL: "sequential_recommender",
    ModelType.CONTEXT: "context_aware_recommender",
    ModelType.KNOWLEDGE: "knowledge_aware_recommender",
}
_RECBOLE_GROUPS = tuple(_GROUP_OF_TYPE.values())
# Looking names up in exlib_recommender imports lightgbm and xgboost; only these two live there.
_RECBOLE_EXLIB_MODELS = {"lightgbm": "LightGBM", "xgboost": "XGBoost"}

_plugin_models = {}
_property_files = {}


def register_model(model_class, properties_file=None, dataset_class=None):
    """Make ``model_class`` findable by name wherever RecBole looks models up.

    ``properties_file`` is the model's YAML of defaults (the layer RecBole reads from
    ``recbole/properties/model/<Name>.yaml``); by default ``recbole_ext/properties/model/<Name>.yaml``
    when it exists. ``dataset_class`` replaces RecBole's default dataset class for this model
    (RecBole's ``create_dataset`` looks for ``recbole.data.dataset.<Name>Dataset``).
    """
    name = model_class.__name__
    group = _GROUP_OF_TYPE.get(getattr(model_class, "type", None))
    if group is None:
        raise UnknownModelError(
            f"cannot register {name}: its `type` is {getattr(model_class, 'type', None)!r}, "
            f"expected one of {[t.name for t in _GROUP_OF_TYPE]}"
        )
    key = f"recbole.model.{group}.{name.lower()}"
    existing = sys.modules.get(key)
    if existing is not None and getattr(existing, "__recbole_ext_plugin__", False) is False:
        raise UnknownModelError(f"cannot register {name}: RecBole already has a model module {key}")
    if existing is None and _find_spec(key) is not None:
        raise UnknownModelError(f"cannot register {name}: RecBole already has a model module {key}")

    module = types.ModuleType(key)
    module.__spec__ = importlib.machinery.ModuleSpec(key, loader=None)
    module.__recbole_ext_plugin__ = True
    setattr(module, name, model_class)
    sys.modules[key] = module
    if dataset_class is not None:
        import recbole.data.dataset

        setattr(recbole.data.dataset, f"{name}Dataset", dataset_class)

    if properties_file is None:
        default = PROPERTIES_DIR / f"{name}.yaml"
        properties_file = default if default.is_file() else None
    _plugin_models[name] = model_class
    _property_files[name] = Path(properties_file) if properties_file else None
    return model_class


def list_models():
    """Names of the registered plugin models, sorted."""
    return sorted(_plugin_models)


def plugin_properties_file(model_name):
    """The YAML of defaults of a plugin model, or None (also for RecBole's own models)."""
    return _property_files.get(model_name)


def recbole_sequential_models():
    """Class names of RecBole's built-in sequential models."""
    from recbole.model import sequential_recommender
    from recbole.model.abstract_recommender import SequentialRecommender

    return sorted(
        name
        for name, obj in vars(sequential_recommender).items()
        if inspect.isclass(obj) and issubclass(obj, SequentialRecommender) and obj is not SequentialRecommender
    )


def is_known_model(model_name):
    """True when RecBole's ``get_model`` will find ``model_name`` (plugin or built-in)."""
    if model_name in _plugin_models:
        return True
    file_name = model_name.lower()
    if any(_find_spec(f"recbole.model.{group}.{file_name}") for group in _RECBOLE_GROUPS):
        return True
    return _RECBOLE_EXLIB_MODELS.get(file_name) == model_name


def unknown_model_error(model_name):
    return UnknownModelError(
        f"unknown model {model_name!r}. Plugin models: {', '.join(list_models()) or 'none'}. "
        f"RecBole sequential models: {', '.join(recbole_sequential_models())}. "
        "(RecBole's general, context-aware and knowledge-aware models are accepted too.)"
    )


def checked_get_model(recbole_get_model):
    """Wrap RecBole's ``get_model`` so an unknown name raises :class:`UnknownModelError`."""

    def get_model(model_name):
        if not isinstance(model_name, str) or not is_known_model(model_name):
            raise unknown_model_error(model_name)
        return recbole_get_model(model_name)

    get_model.__doc__ = recbole_get_model.__doc__
    get_model.__wrapped__ = recbole_get_model
    return get_model


def _find_spec(module_path):
    try:
        return importlib.util.find_spec(module_path)
    except (ImportError, ValueError):
        return None
