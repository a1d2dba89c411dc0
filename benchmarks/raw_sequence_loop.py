"""The raw PyTorch floor of RNNCCE's ``train_mode: sequence``: the same model math and the same
training windows, trained by a plain loop (no RecBole trainer, no ``Interaction``).

:func:`training_windows` takes the windows out of the training split that RecBole's
``data_preparation`` built for RNNCCE (:class:`recbole_ext.data.sequence.SequenceDataset`), once, as
plain tensors; :class:`RawRNNNextItem` is RNNCCE's network written out as a plain ``nn.Module``
(item embedding, dropout on it, the RNN, the projection to the embedding size when the output is
tied to the embedding, logits ``h·Eᵀ + b``, full-softmax cross-entropy over the real positions);
:func:`train_epoch` is one epoch of Adam over shuffled batches of as many windows as RecBole's
training loader puts in a batch. ``benchmarks/sequence_training.py`` times it against the same
model trained by RecBole's trainer: the difference is what RecBole's per-batch machinery costs.
"""

import torch
import torch.nn.functional as F
from torch import nn

RNN_TYPES = {"LSTM": nn.LSTM, "GRU": nn.GRU, "RNN": nn.RNN}


def training_windows(train_data):
    """The training windows of a ``train_mode: sequence`` loader as plain tensors.

    Returns ``{"items": [W, L], "lengths": [W], "targets": [W, L]}`` (input item ids, real positions
    per window, the next item at every input position; padding is 0) and the number of windows
    RecBole's loader puts in one training batch.
    """
    dataset = train_data._dataset
    config = dataset.config
    inter = dataset.inter_feat
    if dataset.target_field not in inter:
        raise ValueError(
            f"the training split of {config['model']} holds no {dataset.target_field!r}: the raw loop needs "
            f"train_mode: sequence, got train_mode: {config['train_mode']!r}"
        )
    windows = {
        "items": inter[config["ITEM_ID_FIELD"] + config["LIST_SUFFIX"]].clone(),
        "lengths": inter[config["ITEM_LIST_LENGTH_FIELD"]].clone(),
        "targets": inter[dataset.target_field].clone(),
    }
    return windows, train_data.step


def real_targets(windows):
    """The training targets of ``windows`` (those at real positions), window by window."""
    positions = torch.arange(windows["targets"].size(1))
    return windows["targets"][positions[None, :] < windows["lengths"][:, None]]


class RawRNNNextItem(nn.Module):
    """RNNCCE's network (``recbole_ext/model/rnncce.py``) without RecBole: the same layers, the same
    initialisation scheme and the same names, so RNNCCE's ``state_dict`` loads into it."""

    def __init__(self, n_items, rnn_type, embedding_size, hidden_size, num_layers, dropout_prob, weight_tying):
        super().__init__()
        self.item_embedding = nn.Embedding(n_items, embedding_size, padding_idx=0)
        nn.init.xavier_normal_(self.item_embedding.weight)
        self.emb_dropout = nn.Dropout(dropout_prob)
        self.rnn = RNN_TYPES[rnn_type](
            embedding_size, hidden_size, num_layers=num_layers,
            dropout=dropout_prob if num_layers > 1 else 0.0, batch_first=True,
        )
        self.projection = nn.Linear(hidden_size, embedding_size) if weight_tying and hidden_size != embedding_size else None
        if not weight_tying:
            self.output_matrix = nn.Parameter(torch.empty(n_items, hidden_size))
            nn.init.xavier_normal_(self.output_matrix)
        self.output_bias = nn.Parameter(torch.zeros(n_items))
        self.weight_tying = weight_tying

    @classmethod
    def like(cls, config, n_items):
        """The network RNNCCE builds from ``config`` (a RecBole ``Config``) for ``n_items`` items."""
        return cls(n_items, config["rnn_type"], config["embedding_size"], config["hidden_size"],
                   config["num_layers"], config["dropout_prob"], config["weight_tying"])

    def loss(self, items, lengths, targets):
        """Mean cross-entropy of the next item over the real positions of a batch of windows."""
        hidden, _ = self.rnn(self.emb_dropout(self.item_embedding(items)))
        if self.projection is not None:
            hidden = self.projection(hidden)
        positions = torch.arange(items.size(1), device=items.device)
        real = positions[None, :] < lengths[:, None]
        output = self.item_embedding.weight if self.weight_tying else self.output_matrix
        return F.cross_entropy(hidden[real] @ output.t() + self.output_bias, targets[real])


def train_epoch(model, optimizer, windows, windows_per_batch, generator):
    """One epoch over ``windows`` in a shuffled order drawn from ``generator``; returns the summed
    batch losses (as RecBole's trainer sums them)."""
    model.train()
    order = torch.randperm(len(windows["lengths"]), generator=generator)
    total = 0.0
    for start in range(0, len(order), windows_per_batch):
        batch = order[start : start + windows_per_batch]
        optimizer.zero_grad()
        loss = model.loss(windows["items"][batch], windows["lengths"][batch], windows["targets"][batch])
        loss.backward()
        optimizer.step()
        total += loss.item()
    return total
