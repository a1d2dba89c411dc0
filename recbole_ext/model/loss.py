"""Losses shared by every plugin model, chosen by the ``loss_type`` config key.

A loss sees the model only through :class:`OutputLayer`: final hidden states ``h`` [N, D] (one per
training target), the target item ids [N], the output matrix ``W`` [n_items, D] and bias ``b``
[n_items]; scores are ``h·Wᵀ + b``.
"""

import torch
import torch.nn.functional as F
from torch import nn

from recbole_ext.errors import ConfigError


class OutputLayer:
    """What a loss may use of a model (implemented by :class:`~recbole_ext.model.rnn.RNNRecommender`).

    * ``output_weight``: [n_items, D] tensor, row 0 is the padding item.
    * ``output_bias``: [n_items] tensor.
    * ``item_embedding``: the input ``nn.Embedding``; ``output_is_item_embedding`` says whether
      ``output_weight`` is that very parameter (weight tying).
    """


class CrossEntropy(nn.Module):
    """Full softmax cross-entropy over all items (``loss_type: CE``)."""

    def __init__(self, config, model, dataset):
        super().__init__()

    def forward(self, model, hidden, targets):
        logits = hidden @ model.output_weight.t() + model.output_bias
        return F.cross_entropy(logits, targets)


LOSSES = {
    "CE": CrossEntropy,
}


def build_loss(config, model, dataset):
    """The loss named by ``config['loss_type']``, built for ``model`` and its training ``dataset``."""
    name = config["loss_type"]
    if name not in LOSSES:
        raise ConfigError(f"loss_type: {name!r} is not allowed; use one of {sorted(LOSSES)}")
    return LOSSES[name](config, model, dataset)
