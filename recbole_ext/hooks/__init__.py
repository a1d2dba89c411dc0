"""Every change recbole-ext makes to RecBole's behaviour, in one place.

:func:`install` (run by ``import recbole_ext``) checks RecBole's version, then runs the installers
of :data:`INSTALLERS` once, in that order. Each installer module adapts one RecBole module or class
and replaces its functions only through :mod:`recbole_ext.hooks.replace`, which refuses to replace
anything twice and records every replacement; the wrappers themselves are a few lines that call
plain functions where the behaviour lives (:mod:`recbole_ext.keys`, :mod:`recbole_ext.data.checks`,
:mod:`recbole_ext.data.sequence`, :mod:`recbole_ext.protocols`, :mod:`recbole_ext.metrics`,
:mod:`recbole_ext.checkpoints`). :data:`MANIFEST` names every RecBole attribute replaced, and
``tests/test_hooks.py`` checks it against what the import really changes. A RecBole upgrade is a
walk through that list.

Registrations are not replacements: plugin model modules under RecBole's module names, their
``<Name>Dataset`` and ``<Name>Trainer`` classes (:mod:`recbole_ext.registry`), and the seed's
metrics in RecBole's metric tables (:func:`recbole_ext.metrics.register_metrics`).
"""

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


# Every RecBole attribute the hooks replace, by the installer module that replaces it.
MANIFEST = {
    "config": (
        "recbole.config.configurator.Config.compatibility_settings",
        "recbole.config.configurator.Config._convert_config_dict",
        "recbole.config.configurator.Config._update_internal_config_dict",
        "recbole.config.configurator.Config._set_default_parameters",
        "recbole.config.configurator.Config.__init__",
        "recbole.config.configurator.Config._init_device",
    ),
    "utils": (
        "recbole.utils.utils.get_model",
        "recbole.utils.get_model",
        "recbole.config.configurator.get_model",
        "recbole.quick_start.quick_start.get_model",
        "recbole.utils.utils.ensure_dir",
        "recbole.utils.ensure_dir",
        "recbole.utils.logger.ensure_dir",
        "recbole.data.utils.ensure_dir",
        "recbole.trainer.trainer.ensure_dir",
        "recbole.data.dataset.dataset.ensure_dir",
    ),
    "model": (),
    "dataset": (
        "recbole.data.dataset.dataset.Dataset._load_feat",
        "recbole.data.dataset.dataset.Dataset._filter_by_inter_num",
        "recbole.data.dataset.dataset.Dataset._load_inter_feat",
        "recbole.data.dataset.dataset.Dataset._normalize",
        "recbole.data.dataset.dataset.Dataset._remove_duplication",
        "recbole.data.dataset.sequential_dataset.SequentialDataset.data_augmentation",
        "recbole.data.dataset.dataset.Dataset._remap",
        "recbole.data.dataset.dataset.Dataset._fill_nan",
        "recbole.data.dataset.dataset.Dataset._dataframe_to_interaction",
        "recbole.data.dataset.dataset.pd",
        "recbole.data.dataset.dataset.Dataset._download",
        "recbole.data.dataset.dataset.Dataset.build",
        "recbole.data.dataset.sequential_dataset.SequentialDataset.build",
    ),
    "dataloader": (
        "recbole.data.dataloader.abstract_dataloader.AbstractDataLoader.__init__",
        "recbole.data.utils.create_samplers",
        "recbole.data.create_samplers",
        "recbole.data.dataloader.general_dataloader.TrainDataLoader._init_batch_size_and_step",
        "recbole.data.dataloader.general_dataloader.TrainDataLoader.__init__",
        "recbole.data.dataloader.general_dataloader.TrainDataLoader.__iter__",
        "recbole.data.dataloader.general_dataloader.FullSortEvalDataLoader._init_batch_size_and_step",
        "recbole.data.dataloader.general_dataloader.FullSortEvalDataLoader.collate_fn",
        "recbole.data.dataloader.general_dataloader.FullSortEvalDataLoader.__iter__",
        "recbole.data.dataloader.general_dataloader.NegSampleEvalDataLoader.__iter__",
    ),
    "trainer": (
        "recbole.trainer.trainer.Trainer.__init__",
        "recbole.trainer.trainer.Trainer._save_checkpoint",
        "recbole.trainer.trainer.Trainer.fit",
        "recbole.trainer.trainer.amp",
        "recbole.trainer.trainer.AbstractTrainer.__init__",
        "recbole.trainer.trainer.Trainer.evaluate",
        "recbole.trainer.trainer.Trainer._map_reduce",
    ),
    "evaluator": (
        "recbole.evaluator.collector.Collector.eval_batch_collect",
        "recbole.evaluator.collector.Collector.data_collect",
        "recbole.evaluator.collector.Collector.get_data_struct",
        "recbole.evaluator.evaluator.Evaluator.evaluate",
    ),
    "quick_start": (
        "recbole.quick_start.quick_start.load_data_and_model",
        "recbole.quick_start.load_data_and_model",
        "recbole.quick_start.quick_start.tune",
        "recbole.quick_start.quick_start.run_recboles",
    ),
}
# The order the installers run in: config first (every later step builds or reads a Config).
INSTALLERS = tuple(MANIFEST)
_installed = False


def install():
    """Check RecBole's version and install every hook once; later calls do nothing."""
    global _installed
    if _installed:
        return
    check_recbole_version()
    import importlib

    for name in INSTALLERS:
        importlib.import_module(f"{__name__}.{name}").install()
    _installed = True


def replacements():
    """``{qualified RecBole name: installer module}`` of every replacement made so far."""
    from recbole_ext.hooks.replace import REPLACED, qualified_name

    return {qualified_name(owner, name): module for (owner, name), module in REPLACED.items()}
