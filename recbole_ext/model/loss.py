"""Losses shared by every plugin model, chosen by the ``loss_type`` config key.

A loss is called as ``loss(model, hidden, targets)``: final hidden states ``h`` [N, D] (one per
training target), the target item ids [N], and the model's output layer — ``model.output_weight``
``W`` [n_items, D] (row 0 is the padding item), ``model.output_bias`` ``b`` [n_items],
``model.item_embedding``, ``model.output_is_item_embedding`` (weight tying) and
``model.sparse_item_grad`` (the sampled rows get a sparse gradient). Scores are h·Wᵀ + b.

* ``CE``: full softmax cross-entropy over all items.
* ``KL``: CE + γ·τ·KL(softmax(E·e_y/τ) ‖ softmax(h·Eᵀ/τ)), the augmented loss of Inan et al.
  (ICLR 2017, "Tying word vectors and word classifiers"): items whose embeddings resemble the
  target's are nearly right. Needs weight tying.
* ``XE-sampled``, ``BPR-max``, ``TOP1-max``: GRU4Rec's losses (Hidasi & Karatzoglou, CIKM 2018) over
  the batch's own targets plus ``n_sample`` negatives shared by the batch, drawn ∝ support^α.
"""

import torch
import torch.nn.functional as F
from torch import nn

from recbole_ext import keys
from recbole_ext.errors import ConfigError


class CrossEntropy(nn.Module):
    """Full softmax cross-entropy over all items (``loss_type: CE``)."""

    def __init__(self, config, model, dataset):
        super().__init__()

    def forward(self, model, hidden, targets):
        return F.cross_entropy(model.item_scores(hidden), targets)


class KLAugmented(nn.Module):
    """``loss_type: KL`` — keys ``kl_temperature`` (τ) and ``kl_weight`` (γ).

    The soft target softmax(E·e_y/τ) and the model's tempered distribution softmax(h·Eᵀ/τ) leave out
    the bias (as in Inan et al.) and the padding item 0. Gradients flow into E through both the
    output and the soft target, as in the reference implementation.
    """

    def __init__(self, config, model, dataset):
        super().__init__()
        if not model.output_is_item_embedding:
            raise ConfigError(
                "loss_type: 'KL' needs the output layer tied to the item embedding; "
                "set weight_tying: True or choose another loss_type"
            )
        self.temperature = keys.number(config, "kl_temperature", minimum=1e-6)
        self.weight = keys.number(config, "kl_weight", minimum=0)

    def forward(self, model, hidden, targets):
        embedding = model.item_embedding.weight
        logits = hidden @ embedding.t()
        loss = F.cross_entropy(logits + model.output_bias, targets)
        if self.weight == 0:
            return loss
        # column 0 is the padding item: it takes part in neither distribution
        similarity = embedding[targets] @ embedding[1:].t()
        log_soft_target = (similarity / self.temperature).log_softmax(-1)
        log_predicted = (logits[:, 1:] / self.temperature).log_softmax(-1)
        kl = (log_soft_target.exp() * (log_soft_target - log_predicted)).sum(-1).mean()
        return loss + self.weight * self.temperature * kl


class SampledLoss(nn.Module):
    """Scores over the batch's targets plus ``n_sample`` shared negatives (GRU4Rec).

    Negatives are drawn ∝ support^``sample_alpha`` (support = how often an item is a training
    target; items never seen as a target and the padding item are never drawn) by inverse CDF on the
    model's device: the cost of a step is batch × (batch + n_sample), independent of the number of
    items. Accidental hits (a negative equal to the row's target) are kept, as in the official code.
    Row i's positive score sits at column i. The loss is the mean over rows (the official code sums).

    As the official code's sample cache, the negatives of ``sample_cache_size`` // ``n_sample``
    batches are drawn in one call and handed out one slice per batch: one draw per many batches
    instead of a small draw every batch.
    """

    def __init__(self, config, model, dataset):
        super().__init__()
        self.n_sample = keys.integer(config, "n_sample", 0)
        self.alpha = keys.number(config, "sample_alpha", minimum=0)
        support = _training_support(dataset, model.n_items).double()
        if support.sum() <= 0:
            raise ConfigError("sampled losses need at least one training target; the training split is empty")
        # torch gives 0 ** 0 = 1: without the mask, alpha 0 would draw never-seen items and padding
        cumulative = torch.cumsum(torch.where(support > 0, support.pow(self.alpha), 0.0), 0)
        # dividing by the last entry makes it exactly 1, so a uniform draw in [0, 1) always lands
        # on an item with positive weight; float64 keeps rare items' share on large catalogues
        self.register_buffer("sample_cdf", cumulative / cumulative[-1], persistent=False)
        self.register_buffer("support", support.float(), persistent=False)
        self.cache_batches = max(1, keys.integer(config, "sample_cache_size", 1) // max(self.n_sample, 1))
        self._cached_negatives, self._next_cached = None, 0

    def sample(self, n):
        """``n`` item ids drawn ∝ support^alpha, in one call on the model's device."""
        uniform = torch.rand(n, dtype=self.sample_cdf.dtype, device=self.sample_cdf.device)
        return torch.searchsorted(self.sample_cdf, uniform, right=True)

    def negatives(self):
        """This batch's ``n_sample`` negatives: the next slice of the cached block, drawn anew when it
        is used up or the model moved to another device."""
        cache = self._cached_negatives
        if cache is None or self._next_cached >= len(cache) or cache.device != self.sample_cdf.device:
            cache = self._cached_negatives = self.sample(self.cache_batches * self.n_sample).view(-1, self.n_sample)
            self._next_cached = 0
        self._next_cached += 1
        return cache[self._next_cached - 1]

    def scores(self, model, hidden, targets):
        """Scores ``[N, N + n_sample]`` over the targets then the negatives, and those item ids."""
        items = torch.cat([targets, self.negatives()]) if self.n_sample else targets
        if len(items) >= model.n_items:
            # more columns than items (2048 negatives from a few hundred items): scoring every item
            # once and picking the columns is the same numbers from a smaller product
            every_item = model.item_scores(hidden)
            return every_item.index_select(1, items), items
        # F.embedding (like index_select) back-propagates by one index_add, where indexing with a
        # tensor sorts the indices; with sparse_item_grad it gives the rows a sparse gradient
        weight = F.embedding(items, model.output_weight, sparse=model.sparse_item_grad)
        bias = model.output_bias.index_select(0, items)
        return hidden @ weight.t() + bias, items

    def forward(self, model, hidden, targets):
        scores, items = self.scores(model, hidden, targets)
        return self.from_scores(scores, items)


class SampledCrossEntropy(SampledLoss):
    """``loss_type: XE-sampled``: −log softmax(r_i)_i, with the logQ correction r_ij − logq·log q_j.

    As in the official code, q_j is the support of column j's item for the batch's targets (they
    occur ∝ support) and support^alpha for the sampled negatives.
    """

    def __init__(self, config, model, dataset):
        super().__init__(config, model, dataset)
        self.logq = keys.number(config, "logq", minimum=0)

    def from_scores(self, scores, items):
        n_targets = scores.size(0)
        if self.logq:
            log_support = self.support[items].log()
            log_q = torch.cat([log_support[:n_targets], self.alpha * log_support[n_targets:]])
            scores = scores - self.logq * log_q
        return F.cross_entropy(scores, torch.arange(n_targets, device=scores.device))


class _NegativeSoftmaxLoss(SampledLoss):
    """Shared part of BPR-max and TOP1-max: the softmax over each row's negatives."""

    def __init__(self, config, model, dataset):
        super().__init__(config, model, dataset)
        logq = keys.number(config, "logq", minimum=0)
        if logq:
            raise ConfigError(f"logq: {logq} is only used by loss_type 'XE-sampled'; set logq: 0")

    def from_scores(self, scores, items):
        if scores.size(1) == 1:
            # one target and n_sample 0 (a last batch of one): no negatives to rank against, and a
            # softmax over none would be NaN and poison the parameters
            return scores.sum() * 0.0
        rows = torch.arange(scores.size(0), device=scores.device)
        positive = scores[rows, rows].unsqueeze(1)
        is_negative = torch.ones_like(scores, dtype=torch.bool)
        is_negative[rows, rows] = False
        negative_softmax = scores.masked_fill(~is_negative, float("-inf")).softmax(-1)
        return self.ranking(scores, positive, negative_softmax).mean()


class BPRMax(_NegativeSoftmaxLoss):
    """``loss_type: BPR-max``: −log Σ_j s_ij·σ(r_ii − r_ij) + bpreg·Σ_j s_ij·r_ij² (key ``bpreg``)."""

    def __init__(self, config, model, dataset):
        super().__init__(config, model, dataset)
        self.bpreg = keys.number(config, "bpreg", minimum=0)

    def ranking(self, scores, positive, negative_softmax):
        ranked = (negative_softmax * torch.sigmoid(positive - scores)).sum(-1)
        return -torch.log(ranked + 1e-24) + self.bpreg * (negative_softmax * scores.pow(2)).sum(-1)


class TOP1Max(_NegativeSoftmaxLoss):
    """``loss_type: TOP1-max``: Σ_j s_ij·(σ(r_ij − r_ii) + σ(r_ij²))."""

    def ranking(self, scores, positive, negative_softmax):
        return (negative_softmax * (torch.sigmoid(scores - positive) + torch.sigmoid(scores.pow(2)))).sum(-1)


def _training_support(dataset, n_items):
    if hasattr(dataset, "target_item_counts"):
        counts = dataset.target_item_counts()
    else:
        counts = torch.bincount(dataset.inter_feat[dataset.iid_field], minlength=n_items)
    counts = counts[:n_items].clone()
    counts[0] = 0
    return counts


LOSSES = {
    "CE": CrossEntropy,
    "KL": KLAugmented,
    "XE-sampled": SampledCrossEntropy,
    "BPR-max": BPRMax,
    "TOP1-max": TOP1Max,
}
SAMPLED_LOSSES = tuple(name for name, loss in LOSSES.items() if issubclass(loss, SampledLoss))


def build_loss(config, model, dataset):
    """The loss named by ``config['loss_type']``, built for ``model`` and its training ``dataset``."""
    name = config["loss_type"]
    if name not in LOSSES:
        raise ConfigError(f"loss_type: {name!r} is not allowed; use one of {list(LOSSES)}")
    return LOSSES[name](config, model, dataset)
