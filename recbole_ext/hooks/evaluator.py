"""``recbole.evaluator``: ``Evaluator`` and ``Collector`` — plain floats, the seed's metrics, and
collected data that is not a tensor.

* ``Collector.eval_batch_collect``: after RecBole's collection, each row's next-item hits and goal
  lengths (:func:`recbole_ext.metrics.collect_next_item_hits_and_goal_lengths`), which SPS, Recall
  and NDCG read under ``user_split``.
* ``Collector.data_collect``: ``data.count_items`` (BlockbusterShare, AveragePopularity,
  TailPercentage) counts every item of the training sequences, first items included, where the
  training split keeps such counts (:func:`recbole_ext.metrics.collect_training_item_counts`);
  RecBole's counts only training targets.
* ``Collector.get_data_struct``: RecBole calls ``.cpu()`` on every collected value, but
  ``data.num_items`` is an int and ``data.count_items`` a Counter: ItemCoverage, AveragePopularity,
  TailPercentage (and BlockbusterShare) raised AttributeError; those values are handed over as they
  are. The per-batch next-item hits are cleared with the rest of an evaluation's data. In a
  distributed run the per-sample rows of all ranks are gathered (:func:`recbole_ext.distributed.gather_collected`),
  so every rank computes the metrics of the whole evaluation data.
* ``Evaluator.evaluate``: numpy 2 prints scalars as ``np.float64(0.0531)``, so RecBole's result
  dicts, and the log lines that print them, read that way; results are plain floats instead.

The seed's metrics themselves are registrations in RecBole's metric tables, not hooks
(:func:`recbole_ext.metrics.register_metrics`).
"""

import copy
from collections import OrderedDict

import torch
from recbole.evaluator.collector import Collector
from recbole.evaluator.evaluator import Evaluator

from recbole_ext import distributed, metrics
from recbole_ext.hooks.replace import wrap


def install():
    metrics.register_metrics()

    @wrap(Collector, "eval_batch_collect")
    def eval_batch_collect(recbole_collect, self, scores_tensor, interaction, positive_u, positive_i):
        recbole_collect(self, scores_tensor, interaction, positive_u, positive_i)
        metrics.collect_next_item_hits_and_goal_lengths(self, scores_tensor, interaction, positive_u, positive_i)

    @wrap(Collector, "data_collect")
    def data_collect(recbole_data_collect, self, train_data):
        recbole_data_collect(self, train_data)
        metrics.collect_training_item_counts(self, train_data)

    @wrap(Collector, "get_data_struct")
    def get_data_struct(recbole_get_data_struct, self):
        data = self.data_struct._data_dict
        others = {key: data.pop(key) for key in list(data) if not isinstance(data[key], torch.Tensor)}
        try:
            returned = recbole_get_data_struct(self)
        finally:
            data.update(others)
        returned._data_dict.update(copy.deepcopy(others))
        if not self.config["single_spec"]:
            distributed.gather_collected(returned._data_dict)  # all ranks' rows, in rank order
        if metrics.NEXT_ITEM_HITS in self.data_struct:
            del self.data_struct[metrics.NEXT_ITEM_HITS]
        return returned

    @wrap(Evaluator, "evaluate")
    def evaluate(recbole_evaluate, self, dataobject):
        return OrderedDict((metric, float(value)) for metric, value in recbole_evaluate(self, dataobject).items())
