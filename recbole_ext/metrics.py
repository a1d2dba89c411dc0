"""The seed's evaluation metrics (kwonmha; Devooght & Bersini) as RecBole metrics.

After ``import recbole_ext`` they can be named in ``metrics`` like RecBole's own, e.g.
``metrics: [NDCG, Recall, SPS, UserCoverage, CorrectItemCoverage, BlockbusterShare]``. With RecBole's
full-ranking evaluation each evaluated row is one user's case (leave-one-out: its next item), R the
top-k list and G the row's positive items:

* ``SPS@k`` (short-term prediction success): share of rows whose next item is in R. With one
  positive per row (leave-one-out) it equals ``Hit@k``; with several it counts any positive.
* ``UserCoverage@k``: share of users with at least one hit (RecBole groups a user's cases into one
  row, so it equals ``SPS@k`` under leave-one-out).
* ``CorrectItemCoverage@k``: number of distinct items recommended correctly at least once (the
  seed's ``item_coverage``; RecBole's ``ItemCoverage`` is the catalogue share of recommended items).
* ``BlockbusterShare@k``: share of hits that are among the ⌊n_items/100⌋ most popular training
  items (ties broken by item id); lower is better. 0 when there is no hit.
"""

import numpy as np
from recbole.evaluator import register
from recbole.evaluator.base_metric import AbstractMetric, TopkMetric
from recbole.utils import EvaluatorType


class _AnyHitAtK(TopkMetric):
    """1 for a row with a positive item in its top k."""

    name = None

    def calculate_metric(self, dataobject):
        pos_index, _ = self.used_info(dataobject)
        return self.topk_result(self.name, (np.cumsum(pos_index, axis=1) > 0).astype(float))


class SPS(_AnyHitAtK):
    name = "sps"


class UserCoverage(_AnyHitAtK):
    name = "usercoverage"


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
    """Patches ``recbole.evaluator.register``'s ``metrics_dict``, ``metric_information``,
    ``metric_types`` and ``smaller_metrics`` in place: RecBole fills them once, at import, from the
    classes in ``recbole.evaluator.metrics`` only, and ``Config`` (name check, ``valid_metric_bigger``),
    ``Register``/``Collector`` (what data to collect) and ``Evaluator`` read those same objects."""
    for metric in METRICS:
        name = metric.__name__.lower()
        register.metrics_dict[name] = metric
        register.metric_information[name] = metric.metric_need
        register.metric_types[name] = metric.metric_type
        if metric.smaller and name not in register.smaller_metrics:
            register.smaller_metrics.append(name)
