r"""DwellGRU4Rec
################################################

Reference:
    Veronika Bogina and Tsvi Kuflik. "Incorporating dwell time in session-based recommendations with
    recurrent neural networks." RecTemp workshop at RecSys 2017.

    Balázs Hidasi et al. "Session-based recommendations with recurrent neural networks." ICLR 2016.

Reference code:
    KerasGRU4Rec (item boosting); hidasib/GRU4Rec (the backbone and its losses).

GRU4Rec (item embedding → dropout → GRU → dense to the embedding size, output tied to the item
embedding, as RecBole's GRU4Rec) that uses the dwell time of each item: the time until the next
event of the same sequence, in seconds, from ``timestamp_list``.

The dwell of an item is known only once the next item is clicked, so the state that predicts item
k+1 must not have seen item k's dwell. Both modes keep that rule, in training and evaluation, in
``prefix`` and ``sequence`` training alike:

* ``boost`` (Bogina & Kuflik's item boosting): item i is repeated ⌊dwell_i / dwell_threshold⌋ + 1
  times (at most ``dwell_max_repeat``); the prediction after item k is read at item k's *first* copy,
  so its own repetitions only reach later targets. Targets stay the real next items.
  ``dwell_boost_eval`` says whether evaluation inputs are boosted too.
* ``feature`` (the paper's "dwell time as a model input" future work): the input at step k is the
  embedding of item k plus a learned embedding of item k−1's dwell, bucketed on a log₂ scale into
  ``dwell_buckets`` buckets; step 0 gets the "unknown" bucket.
* ``both`` combines them; ``none`` is a plain GRU4Rec for comparison with RecBole's.
"""

import torch
from torch import nn

from recbole_ext import config as keys
from recbole_ext.errors import ConfigError
from recbole_ext.model.rnn import RNNRecommender

DWELL_MODES = ("none", "boost", "feature", "both")
PADDING_BUCKET, UNKNOWN_BUCKET = 0, 1


class DwellGRU4Rec(RNNRecommender):
    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.embedding_size = keys.integer(config, "embedding_size", 1)
        self.hidden_size = keys.integer(config, "hidden_size", 1)
        self.num_layers = keys.integer(config, "num_layers", 1)
        self.dropout_prob = keys.probability(config, "dropout_prob", allow_one=False)
        self.dwell_mode = keys.choice(config, "dwell_mode", DWELL_MODES)
        self.dwell_threshold = keys.number(config, "dwell_threshold", minimum=1e-9)
        self.dwell_max_repeat = keys.integer(config, "dwell_max_repeat", 1)
        self.dwell_boost_eval = keys.boolean(config, "dwell_boost_eval")
        self.dwell_buckets = keys.integer(config, "dwell_buckets", 1)
        self.boost = self.dwell_mode in ("boost", "both")
        self.time_list_field = config["TIME_FIELD"] + config["LIST_SUFFIX"]
        if self.dwell_mode != "none":
            _check_raw_time_field(config, dataset, self.time_list_field, self.dwell_mode)

        item_embedding = nn.Embedding(self.n_items, self.embedding_size, padding_idx=0)
        nn.init.xavier_normal_(item_embedding.weight)
        self.dwell_embedding = None
        if self.dwell_mode in ("feature", "both"):
            self.dwell_embedding = nn.Embedding(self.dwell_buckets + 2, self.embedding_size, padding_idx=0)
            nn.init.xavier_normal_(self.dwell_embedding.weight)
        self.emb_dropout = nn.Dropout(self.dropout_prob)
        self.gru = nn.GRU(self.embedding_size, self.hidden_size, self.num_layers, bias=False, batch_first=True)
        self.dense = nn.Linear(self.hidden_size, self.embedding_size)
        self.build_output(config, dataset, self.embedding_size, item_embedding, weight_tying=True)

    def forward(self, interaction):
        items = interaction[self.ITEM_SEQ]
        lengths = interaction[self.ITEM_SEQ_LEN]
        inputs = self.item_embedding(items)
        if self.dwell_mode != "none":
            dwell = dwell_seconds(interaction[self.time_list_field], lengths)
            if self.dwell_embedding is not None:
                inputs = inputs + self.dwell_embedding(previous_dwell_buckets(dwell, lengths, self.dwell_buckets))
        inputs = self.emb_dropout(inputs)
        if self.boost and (self.training or self.dwell_boost_eval):
            repeats = boost_repeats(dwell, lengths, self.dwell_threshold, self.dwell_max_repeat)
            inputs, read_at = expand(inputs, repeats)
            hidden, _ = self.gru(inputs)
            hidden = hidden.gather(1, read_at.unsqueeze(-1).expand(-1, -1, hidden.size(-1)))
        else:
            hidden, _ = self.gru(inputs)
        return self.dense(hidden)


def dwell_seconds(times, lengths):
    """``[B, L]`` dwell of each input item: the next input's time minus its own; NaN where unknown
    (the last input, whose next event is the target) and at padding."""
    dwell = torch.full_like(times, float("nan"))
    dwell[:, :-1] = times[:, 1:] - times[:, :-1]
    known = torch.arange(times.size(1), device=times.device)[None, :] < (lengths[:, None] - 1)
    return dwell.masked_fill(~known, float("nan"))


def dwell_bucket(dwell, n_buckets):
    """Log₂ buckets ``2 + min(⌊log₂(1 + dwell)⌋, n_buckets − 1)``; unknown dwell → UNKNOWN_BUCKET."""
    bucket = torch.log2(1 + dwell.clamp(min=0).nan_to_num(0.0)).floor().long().clamp(max=n_buckets - 1) + 2
    return bucket.masked_fill(torch.isnan(dwell), UNKNOWN_BUCKET)


def previous_dwell_buckets(dwell, lengths, n_buckets):
    """``[B, L]`` bucket of item k−1's dwell at position k (UNKNOWN at k = 0, PADDING past the end)."""
    shifted = torch.full_like(dwell, float("nan"))
    shifted[:, 1:] = dwell[:, :-1]
    buckets = dwell_bucket(shifted, n_buckets)
    padding = torch.arange(dwell.size(1), device=dwell.device)[None, :] >= lengths[:, None]
    return buckets.masked_fill(padding, PADDING_BUCKET)


def boost_repeats(dwell, lengths, threshold, max_repeat):
    """Copies of each input item: ⌊dwell / threshold⌋ + 1 (at most ``max_repeat``), 1 where the dwell
    is unknown, 0 at padding."""
    repeats = (dwell.nan_to_num(0.0) / threshold).floor().long().clamp(min=0, max=max_repeat - 1) + 1
    padding = torch.arange(dwell.size(1), device=dwell.device)[None, :] >= lengths[:, None]
    return repeats.masked_fill(padding, 0)


def expand(inputs, repeats):
    """Repeat position k of each row ``repeats[:, k]`` times, right-padded; also returns, for every
    original position, the index of its first copy in the expanded rows."""
    ends = repeats.cumsum(1)
    width = max(int(ends[:, -1].max()), 1)
    slots = torch.arange(width, device=inputs.device).expand(inputs.size(0), width).contiguous()
    source = torch.searchsorted(ends, slots, right=True).clamp(max=inputs.size(1) - 1)
    real = slots < ends[:, -1:]
    expanded = inputs.gather(1, source.unsqueeze(-1).expand(-1, -1, inputs.size(-1)))
    expanded = expanded * real.unsqueeze(-1)
    first_copy = (ends - repeats).clamp(max=width - 1)
    return expanded, first_copy


def _check_raw_time_field(config, dataset, time_list_field, mode):
    time_field = config["TIME_FIELD"]
    if time_list_field not in dataset.field2type:
        raise ConfigError(
            f"dwell_mode: {mode!r} needs the time field {time_field!r}: add it to load_col "
            f"(load_col: {{inter: [..., {time_field}]}}) or set dwell_mode: none"
        )
    normalized = config["normalize_all"] or time_field in (config["normalize_field"] or [])
    if normalized:
        raise ConfigError(
            f"dwell_mode: {mode!r} needs raw seconds in {time_field!r}, but it is min-max normalized "
            f"(normalize_all: {config['normalize_all']}, normalize_field: {config['normalize_field']}); "
            "set normalize_all: False (ml-100k's dataset YAML sets it True)"
        )
