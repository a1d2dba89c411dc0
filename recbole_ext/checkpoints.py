"""Checkpoints that load weights-only: how recbole-ext writes RecBole's checkpoints and checks one
before loading it.

torch 2.6 made ``torch.load`` weights-only by default, and the weights-only unpickler cannot read
RecBole's ``pickle_protocol=4`` checkpoints: ``load_best_model``, ``resume_checkpoint`` and
``load_data_and_model`` all failed. Checkpoints are written with protocol 2 (:func:`save_checkpoint`),
modules already in the state dict are left out of ``other_parameter``, and RecBole's own types are
allowlisted (:func:`allow_recbole_types`). Nothing is ever loaded with ``weights_only=False``.

Every file is written to a staging file and renamed (:mod:`recbole_ext.files`), under a name no other
run uses (:func:`unique_checkpoint_file`). Besides RecBole's best-epoch checkpoint, a run of the
``run`` command keeps the state to continue it after a kill (:func:`save_resume_state`,
``NAME.resume.pth`` beside ``NAME.pth``): the last finished epoch's weights, optimizer, early-stopping
state and random number generators, in a file that is itself a RecBole checkpoint.
"""

import copy
import importlib
import os
import pickle
import random
import zipfile

import numpy as np
import torch
import yaml

from recbole_ext import files
from recbole_ext.errors import CheckpointError

# the weights-only unpickler rejects protocol 4 frames
CHECKPOINT_PICKLE_PROTOCOL = 2


def allow_recbole_types():
    """Let weights-only loading rebuild RecBole's ``Config`` and the enums it holds."""
    from recbole.config.configurator import Config
    from recbole.utils import EvaluatorType, InputType, ModelType

    torch.serialization.add_safe_globals([Config, ModelType, InputType, EvaluatorType, yaml.loader.FullLoader])


def allow_model_class(model_class):
    """Let weights-only loading rebuild a checkpoint's config, which names its model class."""
    torch.serialization.add_safe_globals([model_class])


def checkpoint_state(trainer, epoch):
    """RecBole's checkpoint of ``trainer`` at ``epoch`` (``config``, ``epoch``, ``cur_step``,
    ``best_valid_score``, ``state_dict``, ``other_parameter``, ``optimizer``), readable weights-only."""
    return {
        "config": single_process_config(trainer.config),
        "epoch": epoch,
        "cur_step": trainer.cur_step,
        "best_valid_score": float(trainer.best_valid_score),
        "state_dict": trainer.model.state_dict(),
        "other_parameter": weights_only_other_parameter(trainer.model),
        "optimizer": trainer.optimizer.state_dict(),
    }


def single_process_config(config):
    """The config a checkpoint keeps: a distributed run's made a single process's (``single_spec``,
    rank 0, RecBole's one-process device), so that ``load_data_and_model`` rebuilds plain data
    loaders instead of ones that need the run's process group; any other config as it is."""
    if config["single_spec"]:
        return config
    kept = copy.copy(config)
    on_gpu = config["use_gpu"] and torch.cuda.is_available()
    kept.final_config_dict = {**config.final_config_dict, "single_spec": True, "local_rank": 0,
                              "device": torch.device("cuda" if on_gpu else "cpu")}
    return kept


def write_checkpoint(state, path):
    """``torch.save`` of ``state`` to ``path``, whole (:func:`recbole_ext.files.staged`): a killed run
    leaves the previous file or the new one, never half of one; a failed write raises OutputError."""
    with files.staged(path, "wb") as f:
        torch.save(state, f, pickle_protocol=CHECKPOINT_PICKLE_PROTOCOL)


def save_checkpoint(trainer, epoch, saved_model_file):
    """RecBole's checkpoint of ``trainer`` at ``epoch`` (:func:`checkpoint_state`) to ``saved_model_file``."""
    write_checkpoint(checkpoint_state(trainer, epoch), saved_model_file)


# ---------------------------------------------------------------- names no other run uses

RESUME_SUFFIX = ".resume.pth"
_handed_out = set()


def resume_file_of(saved_model_file):
    """``saved/NAME.resume.pth`` for RecBole's checkpoint ``saved/NAME.pth``."""
    stem, _ = os.path.splitext(str(saved_model_file))
    return stem + RESUME_SUFFIX


def unique_checkpoint_file(saved_model_file):
    """RecBole's checkpoint name (``MODEL-TIME.pth``, to the second) made unique: this process's id is
    added, and a number if this process already named one in that second or the file exists. Two
    runs started in the same second in the same ``checkpoint_dir`` would otherwise write, and test,
    one file."""
    stem, ext = os.path.splitext(str(saved_model_file))
    stem = f"{stem}-{os.getpid()}"
    candidate, number = stem + ext, 1
    while candidate in _handed_out or os.path.lexists(candidate) or os.path.lexists(resume_file_of(candidate)):
        number += 1
        candidate = f"{stem}-{number}{ext}"
    _handed_out.add(candidate)
    return candidate


# ---------------------------------------------------------------- the state to continue a run

RESUME_KEY = "resume"
RESUME_VERSION = 1


def random_state(train_data=None):
    """The states of every random number generator a RecBole training epoch draws from: Python's,
    numpy's, torch's (CPU and each CUDA device) and the training loader's own ``torch.Generator``
    (its shuffling), as tensors, numbers and tuples (readable weights-only)."""
    name, keys, position, has_gauss, cached_gauss = np.random.get_state(legacy=True)
    state = {
        "python": random.getstate(),
        "numpy": (name, torch.from_numpy(keys.astype(np.int64)), int(position), int(has_gauss), float(cached_gauss)),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    generator = getattr(train_data, "generator", None)
    if isinstance(generator, torch.Generator):
        state["loader"] = generator.get_state()
    return state


def set_random_state(state, train_data=None):
    """Put back what :func:`random_state` saved."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, position, has_gauss, cached_gauss = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), position, has_gauss, cached_gauss))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    generator = getattr(train_data, "generator", None)
    if "loader" in state and isinstance(generator, torch.Generator):
        generator.set_state(state["loader"])


def save_resume_state(trainer, finished_epoch, resume_file, train_data):
    """Write the state to continue ``trainer``'s run after ``finished_epoch`` (taken just before the
    next epoch starts): RecBole's checkpoint of the current weights and optimizer plus the
    early-stopping state, the loss history, the best checkpoint's path and the random states."""
    state = checkpoint_state(trainer, finished_epoch)
    best = trainer.best_valid_result
    state[RESUME_KEY] = {
        "version": RESUME_VERSION,
        "best_valid_result": None if best is None else {str(k): float(v) for k, v in dict(best).items()},
        "train_loss_dict": {int(k): (tuple(map(float, v)) if isinstance(v, tuple) else float(v))
                            for k, v in trainer.train_loss_dict.items()},
        "saved_model_file": str(trainer.saved_model_file),
        "random_state": random_state(train_data),
    }
    write_checkpoint(state, resume_file)


def load_resume_state(resume_file):
    """The state :func:`save_resume_state` wrote, loaded weights-only on the CPU; a
    :class:`CheckpointError` says what is wrong with any other file."""
    resume_file = str(resume_file)
    allow_checkpoint_model_class(resume_file)
    check_checkpoint(resume_file)
    state = torch.load(resume_file, weights_only=True, map_location="cpu")
    resume = state.get(RESUME_KEY)
    if not isinstance(resume, dict) or resume.get("version") != RESUME_VERSION:
        beside = resume_file_of(resume_file)
        hint = (f"; pass {beside}, the last epoch's state written beside it" if os.path.isfile(beside)
                else f"; a run saves that state before every epoch after the first, as {os.path.basename(beside)}")
        raise CheckpointError(
            f"--resume: {resume_file} is a RecBole checkpoint without the state to continue training "
            f"(RecBole saves the best epoch's weights only, not its random states and early-stopping state){hint}"
        )
    return state


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


def allow_checkpoint_model_class(model_file):
    """Allowlist the model class a checkpoint names, if it is a registered or RecBole model."""
    try:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(model_file)
    except Exception:
        return  # not a zip checkpoint: check_checkpoint reports it
    for qualified in names:
        module_name, _, class_name = qualified.rpartition(".")
        if not (module_name.startswith("recbole.model.") or module_name.startswith("recbole_ext.")):
            continue
        model_class = _importable_model_class(module_name, class_name)
        if model_class is not None:
            allow_model_class(model_class)


def _importable_model_class(module_name, class_name):
    from recbole.model.abstract_recommender import AbstractRecommender

    try:
        candidate = getattr(importlib.import_module(module_name), class_name, None)
    except ImportError:
        return None
    if isinstance(candidate, type) and issubclass(candidate, AbstractRecommender):
        return candidate
    return None
