"""A test-only plugin model: a one-layer GRU over item embeddings, registered like a real plugin."""

from pathlib import Path

import torch
from recbole.model.abstract_recommender import SequentialRecommender
from recbole.utils import InputType
from torch import nn

import recbole_ext


class ToyGRU(SequentialRecommender):
    input_type = InputType.POINTWISE
    train_modes = ()  # RecBole's prefix samples only: the train_mode key means nothing to it
    loss_types = ("CE",)

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.toy_marker = config["toy_marker"]
        self.item_embedding = nn.Embedding(self.n_items, config["embedding_size"], padding_idx=0)
        self.gru = nn.GRU(config["embedding_size"], config["embedding_size"], batch_first=True)

    def forward(self, item_seq, item_seq_len):
        output, _ = self.gru(self.item_embedding(item_seq))
        return self.gather_indexes(output, item_seq_len - 1)

    def calculate_loss(self, interaction):
        logits = self.full_sort_predict(interaction)
        return nn.functional.cross_entropy(logits, interaction[self.ITEM_ID])

    def predict(self, interaction):
        seq_output = self.forward(interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN])
        return (seq_output * self.item_embedding(interaction[self.ITEM_ID])).sum(-1)

    def full_sort_predict(self, interaction):
        seq_output = self.forward(interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN])
        return torch.matmul(seq_output, self.item_embedding.weight.t())


recbole_ext.register_model(ToyGRU, properties_file=Path(__file__).with_name("ToyGRU.yaml"))
