"""Every adaptation recbole-ext makes to RecBole 1.2.1, in one place, applied once by :func:`apply`.

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
* RecBole 1.2.1 itself: ``overall.yaml`` sets a negative sampler that ``Config`` then rejects for
  every sequential model with ``loss_type: CE`` unless the user repeats ``train_neg_sample_args: ~``.
* RecBole 1.2.1 itself: importing its SINE model (every ``recbole.model`` import does) turns on
  ``torch.autograd`` anomaly detection for the whole process, which makes every model train ~2× slower.
* RecBole 1.2.1 itself: ``Collector.get_data_struct`` calls ``.cpu()`` on every collected value, but
  ``data.num_items`` is an int and ``data.count_items`` a Counter: ItemCoverage, AveragePopularity,
  TailPercentage (and any metric reading them) raise AttributeError.
* Plugin hook, not a fix: ``TrainDataLoader`` takes ``train_batch_size`` samples per batch; a
  dataset with ``train_batch_samples(batch_size)`` (the whole-sequence windows of
  :class:`~recbole_ext.data.sequence.SequenceDataset`) says how many samples hold that many targets.
* Plugin hook, not a fix: RecBole reads model YAMLs only from its own package; a plugin model's YAML
  is read at the same layer (after ``overall.yaml``, before dataset and quick-start YAMLs).
* pandas 3 (copy-on-write), torch 2.4's ``torch.cuda.amp`` deprecation and RecBole's own dataset
  download: see the block at the end of this file.
"""

import contextlib
import copy
import os
import pickle
import warnings

import numpy as np
import pandas
import torch
import yaml

import recbole.config.configurator as configurator
import recbole.data.dataset.dataset as dataset_module
import recbole.quick_start as quick_start_package
import recbole.quick_start.quick_start as quick_start
import recbole.trainer.trainer as trainer_module
import recbole.utils
import recbole.utils.utils
from recbole.model.abstract_recommender import AbstractRecommender
from recbole.utils import EvaluatorType, InputType, ModelType, set_color

from recbole_ext import registry
from recbole_ext.errors import CheckpointError, DatasetNotFoundError

# Checkpoints are written with this protocol: the weights-only unpickler rejects protocol 4 frames.
CHECKPOINT_PICKLE_PROTOCOL = 2
_RECBOLE_OVERALL_YAML = os.path.normpath(
    os.path.join(os.path.dirname(configurator.__file__), "..", "properties", "overall.yaml")
)
_applied = False


def apply():
    """Apply every adaptation once; later calls do nothing."""
    global _applied
    if _applied:
        return
    _numpy_aliases()
    _model_lookup()
    _plugin_properties_and_ce_sampler()
    _weights_only_checkpoints()
    _ray_report()
    _no_anomaly_detection()
    _collector_non_tensor_data()
    _train_batches_in_targets()
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


def _plugin_properties_and_ce_sampler():
    Config = configurator.Config
    recbole_update = Config._update_internal_config_dict
    recbole_set_default_parameters = Config._set_default_parameters

    def _update_internal_config_dict(self, file):
        loaded = recbole_update(self, file)
        if os.path.normpath(file) == _RECBOLE_OVERALL_YAML:
            plugin_file = registry.plugin_properties_file(self.model)
            if plugin_file is not None:
                recbole_update(self, str(plugin_file))
        return loaded

    def _set_default_parameters(self):
        final = self.final_config_dict
        if (
            final.get("MODEL_TYPE") == ModelType.SEQUENTIAL
            and final.get("loss_type") == "CE"
            and "train_neg_sample_args" not in self.external_config_dict
        ):
            final["train_neg_sample_args"] = None
        recbole_set_default_parameters(self)

    Config._update_internal_config_dict = _update_internal_config_dict
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

    def _save_checkpoint(self, epoch, verbose=True, **kwargs):
        if not self.config["single_spec"] and self.config["local_rank"] != 0:
            return
        saved_model_file = kwargs.pop("saved_model_file", self.saved_model_file)
        state = {
            "config": self.config,
            "epoch": epoch,
            "cur_step": self.cur_step,
            "best_valid_score": float(self.best_valid_score),
            "state_dict": self.model.state_dict(),
            "other_parameter": weights_only_other_parameter(self.model),
            "optimizer": self.optimizer.state_dict(),
        }
        torch.save(state, saved_model_file, pickle_protocol=CHECKPOINT_PICKLE_PROTOCOL)
        if verbose:
            self.logger.info(set_color("Saving current", "blue") + f": {saved_model_file}")

    Trainer.__init__ = __init__
    Trainer._save_checkpoint = _save_checkpoint

    recbole_load_data_and_model = quick_start.load_data_and_model

    def load_data_and_model(model_file):
        _allow_checkpoint_model_class(model_file)
        try:
            return recbole_load_data_and_model(model_file)
        except pickle.UnpicklingError as error:
            raise CheckpointError(
                f"refusing to load {model_file}: it needs more than weights-only unpickling "
                f"allows ({_unpickler_reason(error)})"
            ) from None

    load_data_and_model.__doc__ = recbole_load_data_and_model.__doc__
    quick_start.load_data_and_model = load_data_and_model
    quick_start_package.load_data_and_model = load_data_and_model


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

    def get_data_struct(self):
        data = self.data_struct._data_dict
        for key, value in data.items():
            if isinstance(value, torch.Tensor):
                data[key] = value.cpu()
        returned = copy.deepcopy(self.data_struct)
        for key in ("rec.topk", "rec.meanrank", "rec.score", "rec.items", "data.label"):
            if key in self.data_struct:
                del self.data_struct[key]
        return returned

    Collector.get_data_struct = get_data_struct


def _train_batches_in_targets():
    from recbole.data.dataloader.general_dataloader import TrainDataLoader

    recbole_init_batch = TrainDataLoader._init_batch_size_and_step

    def _init_batch_size_and_step(self):
        recbole_init_batch(self)
        samples = getattr(self._dataset, "train_batch_samples", None)
        if samples is not None and self.neg_sample_args["distribution"] == "none":
            self.step = samples(self.config["train_batch_size"])
            self.set_batch_size(self.step)

    TrainDataLoader._init_batch_size_and_step = _init_batch_size_and_step


# ---- pandas 3, torch.amp and RecBole's own dataset download (issue 16): begin ---------------------
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

# ---- pandas 3, torch.amp and RecBole's own dataset download (issue 16): end -----------------------
