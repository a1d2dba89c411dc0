"""Every adaptation recbole-ext makes to RecBole 1.2.1 and today's stack, in one place, applied once
by :func:`apply`; each is a thin wrapper around RecBole's own function where that can be reused.
Another RecBole version is refused at import (:func:`check_recbole_version`): these adaptations are
written against 1.2.1's code.

One line each — what breaks, since which version:

* numpy 2.0 removed ``np.float_``/``np.complex_``/``np.unicode_``: ``Config.compatibility_settings``
  raises AttributeError, so no ``Config`` can be built; RecBole then needs the aliases it used to set
  (``np.float`` in metrics.py, ``np.long`` in layers.py, ``np.bool`` …).
* torch 2.6 made ``torch.load`` weights-only by default, and the weights-only unpickler cannot read
  RecBole's ``pickle_protocol=4`` checkpoints: ``load_best_model``, ``resume_checkpoint`` and
  ``load_data_and_model`` all fail. Checkpoints are written with protocol 2, modules already in the
  state dict are left out of ``other_parameter``, and RecBole's own types are allowlisted.
* Ray 2.7 changed ``tune.report(**metrics)`` to ``tune.report(metrics)``: ``objective_function``
  raises TypeError.
* RecBole 1.2.1 itself: an unknown model name falls through to ``exlib_recommender`` and raises
  ``ModuleNotFoundError: lightgbm``.
* RecBole 1.2.1 itself: ``Config`` runs ``eval`` on every string value from the command line and
  ``config_dict`` (``--foo=__import__('os').system(...)`` runs); values are read as literals instead.
* RecBole 1.2.1 itself: ``overall.yaml`` sets a negative sampler that ``Config`` then rejects for
  every sequential model with ``loss_type: CE`` unless the user repeats ``train_neg_sample_args: ~``.
* RecBole 1.2.1 itself: importing its SINE model (every ``recbole.model`` import does) turns on
  ``torch.autograd`` anomaly detection for the whole process, which makes every model train ~2× slower.
* RecBole 1.2.1 itself: ``Collector.get_data_struct`` calls ``.cpu()`` on every collected value, but
  ``data.num_items`` is an int and ``data.count_items`` a Counter: ItemCoverage, AveragePopularity,
  TailPercentage (and any metric reading them) raise AttributeError.
* pandas 3 (copy-on-write), torch 2.4's ``torch.cuda.amp`` deprecation and RecBole's own dataset
  download: see the block at the end of this file.
* numpy 2 prints scalars as ``np.float64(0.0531)``: RecBole's result dicts, and the log lines that
  print them, read that way; the evaluator returns plain floats instead.

Plugin hooks live with what they serve: the YAML layers in :mod:`recbole_ext.registry`, the config
checks in :mod:`recbole_ext.keys`, batches counted in targets in :mod:`recbole_ext.data.sequence`.
"""

import contextlib
import copy
import os
import pickle
import warnings
import zipfile

import numpy as np
import pandas
import torch
import yaml

import recbole

RECBOLE_VERSION = "1.2.1"


def check_recbole_version(version=None):
    """Refuse any RecBole but 1.2.1, in one line that says what to install."""
    version = recbole.__version__ if version is None else version
    if version != RECBOLE_VERSION:
        raise ImportError(
            f"recbole-ext adapts RecBole {RECBOLE_VERSION} only, but RecBole {version} is installed "
            f"({recbole.__file__}); install {RECBOLE_VERSION} with `pip install --no-deps recbole=={RECBOLE_VERSION}`"
        )


check_recbole_version()

import recbole.config.configurator as configurator  # noqa: E402  (after the version check)
import recbole.data.dataset.dataset as dataset_module  # noqa: E402
import recbole.quick_start as quick_start_package  # noqa: E402
import recbole.quick_start.quick_start as quick_start  # noqa: E402
import recbole.trainer.trainer as trainer_module  # noqa: E402
import recbole.utils  # noqa: E402
import recbole.utils.utils  # noqa: E402
from recbole.model.abstract_recommender import AbstractRecommender  # noqa: E402
from recbole.utils import EvaluatorType, InputType, ModelType  # noqa: E402

from recbole_ext import keys, registry  # noqa: E402
from recbole_ext.errors import CheckpointError, DatasetNotFoundError  # noqa: E402

# Checkpoints are written with this protocol: the weights-only unpickler rejects protocol 4 frames.
CHECKPOINT_PICKLE_PROTOCOL = 2
_applied = False


def apply():
    """Apply every adaptation once; later calls do nothing."""
    global _applied
    if _applied:
        return
    _numpy_aliases()
    _model_lookup()
    _literal_config_values()
    _ce_without_sampler()
    _weights_only_checkpoints()
    _ray_report()
    _no_anomaly_detection()
    _collector_non_tensor_data()
    _plain_float_results()
    _pandas3_remap_token_seq()
    _pandas3_chained_fills()
    _pandas3_read_only_columns()
    _download_or_clear_error()
    _torch_amp_without_deprecation()
    _applied = True


def _numpy_aliases():
    aliases = {
        "bool": np.bool_,
        "int": np.int_,
        "float": np.float64,
        "complex": np.complex128,
        "object": np.object_,
        "str": np.str_,
        "long": np.int_,
        "unicode": np.str_,
    }

    def compatibility_settings(self):
        for name, value in aliases.items():
            setattr(np, name, value)

    compatibility_settings(None)
    configurator.Config.compatibility_settings = compatibility_settings


def _model_lookup():
    checked = registry.checked_get_model(recbole.utils.utils.get_model)
    for module in (recbole.utils, recbole.utils.utils, configurator, quick_start):
        module.get_model = checked


def _literal_config_values():
    def _convert_config_dict(self, config_dict):
        for key, value in config_dict.items():
            if isinstance(value, str):
                config_dict[key] = keys.literal_value(value)
        return config_dict

    configurator.Config._convert_config_dict = _convert_config_dict


def _ce_without_sampler():
    Config = configurator.Config
    recbole_set_default_parameters = Config._set_default_parameters

    def _set_default_parameters(self):
        final = self.final_config_dict
        if (
            final.get("MODEL_TYPE") == ModelType.SEQUENTIAL
            and final.get("loss_type") == "CE"
            and "train_neg_sample_args" not in self.external_config_dict
        ):
            final["train_neg_sample_args"] = None
        recbole_set_default_parameters(self)

    Config._set_default_parameters = _set_default_parameters


def allow_model_class(model_class):
    """Let weights-only loading rebuild a checkpoint's config, which names its model class."""
    torch.serialization.add_safe_globals([model_class])


def _weights_only_checkpoints():
    torch.serialization.add_safe_globals(
        [configurator.Config, ModelType, InputType, EvaluatorType, yaml.loader.FullLoader]
    )
    Trainer = trainer_module.Trainer
    recbole_trainer_init = Trainer.__init__

    def __init__(self, config, model):
        recbole_trainer_init(self, config, model)
        allow_model_class(type(model))

    recbole_save_checkpoint = Trainer._save_checkpoint

    def _save_checkpoint(self, epoch, verbose=True, **kwargs):
        with _saving_weights_only(self.model):
            recbole_save_checkpoint(self, epoch, verbose=verbose, **kwargs)

    Trainer.__init__ = __init__
    Trainer._save_checkpoint = _save_checkpoint

    recbole_load_data_and_model = quick_start.load_data_and_model

    def load_data_and_model(model_file):
        _allow_checkpoint_model_class(model_file)
        check_checkpoint(model_file)
        return recbole_load_data_and_model(model_file)

    load_data_and_model.__doc__ = recbole_load_data_and_model.__doc__
    quick_start.load_data_and_model = load_data_and_model
    quick_start_package.load_data_and_model = load_data_and_model


@contextlib.contextmanager
def _saving_weights_only(model):
    """While RecBole saves a checkpoint: protocol 2, a plain float score, no modules in
    ``other_parameter`` — what the weights-only unpickler can read back."""
    torch_save = torch.save

    def save(state, path, **kwargs):
        state = {**state, "best_valid_score": float(state["best_valid_score"]),
                 "other_parameter": weights_only_other_parameter(model)}
        torch_save(state, path, **{**kwargs, "pickle_protocol": CHECKPOINT_PICKLE_PROTOCOL})

    torch.save = save
    try:
        yield
    finally:
        torch.save = torch_save


def check_checkpoint(model_file):
    """Raise :class:`CheckpointError` saying what is wrong with a file that is not a RecBole
    checkpoint readable weights-only, before RecBole trips over it somewhere deep inside."""
    if not os.path.isfile(model_file):
        raise CheckpointError(f"{model_file}: no such checkpoint file")
    if not zipfile.is_zipfile(model_file):
        raise CheckpointError(f"{model_file} is not a PyTorch checkpoint: it is truncated or was not written by torch.save")
    try:
        # mmap: the check reads the pickle, not the tensors
        state = torch.load(model_file, weights_only=True, mmap=True, map_location="cpu")
    except pickle.UnpicklingError as error:
        raise CheckpointError(
            f"refusing to load {model_file}: it needs more than weights-only unpickling "
            f"allows ({_unpickler_reason(error)})"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CheckpointError(f"{model_file} cannot be read: {reason}") from None
    missing = [key for key in ("config", "state_dict") if not isinstance(state, dict) or key not in state]
    if missing:
        raise CheckpointError(
            f"{model_file} is not a RecBole checkpoint: it holds no {' or '.join(map(repr, missing))} "
            "(RecBole's Trainer saves config, state_dict, optimizer and epoch)"
        )


def _unpickler_reason(error):
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    reasons = [line for line in lines if "Unsupported" in line or "global" in line.lower()]
    return (reasons or lines or ["unpickling failed"])[0]


def weights_only_other_parameter(model):
    """``model.other_parameter()`` without the submodules whose weights ``state_dict`` already holds.

    RecBole's GRU4RecF, FDSA and DIN keep a registered submodule there; pickling the module (and the
    dataset it references) would make the checkpoint unloadable with ``weights_only=True``.
    """
    parameters = model.other_parameter()
    if not parameters:
        return parameters
    submodules = {id(m) for m in model.modules()}
    kept = {}
    for name, value in parameters.items():
        if isinstance(value, torch.nn.Module):
            if id(value) not in submodules:
                raise CheckpointError(
                    f"{type(model).__name__}.other_parameter()[{name!r}] is a module outside the model; "
                    "only tensors, numbers, numpy arrays and registered submodules can be saved weights-only"
                )
            continue
        kept[name] = value
    return kept


def _allow_checkpoint_model_class(model_file):
    """Allowlist the model class a checkpoint names, if it is a registered or RecBole model."""
    try:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(model_file)
    except Exception:
        return  # not a zip checkpoint: torch.load reports it
    for qualified in names:
        module_name, _, class_name = qualified.rpartition(".")
        if not (module_name.startswith("recbole.model.") or module_name.startswith("recbole_ext.")):
            continue
        model_class = _importable_model_class(module_name, class_name)
        if model_class is not None:
            allow_model_class(model_class)


def _importable_model_class(module_name, class_name):
    import importlib

    try:
        candidate = getattr(importlib.import_module(module_name), class_name, None)
    except ImportError:
        return None
    if isinstance(candidate, type) and issubclass(candidate, AbstractRecommender):
        return candidate
    return None


def _ray_report():
    from ray import tune

    class _Tune:
        """The part of ``ray.tune`` RecBole 1.2.1 calls, with the pre-2.7 ``report(**metrics)``."""

        @staticmethod
        def report(**metrics):
            tune.report(dict(metrics))

    quick_start.tune = _Tune


def _no_anomaly_detection():
    import recbole.model.sequential_recommender.sine  # noqa: F401  (its import switches detection on)

    torch.autograd.set_detect_anomaly(False)


def _collector_non_tensor_data():
    from recbole.evaluator.collector import Collector

    recbole_get_data_struct = Collector.get_data_struct

    def get_data_struct(self):
        data = self.data_struct._data_dict
        others = {key: data.pop(key) for key in list(data) if not isinstance(data[key], torch.Tensor)}
        try:
            returned = recbole_get_data_struct(self)
        finally:
            data.update(others)
        returned._data_dict.update(copy.deepcopy(others))
        return returned

    Collector.get_data_struct = get_data_struct


def _plain_float_results():
    from collections import OrderedDict

    from recbole.evaluator.evaluator import Evaluator

    recbole_evaluate = Evaluator.evaluate

    def evaluate(self, dataobject):
        return OrderedDict((metric, float(value)) for metric, value in recbole_evaluate(self, dataobject).items())

    Evaluator.evaluate = evaluate


# ---- pandas 3, torch.amp and RecBole's own dataset download --------------------------------------
# pandas 2.2 warns (FutureWarning) where RecBole's dataset.py fills a column through
# ``df[field].fillna(..., inplace=True)``; pandas 3 (copy-on-write) fills nothing there.
_CHAINED_INPLACE_FILL = (
    r"A value is (trying to be|being) set on a copy of a DataFrame or Series "
    r"through chained assignment using an inplace method"
)


def _pandas3_remap_token_seq():
    """pandas 3: ``Series.agg(len)`` is one number, so ``_remap`` cannot split token_seq ids back (2.2 warns)."""
    from recbole.utils import FeatureType

    Dataset = dataset_module.Dataset
    recbole_remap = Dataset._remap

    def _remap(self, remap_list):
        # RecBole's own remap, each token_seq column handed over as one flat token column.
        handed_over, flattened = [], []
        for feat, field, ftype in remap_list:
            if ftype != FeatureType.TOKEN_SEQ:
                handed_over.append((feat, field, ftype))
                continue
            sequences = list(feat[field])
            tokens = np.concatenate(sequences) if sequences else np.array([], dtype=str)
            flat = pandas.DataFrame({field: tokens})
            handed_over.append((flat, field, FeatureType.TOKEN))
            flattened.append((feat, field, flat, np.cumsum([len(s) for s in sequences])[:-1]))
        recbole_remap(self, handed_over)
        for feat, field, flat, split_points in flattened:
            feat[field] = np.split(flat[field].to_numpy(), split_points)

    Dataset._remap = _remap


def _pandas3_chained_fills():
    """pandas 3: chained ``fillna(inplace=True)`` fills nothing; a missing token_seq cell fails (2.2 warns)."""
    from recbole.utils import FeatureType

    Dataset = dataset_module.Dataset
    recbole_load_feat = Dataset._load_feat
    recbole_fill_nan = Dataset._fill_nan

    def _load_feat(self, filepath, source):
        with _sequence_cells_read_as_empty(), _chained_fills_unannounced():
            return recbole_load_feat(self, filepath, source)

    def _fill_nan(self):
        for feat_name in self.feat_name_list:
            feat = getattr(self, feat_name)
            for field in feat:
                if self.field2type[field] == FeatureType.TOKEN:
                    feat[field] = feat[field].fillna(0)
                elif self.field2type[field] == FeatureType.FLOAT:
                    feat[field] = feat[field].fillna(feat[field].mean())
        with _chained_fills_unannounced():
            recbole_fill_nan(self)  # its own fills now find nothing; it still turns missing sequences empty

    Dataset._load_feat = _load_feat
    Dataset._fill_nan = _fill_nan


@contextlib.contextmanager
def _chained_fills_unannounced():
    """RecBole's chained fills, already done by assignment, without pandas' warning about them."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_CHAINED_INPLACE_FILL)
        yield


@contextlib.contextmanager
def _sequence_cells_read_as_empty():
    """``Dataset._load_feat`` reads atomic files with empty token_seq/float_seq cells as "" (not NaN)."""

    class _PandasReadingEmptySequences:
        def __getattr__(self, name):
            return getattr(pandas, name)

        @staticmethod
        def read_csv(*args, **kwargs):
            frame = pandas.read_csv(*args, **kwargs)
            for column in frame.columns:  # still named "field:type" here
                if str(column).rpartition(":")[2].endswith("seq"):
                    frame[column] = frame[column].fillna("")
            return frame

    dataset_module.pd = _PandasReadingEmptySequences()
    try:
        yield
    finally:
        dataset_module.pd = pandas


def _pandas3_read_only_columns():
    """pandas 3: ``Series.values`` is read-only; tensors RecBole builds on it shared it (UserWarning)."""
    Dataset = dataset_module.Dataset
    recbole_dataframe_to_interaction = Dataset._dataframe_to_interaction

    def _dataframe_to_interaction(self, data):
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            interaction = recbole_dataframe_to_interaction(self, data)
        for field, values in interaction.interaction.items():
            interaction.interaction[field] = values.clone()  # owns its memory, whatever pandas lent
        return interaction

    Dataset._dataframe_to_interaction = _dataframe_to_interaction


def _download_or_clear_error():
    """RecBole's own download; offline one clear error; no single-process crash at its ``barrier()``."""
    import http.client

    Dataset = dataset_module.Dataset
    recbole_download = Dataset._download

    def _download(self):
        if self._get_download_url("url", allow_none=True) is None:
            raise _missing_dataset_error(self, "RecBole has no download for that name")
        folder_was_there = os.path.exists(self.dataset_path)
        try:
            recbole_download(self)
        except (OSError, http.client.HTTPException, RuntimeError) as error:
            if isinstance(error, RuntimeError) and "Stopped downloading" not in str(error):
                raise
            if not folder_was_there and os.path.isdir(self.dataset_path) and not os.listdir(self.dataset_path):
                os.rmdir(self.dataset_path)  # the empty folder RecBole made would hide the dataset next time
            raise _missing_dataset_error(self, f"RecBole could not download it: {_network_reason(error)}") from None
        except ValueError as error:
            # RecBole 1.2.1 ends every download with torch.distributed.barrier(), which fails outside
            # a process group: the files are there, and a single process has nobody to wait for.
            if torch.distributed.is_initialized() or "process group has not been initialized" not in str(error):
                raise

    Dataset._download = _download


def _network_reason(error):
    reason = getattr(error, "reason", None) or error
    return f"{type(error).__name__}: {reason}"


def _missing_dataset_error(dataset, why):
    name, folder = dataset.dataset_name, dataset.dataset_path
    return DatasetNotFoundError(
        f"dataset {name!r} not found and {why}: expected atomic files {os.path.join(folder, name)}.inter "
        f"(and optionally .user, .item) under `data_path` {os.path.dirname(os.path.normpath(folder))!r}; "
        "put them there, set `data_path`, or convert a session log with `python -m recbole_ext.data.convert`."
    )



def _torch_amp_without_deprecation():
    """torch 2.4 deprecated ``torch.cuda.amp.GradScaler``: every RecBole training run warned (FutureWarning)."""
    import functools
    import types

    trainer_module.amp = types.SimpleNamespace(  # RecBole's trainer.py reads ``amp`` = torch.cuda.amp
        GradScaler=functools.partial(torch.amp.GradScaler, "cuda"),
        autocast=functools.partial(torch.amp.autocast, "cuda"),
    )

