r"""DwellGRU4Rec
################################################

Reference:
    Veronika Bogina and Tsvi Kuflik. "Incorporating dwell time in session-based recommendations with
    recurrent neural networks." RecTemp workshop at RecSys 2017.

    Balázs Hidasi et al. "Session-based recommendations with recurrent neural networks." ICLR 2016.

Reference code:
    KerasGRU4Rec (item boosting); hidasib/GRU4Rec (the backbone and its losses).

GRU4Rec (item embedding → dropout → GRU → dense to the embedding size, output tied to the item
embedding, as RecBole's GRU4Rec; with ``hidden_projection: False`` the GRU state scores the items
directly, as the official GRU4Rec's tied output does) that uses the dwell time of each item: the time until the next
event of the same sequence, in seconds, from ``timestamp_list``.

The dwell of an item is known only once the next item is clicked, so the state that predicts item
k+1 has seen the dwells of items 0..k−1 and not item k's: that is the information a live system
has, and both modes give exactly that to every position, in training and evaluation, in ``prefix``
and ``sequence`` training alike (a window's position k and the prefix sample ending at item k get
the same state). The target's timestamp is never read.

* ``boost`` (Bogina & Kuflik's item boosting): item i is repeated ⌊dwell_i / dwell_threshold⌋ + 1
  times (at most ``dwell_max_repeat``); the prediction after item k is read at item k's *first* copy,
  so its own repetitions only reach later targets. Targets stay the real next items.
  ``dwell_boost_eval`` says whether evaluation inputs are boosted too.
* ``feature`` (the paper's "dwell time as a model input" future work): the GRU reads each item
  together with a learned embedding of its own dwell, bucketed on a log₂ scale into
  ``dwell_buckets`` buckets. The state for position k is one more GRU step, taken from the state
  after items 0..k−1 (dwells known), on item k with the "unknown" dwell bucket — computed for all
  positions at once. (Feeding item k with item k−1's dwell carries the same information but makes
  the GRU revise a step it has already taken; on the generated sessions that variant did no better
  than ``none``.)
* ``both`` combines them; ``none`` is a plain GRU4Rec for comparison with RecBole's.

``train_mode: session`` (GRU4Rec's session-parallel rows) gives every step the same state as the
whole-sequence forward: a step reads its input item and that item's time, never its target's. The
dwell of the previous input becomes known at this step (this time minus its time), so the step first
completes the previous item (its remaining boost copies; in feature mode the item with its dwell)
and then takes the prediction step on the new item with its dwell unknown.
"""

import logging
import math

import torch
import torch.nn.functional as F
from torch import nn

from recbole_ext import keys
from recbole_ext.errors import ConfigError
from recbole_ext.model.rnn import RNNRecommender, zero_rows

DWELL_MODES = ("none", "boost", "feature", "both")
PADDING_BUCKET, UNKNOWN_BUCKET = 0, 1
FLOAT32_EXACT_SECONDS = 2**24  # float32 holds every whole second below this (~194 days)


class DwellGRU4Rec(RNNRecommender):
    train_modes = RNNRecommender.train_modes + ("session",)

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.embedding_size = keys.integer(config, "embedding_size", 1)
        self.hidden_size = keys.integer(config, "hidden_size", 1)
        self.num_layers = keys.integer(config, "num_layers", 1)
        self.dropout_prob = keys.probability(config, "dropout_prob", allow_one=False)
        self.dwell_mode = keys.choice(config, "dwell_mode", DWELL_MODES)
        self.dwell_threshold = _positive_seconds(config, "dwell_threshold")
        self.dwell_max_repeat = keys.integer(config, "dwell_max_repeat", 1)
        self.dwell_boost_eval = keys.boolean(config, "dwell_boost_eval")
        self.dwell_buckets = keys.integer(config, "dwell_buckets", 1)
        hidden_projection = keys.boolean(config, "hidden_projection")
        if not hidden_projection and self.hidden_size != self.embedding_size:
            raise ConfigError(
                f"hidden_projection: False scores items with the GRU state itself, so hidden_size "
                f"({self.hidden_size}) must equal embedding_size ({self.embedding_size}); make them equal "
                "or set hidden_projection: True"
            )
        self.boost = self.dwell_mode in ("boost", "both")
        self.time_list_field = config["TIME_FIELD"] + config["LIST_SUFFIX"]
        if self.dwell_mode != "none":
            _check_raw_time_field(config, dataset, self.time_list_field, self.dwell_mode)

        item_embedding = nn.Embedding(self.n_items, self.embedding_size, padding_idx=0)
        nn.init.xavier_normal_(item_embedding.weight)
        self.dwell_embedding = None
        if self.dwell_mode in ("feature", "both"):
            self.dwell_embedding = nn.Embedding(self.dwell_buckets + 2, self.embedding_size, padding_idx=PADDING_BUCKET)
            nn.init.xavier_normal_(self.dwell_embedding.weight)
        self.emb_dropout = nn.Dropout(self.dropout_prob)
        # one module per layer: the feature mode steps each layer from its own earlier states
        self.gru_layers = nn.ModuleList(
            nn.GRU(self.embedding_size if layer == 0 else self.hidden_size, self.hidden_size, bias=False,
                   batch_first=True)
            for layer in range(self.num_layers)
        )
        self.dense = nn.Linear(self.hidden_size, self.embedding_size) if hidden_projection else nn.Identity()
        self.build_output(config, dataset, self.embedding_size, item_embedding, weight_tying=True)

    def forward(self, interaction):
        lengths = interaction[self.ITEM_SEQ_LEN]
        width = interaction[self.ITEM_SEQ].size(1)
        states, first_copy, unknown_dwell_inputs = self._read(interaction)
        if unknown_dwell_inputs is None:
            hidden = _at(states[-1], first_copy) if first_copy is not None else states[-1]
        else:
            hidden = self._step_from(states, first_copy - 1, unknown_dwell_inputs)
        # the batch was cut to its longest row; positions past it are padding for the caller
        return F.pad(self.dense(hidden), (0, 0, 0, width - int(lengths.max())))

    def last_hidden(self, interaction):
        # The last input's dwell is unknown, so the GRU already read it with the "unknown" bucket
        # and unboosted: its state needs no extra step (forward's last position gives the same).
        states, first_copy, _ = self._read(interaction)
        last = interaction[self.ITEM_SEQ_LEN] - 1
        if first_copy is not None:
            last = first_copy.gather(1, last.unsqueeze(1)).squeeze(1)
        return self.dense(states[-1][torch.arange(last.size(0), device=last.device), last])

    def _read(self, interaction):
        """Run the GRU over the batch (cut to its longest row) with every known dwell.

        Returns the states of every layer ``[B, T, H]``, the index in T of each input's first copy
        (None when the sequence is not expanded and no prediction step follows) and, in feature
        mode, the inputs ``[B, L, E]`` with the dwell unknown that each position's own prediction
        step reads.
        """
        lengths = interaction[self.ITEM_SEQ_LEN]
        used = int(lengths.max())
        items = interaction[self.ITEM_SEQ][:, :used]
        inputs = self.item_embedding(items)
        unknown_dwell_inputs = first_copy = None
        if self.dwell_mode != "none":
            dwell = dwell_seconds(interaction[self.time_list_field][:, :used], lengths)
            if self.dwell_embedding is not None:
                unknown = self.dwell_embedding.weight[UNKNOWN_BUCKET]
                unknown_dwell_inputs = self.emb_dropout(inputs + unknown)
                inputs = inputs + self.dwell_embedding(dwell_buckets(dwell, lengths, self.dwell_buckets))
        inputs = self.emb_dropout(inputs)
        if self.boost and (self.training or self.dwell_boost_eval):
            repeats = boost_repeats(dwell, lengths, self.dwell_threshold, self.dwell_max_repeat)
            inputs, first_copy = expand(inputs, repeats)
        elif unknown_dwell_inputs is not None:
            first_copy = torch.arange(used, device=items.device).expand(items.size(0), used)
        states = []
        for gru in self.gru_layers:
            inputs, _ = gru(inputs)
            states.append(inputs)
        return states, first_copy, unknown_dwell_inputs

    def _step_from(self, states, previous, inputs):
        """One GRU step for every position k at once: from the states at ``previous[:, k]`` of each
        layer (−1: the zero initial state) on ``inputs[:, k]``; returns the top layer ``[B, L, H]``."""
        batch, length, _ = inputs.shape
        step_inputs = inputs.reshape(batch * length, 1, -1)
        for gru, layer_states in zip(self.gru_layers, states):
            start = _at(F.pad(layer_states, (0, 0, 1, 0)), previous + 1)
            step_inputs, _ = gru(step_inputs, start.reshape(1, batch * length, -1).contiguous())
        return step_inputs.reshape(batch, length, -1)


    # ------------------------------------------------------------ train_mode: session
    def session_step_fields(self):
        return (self.time_list_field,)

    def session_step(self, step, state, start):
        """State carried: (layer states ``[num_layers, B, H]``, previous input item, its time).

        Without the dwell embedding the carried layer states are those of the last prediction step
        (they read the previous item's first copy); with it they are the committed states (items
        with known dwells), and the prediction step's unknown-dwell input is not carried on.
        """
        items = step[self.ITEM_SEQ]
        if state is None:
            layers = items.new_zeros((self.num_layers, items.size(0), self.hidden_size), dtype=torch.float)
            previous_items, previous_times = torch.zeros_like(items), None
        else:
            layers, previous_items, previous_times = state
            layers = zero_rows(layers, start)
        times = step.get(self.time_list_field) if self.dwell_mode != "none" else None
        if times is not None and previous_times is not None:
            # the previous item's dwell: known now that this item was clicked; unknown at a sequence start
            dwell = (times - previous_times).masked_fill(start, float("nan")).unsqueeze(1)
            one = torch.ones_like(items)
            commit = self.item_embedding(previous_items)
            if self.dwell_embedding is not None:
                commit = commit + self.dwell_embedding(dwell_buckets(dwell, one, self.dwell_buckets))[:, 0]
            copies = boost_repeats(dwell, one, self.dwell_threshold, self.dwell_max_repeat)[:, 0] if self.boost else one
            if self.dwell_embedding is None:
                copies = copies - 1  # the first copy was the previous prediction step's input
            copies = copies.masked_fill(start, 0)
            for copy in range(int(copies.max()) if copies.numel() else 0):
                stepped = self._gru_step(self.emb_dropout(commit), layers)
                layers = torch.where((copy < copies)[None, :, None], stepped, layers)
        predict = self.item_embedding(items)
        if self.dwell_embedding is not None:
            predict = predict + self.dwell_embedding.weight[UNKNOWN_BUCKET]
        predicted = self._gru_step(self.emb_dropout(predict), layers)
        carried = layers if self.dwell_embedding is not None else predicted
        return self.dense(predicted[-1]), (carried, items, times)

    def _gru_step(self, inputs, layers):
        """One GRU step of every layer on ``inputs`` ``[B, E]`` from ``layers`` ``[num_layers, B, H]``:
        the cell of each layer's weights, which spares a one-step ``nn.GRU`` call its sequence handling
        (forward and backward at 64 rows × 64 units on one CPU thread: 0.30 ms instead of 0.40 ms)."""
        stepped = []
        for gru, start in zip(self.gru_layers, layers):
            inputs = torch.gru_cell(inputs, start, gru.weight_ih_l0, gru.weight_hh_l0)
            stepped.append(inputs)
        return torch.stack(stepped)


def _at(sequence, index):
    """``sequence[b, index[b, k]]`` for every b, k."""
    return sequence.gather(1, index.unsqueeze(-1).expand(-1, -1, sequence.size(-1)))


def dwell_seconds(times, lengths):
    """``[B, L]`` dwell of each input item: the next input's time minus its own; NaN where unknown
    (the last input, whose next event is the target) and at padding."""
    dwell = torch.full_like(times, float("nan"))
    dwell[:, :-1] = times[:, 1:] - times[:, :-1]
    known = torch.arange(times.size(1), device=times.device)[None, :] < (lengths[:, None] - 1)
    return dwell.masked_fill(~known, float("nan"))


def dwell_buckets(dwell, lengths, n_buckets):
    """``[B, L]`` log₂ bucket of each input's dwell, ``2 + min(⌊log₂(1 + dwell)⌋, n_buckets − 1)``;
    UNKNOWN_BUCKET where the dwell is unknown, PADDING_BUCKET past the end."""
    bucket = torch.log2(1 + dwell.clamp(min=0).nan_to_num(0.0)).floor().long().clamp(max=n_buckets - 1) + 2
    bucket = bucket.masked_fill(torch.isnan(dwell), UNKNOWN_BUCKET)
    padding = torch.arange(dwell.size(1), device=dwell.device)[None, :] >= lengths[:, None]
    return bucket.masked_fill(padding, PADDING_BUCKET)


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
    expanded = _at(inputs, source) * real.unsqueeze(-1)
    first_copy = (ends - repeats).clamp(max=width - 1)
    return expanded, first_copy


def _positive_seconds(config, key):
    value = config[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ConfigError(f"{key}: {value!r} is not allowed; use a number of seconds > 0")
    return float(value)


def _check_raw_time_field(config, dataset, time_list_field, mode):
    time_field = config["TIME_FIELD"]
    if time_list_field not in dataset.field2type:
        raise ConfigError(
            f"dwell_mode: {mode!r} needs the time field {time_field!r}: add it to load_col "
            f"(load_col: {{inter: [..., {time_field}]}}) or set dwell_mode: none"
        )
    keys.require_raw_seconds(config, time_field, f"dwell_mode: {mode!r}")
    times = dataset.inter_feat[time_list_field]
    largest = float(times.abs().max()) if times.numel() else 0.0
    if largest >= FLOAT32_EXACT_SECONDS:
        resolution = 2.0 ** (math.floor(math.log2(largest)) - 23)
        logging.getLogger().warning(
            f"DwellGRU4Rec: {time_field!r} reaches {largest:.0f}; RecBole stores float fields as float32, "
            f"so dwell times are only exact to ~{resolution:.0f} s. Write times relative to the start "
            "of the log (recbole_ext.data.convert does) for 1 s resolution."
        )
