"""``recbole.data.dataloader``: ``TrainDataLoader`` for the whole-sequence train modes and lean
samples, ``FullSortEvalDataLoader`` for the held-out protocols.

* ``AbstractDataLoader.__init__``: written anew, RecBole's own but for the sample indices torch's
  ``DataLoader`` gets (a ``range``, not a list of every index: ~36 bytes per sample for the loader's life).

* ``TrainDataLoader._init_batch_size_and_step``: ``train_batch_size`` counts training targets, also
  for a ``sequence`` split whose windows hold many (:func:`recbole_ext.data.sequence.train_batch_step`).
* ``TrainDataLoader.__init__`` / ``__iter__``: a ``sequence`` or ``session`` split is served as slices
  of tensors put on the device once (:func:`recbole_ext.data.sequence.sliced_batch_source`), a
  lean prefix split as batches gathered from a permutation tensor (no per-epoch list of indices); a
  ``session`` split's blocks carry the hidden state of the block before, so they go in order
  whatever ``shuffle`` says.
* ``recbole.data.utils.create_samplers`` (the loaders' samplers): for lean samples, no sampler for a
  full-ranking evaluation, which samples nothing (RecBole builds one that holds a set per user).
* ``FullSortEvalDataLoader.collate_fn`` / ``_init_batch_size_and_step``: a held-out split's goal sets,
  ranked-last items and one-pass windows (:mod:`recbole_ext.protocols.evaluation`).
* Distributed training (:mod:`recbole_ext.distributed`): ``TrainDataLoader`` keeps one process's
  step, serves each rank its part of every batch and a ``session`` split's own rows;
  ``FullSortEvalDataLoader.__iter__`` / ``NegSampleEvalDataLoader.__iter__`` serve each rank a
  contiguous part of the evaluation data, every sample once.
"""

import recbole.data
import recbole.data.utils as data_utils
import torch
from recbole.data.dataloader.abstract_dataloader import AbstractDataLoader
from recbole.data.dataloader.general_dataloader import (
    FullSortEvalDataLoader,
    NegSampleEvalDataLoader,
    TrainDataLoader,
)
from recbole.data.transform import construct_transform
from recbole.utils import ModelType

from recbole_ext import distributed, settings
from recbole_ext.data import lean, sequence
from recbole_ext.hooks.replace import replace, wrap
from recbole_ext.protocols import evaluation as protocols


def install():
    def __init__(self, config, dataset, sampler, shuffle=False):
        # RecBole's AbstractDataLoader.__init__, line for line, but for the sample indices handed to
        # torch's DataLoader: a range, not a list of every index (24M Python ints, ~0.9 GB, held for
        # the loader's life on a 31.7M-event log)
        self.shuffle = shuffle
        self.config = config
        self._dataset = dataset
        self._sampler = sampler
        self._batch_size = self.step = self.model = None
        self._init_batch_size_and_step()
        index_sampler = None
        self.generator = torch.Generator()
        self.generator.manual_seed(config["seed"])
        self.transform = construct_transform(config)
        self.is_sequential = config["MODEL_TYPE"] == ModelType.SEQUENTIAL
        if not config["single_spec"]:
            index_sampler = torch.utils.data.distributed.DistributedSampler(
                range(self.sample_size), shuffle=shuffle, drop_last=False
            )
            self.step = max(1, self.step // config["world_size"])
            shuffle = False
        torch.utils.data.DataLoader.__init__(
            self, dataset=range(self.sample_size), batch_size=self.step, collate_fn=self.collate_fn,
            num_workers=config["worker"], shuffle=shuffle, sampler=index_sampler, generator=self.generator,
        )

    replace(AbstractDataLoader, "__init__", __init__, __name__)

    @wrap(data_utils, "create_samplers", also_in=(recbole.data,))
    def create_samplers(recbole_create_samplers, config, dataset, built_datasets):
        if not lean.is_lean(dataset):
            return recbole_create_samplers(config, dataset, built_datasets)
        # full ranking samples nothing, but RecBole still builds a sampler for it: a set per user
        # (~200 bytes each; two of them for a 7.9M-session log: ~3 GB)
        unused = {phase: config[f"{phase}_neg_sample_args"]["sample_num"] == "none" for phase in ("valid", "test")}
        saved = {phase: config[f"{phase}_neg_sample_args"] for phase in unused if unused[phase]}
        for phase in saved:
            config[f"{phase}_neg_sample_args"] = {**saved[phase], "distribution": "none"}
        try:
            return recbole_create_samplers(config, dataset, built_datasets)
        finally:
            for phase, value in saved.items():
                config[f"{phase}_neg_sample_args"] = value

    @wrap(TrainDataLoader, "_init_batch_size_and_step")
    def _init_batch_size_and_step(recbole_init_batch, self):
        recbole_init_batch(self)
        step = sequence.train_batch_step(self)
        if step is not None:
            self.step = step
            self.set_batch_size(step)
        self.global_step = self.step  # distributed: RecBole divides step by the world size after this

    @wrap(TrainDataLoader, "__init__")
    def __init__(recbole_init, self, config, dataset, sampler, shuffle=False):
        in_order = settings.of(config).train_mode == "session" and isinstance(dataset, sequence.SequenceDataset)
        recbole_init(self, config, dataset, sampler, shuffle=shuffle and not in_order)
        self._sliced_source, self._batch_device = sequence.sliced_batch_source(self, config, dataset)
        self._sliced_source = distributed.shard_session_rows(self._sliced_source, config)

    @wrap(TrainDataLoader, "__iter__")
    def __iter__(recbole_iter, self):
        if distributed.is_distributed(self.config):
            source, device = getattr(self, "_sliced_source", None), getattr(self, "_batch_device", None)
            return distributed.train_batches(self, source, device)
        if getattr(self, "_sliced_source", None) is None:
            return recbole_iter(self)
        return sequence.sliced_batches(self._sliced_source, self.step, self.shuffle, self.generator, self._batch_device)

    @wrap(FullSortEvalDataLoader, "_init_batch_size_and_step")
    def _eval_init_batch_size_and_step(recbole_init_batch, self):
        recbole_init_batch(self)
        step = protocols.eval_batch_samples(self)
        if step is not None:
            self.step = step
            self.set_batch_size(step)

    @wrap(FullSortEvalDataLoader, "collate_fn")
    def collate_fn(recbole_collate, self, index):
        held_out = getattr(self._dataset, "held_out", None)
        if held_out is None or not self.is_sequential:
            return recbole_collate(self, index)
        return protocols.collate_held_out(self, index, held_out)

    for eval_loader in (FullSortEvalDataLoader, NegSampleEvalDataLoader):
        @wrap(eval_loader, "__iter__")
        def _eval_iter(recbole_iter, self):
            if distributed.is_distributed(self.config):
                return distributed.eval_batches(self)
            return recbole_iter(self)
