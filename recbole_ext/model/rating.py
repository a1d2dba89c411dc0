r"""RatingMF, RatingNNMF, RatingMLP: explicit-rating predictors scored by RMSE and MAE
################################################

Reference:
    Yehuda Koren, Robert Bell and Chris Volinsky. "Matrix factorization techniques for recommender
    systems." IEEE Computer 42(8), 2009 (biased MF: r̂ = μ + b_u + b_i + p_u·q_i, L2 on the rows used).

    Daniel D. Lee and H. Sebastian Seung. "Learning the parts of objects by non-negative matrix
    factorization." Nature 401, 1999 (non-negative factors).

    Xiangnan He, Lizi Liao, Hanwang Zhang, Liqiang Nie, Xia Hu and Tat-Seng Chua. "Neural
    collaborative filtering." WWW 2017 (embeddings concatenated into an MLP).

    The Keras tutorial the project started from (docs/ratings.md): 3-factor MF with MSE, the same
    with non-negative embeddings, and an MLP over a 5-wide user and an 8-wide item embedding with MAE.

All three regress the raw rating (``LABEL_FIELD``, a copy of ``RATING_FIELD`` made by
:class:`~recbole_ext.data.rating_dataset.RatingDataset`). Predictions are clipped to the training ratings'
range; with ``round_predictions`` they are also rounded to the nearest integer (the tutorial's
rounded MAE). Training never sees the clipping or the rounding.

RatingNNMF keeps p, q >= 0 by parameterisation, p = softplus(θ): the factors cannot be negative at
any step, with any optimizer, and RecBole's trainer needs no hook after the optimizer step (it
offers none, which a projection would need).
"""

import torch
import torch.nn.functional as F
from recbole.model.abstract_recommender import GeneralRecommender
from recbole.model.layers import MLPLayers
from recbole.utils import InputType
from torch import nn
from torch.nn.utils import parametrize

from recbole_ext import distributed, keys
from recbole_ext.errors import ConfigError

RATING_LOSSES = {"MSE": F.mse_loss, "MAE": F.l1_loss}


def rating_loss(prediction, rating, loss_type):
    """Mean squared (MSE) or mean absolute (MAE) error of the predictions."""
    return RATING_LOSSES[loss_type](prediction, rating)


def finish_predictions(prediction, min_rating, max_rating, round_predictions):
    """Clip predictions to the rating range, and round them to the nearest integer if asked."""
    prediction = prediction.clamp(min_rating, max_rating)
    return torch.round(prediction) if round_predictions else prediction


class RatingRecommender(GeneralRecommender):
    """Shared part: the label, the loss, the L2 penalty and the finishing of predictions.

    A subclass implements ``forward(user, item) -> (prediction, penalty)`` where ``penalty`` is the
    batch mean of the squared norms of the parameter rows the batch used.
    """

    input_type = InputType.POINTWISE
    loss_types = tuple(RATING_LOSSES)
    train_modes = ()

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.LABEL = config["LABEL_FIELD"]
        self.loss_type = keys.choice(config, "loss_type", self.loss_types)
        self.reg_weight = keys.number(config, "reg_weight", minimum=0)
        self.round_predictions = keys.boolean(config, "round_predictions")
        ratings = dataset.inter_feat[self.LABEL].float()
        self.min_rating, self.max_rating = float(ratings.min()), float(ratings.max())
        self.register_buffer("global_mean", ratings.mean())

    def calculate_loss(self, interaction):
        prediction, penalty = self.forward(interaction[self.USER_ID], interaction[self.ITEM_ID])
        loss = rating_loss(prediction, interaction[self.LABEL].float(), self.loss_type) + self.reg_weight * penalty
        return distributed.scaled_loss(loss, interaction)  # a distributed run: this rank's share of the batch

    def predict(self, interaction):
        prediction, _ = self.forward(interaction[self.USER_ID], interaction[self.ITEM_ID])
        return finish_predictions(prediction, self.min_rating, self.max_rating, self.round_predictions)

    def full_sort_predict(self, interaction):
        user = interaction[self.USER_ID]
        items = torch.arange(self.n_items, device=user.device)
        prediction, _ = self.forward(user.repeat_interleave(self.n_items), items.repeat(len(user)))
        return finish_predictions(prediction, self.min_rating, self.max_rating, self.round_predictions)


def squared_rows(*rows):
    """Batch mean of the summed squared entries of each row (one row per example per table)."""
    return sum(r.pow(2).reshape(len(r), -1).sum(1) for r in rows).mean()


class RatingMF(RatingRecommender):
    """r̂ = μ + b_u + b_i + p_u·q_i (``use_bias``), or p_u·q_i (the tutorial's plain dot product)."""

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.embedding_size = keys.integer(config, "embedding_size", 1)
        self.use_bias = keys.boolean(config, "use_bias")
        init_std = keys.number(config, "init_std", minimum=0)
        self.user_embedding = nn.Embedding(self.n_users, self.embedding_size)
        self.item_embedding = nn.Embedding(self.n_items, self.embedding_size)
        nn.init.normal_(self.user_embedding.weight, std=init_std)
        nn.init.normal_(self.item_embedding.weight, std=init_std)
        if self.use_bias:
            self.user_bias = nn.Embedding(self.n_users, 1)
            self.item_bias = nn.Embedding(self.n_items, 1)
            nn.init.zeros_(self.user_bias.weight)
            nn.init.zeros_(self.item_bias.weight)

    def forward(self, user, item):
        p, q = self.user_embedding(user), self.item_embedding(item)
        prediction = (p * q).sum(-1)
        if not self.use_bias:
            return prediction, squared_rows(p, q)
        b_u, b_i = self.user_bias(user).squeeze(-1), self.item_bias(item).squeeze(-1)
        return self.global_mean + b_u + b_i + prediction, squared_rows(p, q, b_u, b_i)


class NonNegative(nn.Module):
    """θ ↦ softplus(θ): the parameterisation that keeps RatingNNMF's factors >= 0."""

    def forward(self, raw):
        return F.softplus(raw)

    def right_inverse(self, value):
        return torch.where(value > 20, value, torch.log(torch.expm1(value.clamp(min=1e-6))))


class RatingNNMF(RatingMF):
    """RatingMF with p_u, q_i >= 0 at every step (``weight`` = softplus of the stored parameter).

    The factors start at |N(0, init_std)| (``init_std``), like RatingMF's but non-negative.
    """

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        for embedding in (self.user_embedding, self.item_embedding):
            with torch.no_grad():
                embedding.weight.abs_()
            parametrize.register_parametrization(embedding, "weight", NonNegative())


class RatingMLP(RatingRecommender):
    """User and item embeddings (of their own sizes), dropout, concatenated → ReLU layers → one output.

    The output unit's bias starts at the training mean rating.
    """

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.user_embedding_size = keys.integer(config, "user_embedding_size", 1)
        self.item_embedding_size = keys.integer(config, "item_embedding_size", 1)
        hidden = config["mlp_hidden_size"]
        if not isinstance(hidden, list) or not all(isinstance(h, int) and not isinstance(h, bool) and h >= 1 for h in hidden):
            raise ConfigError(
                f"mlp_hidden_size: {hidden!r} is not allowed; use a list of positive integers, e.g. [100, 50, 20]"
            )
        self.mlp_hidden_size = hidden
        self.dropout_prob = keys.probability(config, "dropout_prob", allow_one=False)
        init_std = keys.number(config, "init_std", minimum=0)
        self.user_embedding = nn.Embedding(self.n_users, self.user_embedding_size)
        self.item_embedding = nn.Embedding(self.n_items, self.item_embedding_size)
        nn.init.normal_(self.user_embedding.weight, std=init_std)
        nn.init.normal_(self.item_embedding.weight, std=init_std)
        self.embedding_dropout = nn.Dropout(self.dropout_prob)
        sizes = [self.user_embedding_size + self.item_embedding_size, *hidden]
        self.mlp = MLPLayers(sizes, dropout=0.0, activation="relu") if hidden else nn.Identity()
        self.output = nn.Linear(sizes[-1], 1)
        with torch.no_grad():
            self.output.bias.fill_(float(self.global_mean))

    def forward(self, user, item):
        p, q = self.user_embedding(user), self.item_embedding(item)
        features = torch.cat([self.embedding_dropout(p), self.embedding_dropout(q)], dim=-1)
        return self.output(self.mlp(features)).squeeze(-1), squared_rows(p, q)
