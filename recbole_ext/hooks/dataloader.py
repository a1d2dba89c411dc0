"""``recbole.data.dataloader``: ``TrainDataLoader`` for the whole-sequence train modes and
``FullSortEvalDataLoader`` for the held-out protocols.

* ``TrainDataLoader._init_batch_size_and_step``: ``train_batch_size`` counts training targets, also
  for a ``sequence`` split whose windows hold many (:func:`recbole_ext.data.sequence.train_batch_step`).
* ``TrainDataLoader.__init__`` / ``__iter__``: a ``sequence`` or ``session`` split is served as slices
  of tensors put on the device once (:func:`recbole_ext.data.sequence.sliceable_train_tensors`); a
  ``session`` split's blocks carry the hidden state of the block before, so they go in order
  whatever ``shuffle`` says.
* ``FullSortEvalDataLoader.collate_fn`` / ``_init_batch_size_and_step``: a held-out split's goal sets,
  ranked-last items and one-pass windows (:mod:`recbole_ext.protocols.evaluation`).
* Distributed training (:mod:`recbole_ext.distributed`): ``TrainDataLoader`` keeps one process's
  step, serves each rank its part of every batch and a ``session`` split's own rows;
  ``FullSortEvalDataLoader.__iter__`` / ``NegSampleEvalDataLoader.__iter__`` serve each rank a
  contiguous part of the evaluation data, every sample once.
"""

from recbole.data.dataloader.general_dataloader import (
    FullSortEvalDataLoader,
    NegSampleEvalDataLoader,
    TrainDataLoader,
)

from recbole_ext import distributed, settings
from recbole_ext.data import sequence
from recbole_ext.hooks.replace import wrap
from recbole_ext.protocols import evaluation as protocols


def install():
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
        self._train_tensors, self._batch_device = sequence.sliceable_train_tensors(self, config, dataset)
        self._train_tensors = distributed.shard_session_rows(self._train_tensors, config)

    @wrap(TrainDataLoader, "__iter__")
    def __iter__(recbole_iter, self):
        if distributed.is_distributed(self.config):
            tensors, device = getattr(self, "_train_tensors", None), getattr(self, "_batch_device", None)
            return distributed.train_batches(self, tensors, device)
        if getattr(self, "_train_tensors", None) is None:
            return recbole_iter(self)
        return sequence.sliced_batches(self._train_tensors, self.step, self.shuffle, self.generator, self._batch_device)

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
