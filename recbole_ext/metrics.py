"""The seed's evaluation metrics (kwonmha; Devooght & Bersini) as RecBole metrics.

After ``import recbole_ext`` they can be named in ``metrics`` like RecBole's own, e.g.
``metrics: [NDCG, Recall, SPS, UserCoverage, CorrectItemCoverage, BlockbusterShare]``. With RecBole's
full-ranking evaluation each evaluated row is one user's case (leave-one-out: its next item), R the
top-k list and G the row's positive items:

* ``SPS@k`` (short-term prediction success): share of rows whose next item G₁ (the row's own
  target, ``item_id``) is in R. With one positive per row (leave-one-out) it equals ``Hit@k``; under
  ``eval_protocol: user_split`` G₁ is the first goal item, while other goal items do not count.
  (Rows without an item id — general models — count any positive.)
* ``UserCoverage@k``: share of rows with at least one positive in R (equal to ``SPS@k`` when each
  row has one positive, as under leave-one-out).
* ``CorrectItemCoverage@k``: number of distinct items recommended correctly at least once (the
  seed's ``item_coverage``; RecBole's ``ItemCoverage`` is the catalogue share of recommended items).
* ``BlockbusterShare@k``: share of hits that are among the ⌊n_items/100⌋ most popular training
  items (ties broken by item id); lower is better. 0 when there is no hit. Popularity counts every
  item of the training sequences, first items included, held-out users' never
  (:mod:`recbole_ext.data.popularity`), as the seed counts its ``train_set_triplets``.

A row may carry its goal's length in ``goal_length`` (``user_split``): RecBole's Recall and NDCG then
divide by |G| counting repeated goal items, as the seed's evaluation does (hits count distinct items).
"""

import numpy as np
import torch
from recbole.evaluator import register
from recbole.evaluator.base_metric import AbstractMetric, TopkMetric
from recbole.utils import EvaluatorType

from recbole_ext.data import popularity


GOAL_LENGTH_FIELD = "goal_length"
# [rows, k]: 1 where the row's next item (its target) sits in its top k; filled by the collector hook
NEXT_ITEM_HITS = "rec.next"


class SPS(AbstractMetric):
    """1 for a row whose next item is in its top k."""

    metric_type = EvaluatorType.RANKING
    # rec.items marks it a top-k metric for whoever reads metric_information (benchmark.py's names)
    metric_need = ["rec.items", NEXT_ITEM_HITS]

    def __init__(self, config):
        super().__init__(config)
        self.topk = config["topk"]

    def calculate_metric(self, dataobject):
        hits = dataobject.get(NEXT_ITEM_HITS).numpy()
        found = np.cumsum(hits, axis=1) > 0
        return {f"sps@{k}": round(float(found[:, k - 1].mean()), self.decimal_place) for k in self.topk}


class UserCoverage(TopkMetric):
    """1 for a row with a positive item in its top k."""

    def calculate_metric(self, dataobject):
        pos_index, _ = self.used_info(dataobject)
        return self.topk_result("usercoverage", (np.cumsum(pos_index, axis=1) > 0).astype(float))


class _HitItemsMetric(AbstractMetric):
    """Reads the item ids of the hits in each row's top k."""

    metric_type = EvaluatorType.RANKING
    metric_need = ["rec.items", "rec.topk"]

    def __init__(self, config):
        super().__init__(config)
        self.topk = config["topk"]

    def hit_items(self, dataobject, k):
        items = dataobject.get("rec.items").numpy()[:, :k]
        positive = dataobject.get("rec.topk")[:, :k].to(bool).numpy()
        return items[positive]

    def calculate_metric(self, dataobject):
        return {f"{self.name}@{k}": round(float(self.value(dataobject, k)), self.decimal_place) for k in self.topk}


class CorrectItemCoverage(_HitItemsMetric):
    name = "correctitemcoverage"

    def value(self, dataobject, k):
        return len(np.unique(self.hit_items(dataobject, k)))


class BlockbusterShare(_HitItemsMetric):
    name = "blockbustershare"
    metric_need = ["rec.items", "rec.topk", "data.count_items", "data.num_items"]
    smaller = True

    def value(self, dataobject, k):
        hits = self.hit_items(dataobject, k)
        if len(hits) == 0:
            return 0.0
        return np.isin(hits, list(blockbusters(dataobject))).mean()


def blockbusters(dataobject):
    """The ⌊n_items/100⌋ most frequent training items (n_items without the padding id)."""
    counts = dict(dataobject.get("data.count_items"))
    n_top = (dataobject.get("data.num_items") - 1) // 100
    ranked = sorted(counts, key=lambda item: (-counts[item], item))
    return set(ranked[:n_top])


METRICS = (SPS, UserCoverage, CorrectItemCoverage, BlockbusterShare)


def register_metrics():
    """Add the metrics to ``recbole.evaluator.register``'s ``metrics_dict``, ``metric_information``,
    ``metric_types`` and ``smaller_metrics``, in place: RecBole fills them once, at import, from the
    classes in ``recbole.evaluator.metrics`` only, and ``Config`` (name check, ``valid_metric_bigger``),
    ``Register``/``Collector`` (what data to collect) and ``Evaluator`` read those same objects."""
    for metric in METRICS:
        name = metric.__name__.lower()
        register.metrics_dict[name] = metric
        register.metric_information[name] = metric.metric_need
        register.metric_types[name] = metric.metric_type
        if metric.smaller and name not in register.smaller_metrics:
            register.smaller_metrics.append(name)


def collect_training_item_counts(collector, train_data):
    """After RecBole's ``Collector.data_collect``: where the training split keeps the counts of every
    item of its sequences (:mod:`recbole_ext.data.popularity`), ``data.count_items`` is those, not
    RecBole's ``item_counter`` (how often each item is a training target)."""
    counts = popularity.of(train_data._dataset)
    if counts is not None and collector.register.need("data.count_items"):
        collector.data_struct.set("data.count_items", counts)


def collect_next_item_hits_and_goal_lengths(collector, scores_tensor, interaction, positive_u, positive_i):
    """After RecBole's ``Collector.eval_batch_collect``: RecBole's ``rec.topk`` knows a row's
    positives only as a set, so it cannot tell the next item (SPS) from later goal items nor count
    repeated goal items. This stores ``rec.next`` and, for rows with ``goal_length``, writes that
    length into the positive-count column of the rows just collected (read by Recall and NDCG)."""
    goal_field_present = interaction is not None and GOAL_LENGTH_FIELD in interaction
    if collector.register.need("rec.topk") and goal_field_present:
        collected = collector.data_struct._data_dict["rec.topk"]
        rows = len(scores_tensor)
        collected[-rows:, -1] = interaction[GOAL_LENGTH_FIELD].to(collected.device, collected.dtype)
    if collector.register.need(NEXT_ITEM_HITS):
        _, top = torch.topk(scores_tensor, max(collector.topk), dim=-1)
        item_field = collector.config["ITEM_ID_FIELD"]
        if interaction is not None and item_field in interaction and len(interaction) == len(top):
            hits = top == interaction[item_field].to(top.device)[:, None]
        else:
            positive = torch.zeros_like(scores_tensor, dtype=torch.bool)
            positive[positive_u, positive_i] = True
            hits = positive.gather(1, top)
        collector.data_struct.update_tensor(NEXT_ITEM_HITS, hits.to(torch.int))
