"""The model registry: the contract a plugin model fulfils, and the two places RecBole looks it up.

RecBole finds a model by importing ``recbole.model.<group>.<name.lower()>`` and taking the
attribute ``<name>`` from it (``importlib.util.find_spec`` answers from ``sys.modules`` first).
Registering a plugin model puts a small module under that key, so every RecBole caller —
``Config``, ``run_recbole``, ``objective_function``, ``load_data_and_model`` — finds it, in any
process that has imported :mod:`recbole_ext`.

RecBole reads a model's YAML of defaults only from its own package; :mod:`recbole_ext.hooks.config`
reads recbole-ext's layers (:func:`property_files`) at the same place (right after RecBole's ``overall.yaml``):
``properties/overall.yaml`` for every model (the plugin-wide keys), then, for a plugin model, the
YAML of each base class that names one (``base_properties``) and the model's own YAML.

The contract, checked by :func:`register_model`: a model class declares ``train_modes`` (the
``train_mode`` values it supports; ``()`` when that key means nothing to it) and ``loss_types`` (the
``loss_type`` values it accepts). A model with a whole-sequence mode gets the dataset class that
mode needs (:data:`recbole_ext.data.sequence.DATASET_OF_TRAIN_MODE`) without being told.
"""

import importlib
import importlib.machinery
import importlib.util
import inspect
import sys
import types
from pathlib import Path

from recbole.utils import ModelType

from recbole_ext.errors import ModelContractError, UnknownModelError

PROPERTIES_DIR = Path(__file__).resolve().parent / "properties"
MODEL_PROPERTIES_DIR = PROPERTIES_DIR / "model"
PLUGIN_OVERALL_YAML = PROPERTIES_DIR / "overall.yaml"

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


def register_model(model_class, properties_file=None, dataset_class=None, trainer_class=None):
    """Make ``model_class`` findable by name wherever RecBole looks models up.

    ``properties_file`` is the model's YAML of defaults (the layer RecBole reads from
    ``recbole/properties/model/<Name>.yaml``); by default ``recbole_ext/properties/model/<Name>.yaml``
    when it exists. ``dataset_class`` replaces the dataset class RecBole's ``create_dataset`` would
    pick (it looks for ``recbole.data.dataset.<Name>Dataset``); by default the one the model's
    ``train_modes`` need, if any. ``trainer_class`` (a subclass of RecBole's ``Trainer``) replaces the
    trainer RecBole's ``get_trainer`` would pick (it looks for ``recbole.trainer.<Name>Trainer``).
    Raises :class:`ModelContractError` when the class breaks the contract
    (module docstring).
    """
    name = getattr(model_class, "__name__", repr(model_class))
    group = _GROUP_OF_TYPE.get(getattr(model_class, "type", None))
    if group is None:
        raise ModelContractError(
            f"cannot register {name}: its `type` is {getattr(model_class, 'type', None)!r}, "
            f"expected one of {[t.name for t in _GROUP_OF_TYPE]}"
        )
    for attribute in ("train_modes", "loss_types"):
        declared = getattr(model_class, attribute, None)
        if not isinstance(declared, tuple) or not all(isinstance(v, str) for v in declared):
            raise ModelContractError(
                f"cannot register {name}: it must declare `{attribute}` as a tuple of strings "
                f"(got {declared!r}); see docs/adding_a_model.md"
            )
    key = f"recbole.model.{group}.{name.lower()}"
    existing = sys.modules.get(key)
    if existing is not None and getattr(existing, "__recbole_ext_plugin__", False) is False:
        raise ModelContractError(f"cannot register {name}: RecBole already has a model module {key}")
    if existing is None and _find_spec(key) is not None:
        raise ModelContractError(f"cannot register {name}: RecBole already has a model module {key}")

    module = types.ModuleType(key)
    module.__spec__ = importlib.machinery.ModuleSpec(key, loader=None)
    module.__recbole_ext_plugin__ = True
    setattr(module, name, model_class)
    sys.modules[key] = module
    if dataset_class is None:
        dataset_class = _dataset_class_for(model_class.train_modes)
    if dataset_class is not None:
        import recbole.data.dataset

        setattr(recbole.data.dataset, f"{name}Dataset", dataset_class)
    if trainer_class is not None:
        import recbole.trainer

        setattr(recbole.trainer, f"{name}Trainer", trainer_class)

    if properties_file is None:
        default = MODEL_PROPERTIES_DIR / f"{name}.yaml"
        properties_file = default if default.is_file() else None
    _plugin_models[name] = model_class
    _property_files[name] = Path(properties_file) if properties_file else None
    return model_class


def _dataset_class_for(train_modes):
    from recbole_ext.data.sequence import DATASET_OF_TRAIN_MODE

    needed = {DATASET_OF_TRAIN_MODE[mode] for mode in train_modes if mode in DATASET_OF_TRAIN_MODE}
    if len(needed) > 1:
        raise ModelContractError(f"train modes {train_modes} need different dataset classes: {needed}")
    return needed.pop() if needed else None


def list_models():
    """Names of the registered plugin models, sorted."""
    return sorted(_plugin_models)


def model_class(model_name):
    """The registered plugin model class named ``model_name`` (None for RecBole's own models)."""
    return _plugin_models.get(model_name)


def property_files(model_name):
    """recbole-ext's YAML layers for ``model_name``, low to high: the plugin-wide defaults, then for
    a plugin model its base classes' YAMLs and its own."""
    files = [PLUGIN_OVERALL_YAML]
    plugin = _plugin_models.get(model_name)
    if plugin is not None:
        for cls in reversed(plugin.__mro__):
            base_file = cls.__dict__.get("base_properties")
            if base_file is not None and Path(base_file) not in files:
                files.append(Path(base_file))
        if _property_files[model_name] is not None:
            files.append(_property_files[model_name])
    return files


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


def _find_spec(module_path):
    try:
        return importlib.util.find_spec(module_path)
    except (ImportError, ValueError):
        return None
