r"""RNNCCE
################################################

Reference:
    Robin Devooght and Hugues Bersini. "Long and short-term recommendations with recurrent neural
    networks." UMAP 2017 (arXiv:1608.07400, "Collaborative filtering with recurrent neural networks").

    Hakan Inan, Khashayar Khosravi and Richard Socher. "Tying word vectors and word classifiers: a
    loss framework for language modeling." ICLR 2017 (weight tying and the KL augmented loss).

Reference code:
    kwonmha/Improving-RNN-recommendation-model

An RNN (LSTM, GRU or vanilla tanh) reads the item sequence and a dense layer over all items with
a softmax predicts the next item (categorical cross-entropy). With ``weight_tying`` the output
logits are ``h·Eᵀ + b`` where ``E`` is the input item embedding — the same ``Parameter`` — and ``b``
a separate bias; when ``hidden_size != embedding_size`` a linear projection first maps ``h`` to the
embedding size, lifting the original's restriction that the two be equal.

Training-only noise from the seed: ``item_drop_prob`` deletes input items (the first item of a
sequence is always kept, so every target has a state to read), ``shuffle_prob`` / ``shuffle_std``
moves items a few positions (prefix mode only: in sequence mode it would leak later targets).
``train_mode: session`` reads one item per step and has no sequence to delete from or shuffle, so
both noises are refused there.

The RNN runs over the padded batch as it is: on CPU at L = 50 a plain padded run (forward and
backward) was faster than ``pack_padded_sequence`` (docs/rnncce.md), and causality makes the
padding harmless, since no real position reads a later one.
"""

import torch
from torch import nn

from recbole_ext import keys
from recbole_ext.errors import ConfigError
from recbole_ext.model.rnn import RNNRecommender, zero_rows

RNN_TYPES = {"LSTM": nn.LSTM, "GRU": nn.GRU, "RNN": nn.RNN}


class RNNCCE(RNNRecommender):
    train_modes = RNNRecommender.train_modes + ("session",)

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.rnn_type = keys.choice(config, "rnn_type", tuple(RNN_TYPES))
        self.embedding_size = keys.integer(config, "embedding_size", 1)
        self.hidden_size = keys.integer(config, "hidden_size", 1)
        self.num_layers = keys.integer(config, "num_layers", 1)
        self.dropout_prob = keys.probability(config, "dropout_prob", allow_one=False)
        self.item_drop_prob = keys.probability(config, "item_drop_prob")
        self.shuffle_prob = keys.probability(config, "shuffle_prob")
        self.shuffle_std = keys.number(config, "shuffle_std", minimum=0)
        self.reg_weight = keys.number(config, "reg_weight", minimum=0)
        weight_tying = keys.boolean(config, "weight_tying")
        if self.shuffle_prob > 0 and self.train_mode == "sequence":
            raise ConfigError(
                f"shuffle_prob: {self.shuffle_prob} needs train_mode: prefix; in sequence mode every "
                "position is a training target, so moving a later item forward would show it its "
                "target: set shuffle_prob: 0 or train_mode: prefix"
            )
        for key, value, other_mode in (("item_drop_prob", self.item_drop_prob, "sequence"),
                                       ("shuffle_prob", self.shuffle_prob, "prefix")):
            if value > 0 and self.train_mode == "session":
                raise ConfigError(
                    f"{key}: {value} is not available with train_mode: session, which reads one item per "
                    f"step: set {key}: 0 or train_mode: {other_mode}"
                )

        item_embedding = nn.Embedding(self.n_items, self.embedding_size, padding_idx=0)
        nn.init.xavier_normal_(item_embedding.weight)
        self.emb_dropout = nn.Dropout(self.dropout_prob)
        self.rnn = RNN_TYPES[self.rnn_type](
            self.embedding_size,
            self.hidden_size,
            num_layers=self.num_layers,
            dropout=self.dropout_prob if self.num_layers > 1 else 0.0,
            batch_first=True,
        )
        needs_projection = weight_tying and self.hidden_size != self.embedding_size
        self.projection = nn.Linear(self.hidden_size, self.embedding_size) if needs_projection else None
        output_size = self.embedding_size if weight_tying else self.hidden_size
        self.build_output(config, dataset, output_size, item_embedding, weight_tying)

    def forward(self, interaction):
        item_seq = interaction[self.ITEM_SEQ]
        lengths = interaction[self.ITEM_SEQ_LEN]
        read_at = None
        if self.training and self.shuffle_prob > 0:
            item_seq = shuffle_items(item_seq, lengths, self.shuffle_prob, self.shuffle_std)
        if self.training and self.item_drop_prob > 0:
            item_seq, read_at = drop_items(item_seq, lengths, self.item_drop_prob)
        hidden, _ = self.rnn(self.emb_dropout(self.item_embedding(item_seq)))
        if self.projection is not None:
            hidden = self.projection(hidden)
        if read_at is not None:
            hidden = hidden.gather(1, read_at.unsqueeze(-1).expand(-1, -1, hidden.size(-1)))
        return hidden

    def session_step(self, step, state, start):
        inputs = self.emb_dropout(self.item_embedding(step[self.ITEM_SEQ])).unsqueeze(1)
        if state is not None:
            state = zero_rows(state, start)
        hidden, state = self.rnn(inputs, state)
        hidden = hidden[:, 0]
        if self.projection is not None:
            hidden = self.projection(hidden)
        return hidden, state

    def calculate_loss(self, interaction):
        loss = super().calculate_loss(interaction)
        if self.reg_weight:
            loss = loss + self.reg_weight * self.output_bias.pow(2).sum()
        return loss


def drop_items(item_seq, lengths, prob):
    """Delete each input item with probability ``prob`` (the first item is always kept).

    Returns the compacted sequences and, for every original position k, the position in the
    compacted sequence of the last kept item at or before k: the state every target keeps reading,
    so each training target survives the deletion.
    """
    positions = torch.arange(item_seq.size(1), device=item_seq.device)
    real = positions[None, :] < lengths[:, None]
    keep = real & (torch.rand(item_seq.shape, device=item_seq.device) >= prob)
    keep[:, 0] = real[:, 0]
    order = torch.sort((~keep).to(torch.int8), dim=1, stable=True).indices
    compacted = item_seq.gather(1, order).masked_fill(~keep.gather(1, order), 0)
    read_at = (keep.long().cumsum(1) - 1).clamp(min=0)
    return compacted, read_at


def shuffle_items(item_seq, lengths, prob, std):
    """Move each input item, with probability ``prob``, by about N(0, std) positions.

    A stable sort of the perturbed positions: a permutation of the real items (padding stays at the
    end), the vectorized form of the seed's random swaps with a normally distributed offset.
    """
    n = item_seq.size(1)
    positions = torch.arange(n, device=item_seq.device, dtype=torch.float32).expand_as(item_seq)
    real = positions < lengths[:, None]
    moved = torch.rand(item_seq.shape, device=item_seq.device) < prob
    offsets = torch.round(torch.randn(item_seq.shape, device=item_seq.device) * std)
    keys = torch.where(moved, positions + offsets, positions)
    keys = torch.where(real, keys, torch.full_like(keys, float("inf")))
    order = torch.sort(keys, dim=1, stable=True).indices
    return item_seq.gather(1, order)
