"""What the plugin RNN models share: an output layer over all items (optionally tied to the item
embedding), a loss chosen by name, the training modes, and the defaults of all of that in
``recbole_ext/properties/rnn.yaml`` (read before each model's own YAML).

A subclass builds its layers and implements :meth:`RNNRecommender.forward`, which returns one
hidden state per input position in the output space, ``[B, L, D]``: the state at position k has read
input items 0..k and predicts the item after position k. Everything else — ``calculate_loss`` in
``prefix`` and ``sequence`` mode, ``predict``, ``full_sort_predict`` — is here, so the training
logits and the evaluation scores are the same function.

A subclass that also implements :meth:`RNNRecommender.session_step` (one step of every row, from a
carried state) adds ``session`` to its ``train_modes``: GRU4Rec's session-parallel mini-batches
(:meth:`recbole_ext.data.sequence.SequenceDataset._session_steps`).
"""

import warnings
from pathlib import Path

import torch
from recbole.model.abstract_recommender import SequentialRecommender
from recbole.utils import InputType
from torch import nn

from recbole_ext import distributed, keys, settings
from recbole_ext.data.sequence import (
    DATASET_OF_TRAIN_MODE,
    SESSION_BLOCK_FIELD,
    SESSION_RESET_FIELD,
    target_list_field,
)
from recbole_ext.errors import ConfigError, RecBoleExtWarning
from recbole_ext.model.loss import LOSSES, SAMPLED_LOSSES, build_loss


class IdleRowsWarning(RecBoleExtWarning):
    """``train_mode: session`` with more rows (``train_batch_size``) than training sessions."""


def warn_idle_session_rows(config, dataset, item_list_field):
    """Warn when ``train_batch_size`` rows outnumber the training sessions of ``train_mode: session``.

    Each row follows one session at a time, so the rows beyond the number of sessions never hold one,
    yet every step computes all of them, for as many steps as the longest session: with the tests'
    60-session ml-100k slice and ``train_batch_size: 4096``, 99.8% of an epoch's row steps are idle
    (issue 24 reported an epoch ~1500x slower than with a batch that fits).
    """
    inter = getattr(dataset, "inter_feat", None)
    if inter is None or SESSION_RESET_FIELD not in inter or item_list_field not in inter:
        return
    items, resets = inter[item_list_field], inter[SESSION_RESET_FIELD]
    rows = int(items.shape[-1])
    sessions = int((resets & (items > 0)).sum())  # a session's first step resets its row
    if rows <= sessions:
        return
    busy = int((items > 0).sum())
    warnings.warn(
        f"train_mode: session with train_batch_size {rows}: the training split has {sessions} sessions, so "
        f"{rows - sessions} of the {rows} rows never hold one, yet every step computes them all "
        f"({1 - busy / max(items.numel(), 1):.1%} of each epoch's row steps are idle); "
        f"train_batch_size: {sessions} or less trains on the same targets in a fraction of the time",
        IdleRowsWarning, stacklevel=3,
    )


class RNNRecommender(SequentialRecommender):
    input_type = InputType.POINTWISE
    base_properties = Path(__file__).resolve().parent.parent / "properties" / "rnn.yaml"
    # The contract of recbole_ext.registry: what a subclass supports unless it narrows these.
    train_modes = ("sequence", "prefix")  # a subclass with session_step adds "session"
    loss_types = tuple(LOSSES)

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.train_mode = settings.of(config).train_mode  # checked against train_modes there
        keys.choice(config, "loss_type", type(self).loss_types)
        needed = DATASET_OF_TRAIN_MODE.get(self.train_mode)
        if needed is not None and not isinstance(dataset, needed):
            # RecBole would hand a prefix dataset over and the model would silently train on prefixes
            raise ConfigError(
                f"train_mode: {self.train_mode!r} needs the dataset class {needed.__name__}, but "
                f"{type(self).__name__} got {type(dataset).__name__}: register the model with "
                "recbole_ext.register_model, which sets the dataset class its train_modes need"
            )
        self.target_list_field = target_list_field(config)
        self._session_state, self._next_session_block = None, 0
        if self.train_mode == "session":
            warn_idle_session_rows(config, dataset, self.ITEM_SEQ)

    def build_output(self, config, dataset, hidden_dim, item_embedding, weight_tying):
        """Create the output layer and the loss; call at the end of a subclass's ``__init__``.

        With ``weight_tying`` the output matrix is ``item_embedding.weight`` itself and ``hidden_dim``
        must equal the embedding size (a subclass projects first); otherwise it is its own matrix.
        """
        embedding_size = item_embedding.embedding_dim
        if weight_tying and hidden_dim != embedding_size:
            raise ConfigError(
                f"weight_tying: the output reads hidden states of size {hidden_dim} but the item embedding "
                f"has size {embedding_size}; {type(self).__name__} must project its hidden states to "
                "embedding_size before build_output, or set weight_tying: False"
            )
        self.item_embedding = item_embedding
        self.output_is_item_embedding = weight_tying
        self.sparse_item_grad = sparse_item_gradients(config)
        item_embedding.sparse = self.sparse_item_grad
        if self.sparse_item_grad:
            # torch's default (no invariant checks on the optimizer's sparse tensors), said explicitly:
            # left implicit, torch warns about it at the first step
            torch.sparse.check_sparse_tensor_invariants.disable()
        if not weight_tying:
            self.output_matrix = nn.Parameter(torch.empty(self.n_items, hidden_dim))
            nn.init.xavier_normal_(self.output_matrix)
        self.output_bias = nn.Parameter(torch.zeros(self.n_items))
        self.loss = build_loss(config, self, dataset)

    @property
    def output_weight(self):
        return self.item_embedding.weight if self.output_is_item_embedding else self.output_matrix

    def item_scores(self, hidden):
        """Every item's score ``h·Wᵀ + b`` ``[N, n_items]`` for hidden states ``[N, D]``: training's
        full-softmax logits and evaluation's scores alike, in one fused product (the sum as a second
        [N, n_items] tensor would double an evaluation batch's memory)."""
        return torch.addmm(self.output_bias, hidden, self.output_weight.t())

    def forward(self, interaction):
        """Hidden states ``[B, L, D]`` for every input position (see the module docstring)."""
        raise NotImplementedError

    def last_hidden(self, interaction):
        hidden = self.forward(interaction)
        last = interaction[self.ITEM_SEQ_LEN] - 1
        return hidden[torch.arange(hidden.size(0), device=hidden.device), last]

    def calculate_loss(self, interaction):
        # in a distributed run, scaled by this rank's share of the batch's targets (recbole_ext.distributed)
        return distributed.scaled_loss(self._batch_loss(interaction), interaction)

    def _batch_loss(self, interaction):
        if self.train_mode == "session":
            return self._session_loss(interaction)
        if self.train_mode == "sequence":
            hidden = self.forward(interaction)
            targets = interaction[self.target_list_field]
            # the window's length, not the stored values, says what is padding: whatever a padded
            # position holds as input or target never reaches the loss
            positions = torch.arange(targets.size(1), device=targets.device)
            real = positions[None, :] < interaction[self.ITEM_SEQ_LEN][:, None]
            return self.loss(self, hidden[real], targets[real])
        return self.loss(self, self.last_hidden(interaction), interaction[self.ITEM_ID])

    def predict(self, interaction):
        hidden = self.last_hidden(interaction)
        items = interaction[self.ITEM_ID]
        return (hidden * self.output_weight[items]).sum(-1) + self.output_bias[items]

    def full_sort_predict(self, interaction):
        if self.target_list_field in interaction:
            # a held-out session served whole (eval_protocol: session_split): a row per position
            return self.full_sort_predict_sequence(interaction)
        return self.item_scores(self.last_hidden(interaction))

    # --- held-out sessions in one pass (recbole_ext.protocols, eval_protocol: session_split) ---
    def full_sort_predict_sequence(self, interaction):
        """Scores over all items ``[T, n_items]`` for every real position of every window (row by
        row, position by position): the whole held-out session is read once, O(L), instead of once
        per prefix. Position k's scores are those ``full_sort_predict`` gives the prefix ending at
        input k, since the hidden state at k has read items 0..k only."""
        hidden = self.forward(interaction)
        positions = torch.arange(hidden.size(1), device=hidden.device)
        real = positions[None, :] < interaction[self.ITEM_SEQ_LEN][:, None]
        return self.item_scores(hidden[real])
    # --- end held-out sessions ---

    # ------------------------------------------------------------ train_mode: session
    def session_step(self, step, state, start):
        """One session-parallel step of every row, for ``train_mode: session``.

        ``step`` maps the item list field (and each field of :meth:`session_step_fields` the data
        holds) to the rows' values at this step, ``[B]``: input item ids, input times; ``start`` ``[B]`` is True for rows whose sequence
        begins at this step: their state must start from zero; ``state`` is what the previous step
        returned (None at the start of an epoch). Returns the hidden states ``[B, D]`` that predict
        the rows' next items, as ``forward`` would at the same position of the whole sequence, and
        the state to carry to the next step.
        """
        raise NotImplementedError(f"{type(self).__name__} declares train_mode 'session' but has no session_step")

    def _session_loss(self, interaction):
        # a training batch is one block of consecutive steps, [1, steps, rows] per field
        block = int(interaction[SESSION_BLOCK_FIELD][0])
        if block == 0:
            self._session_state = None  # a new epoch: every row starts from a zero state
        elif block != self._next_session_block:
            raise ConfigError(
                f"train_mode: 'session' got block {block} after block {self._next_session_block - 1}: the "
                "training batches must come in order, one block per batch (RecBole's TrainDataLoader)"
            )
        fields = [self.ITEM_SEQ] + [f for f in self.session_step_fields() if f in interaction]
        resets = interaction[SESSION_RESET_FIELD][0]
        state, hidden = self._session_state, []
        for k in range(resets.size(0)):
            step_hidden, state = self.session_step({f: interaction[f][0, k] for f in fields}, state, resets[k])
            hidden.append(step_hidden)
        # truncated back-propagation: the next batch starts from these states as constants
        self._session_state, self._next_session_block = _detached(state), block + 1
        targets = interaction[self.target_list_field][0]
        real = targets > 0  # rows idle at the end of an epoch have target 0
        # per row of the batch, as the official code divides by the batch size: the mean over the
        # real rows would give the last few sessions of an epoch, alone in their batches, steps many
        # times as large, and they are the last steps before each evaluation
        share = real.sum() / real.numel()
        if not real.any():
            # every row idle: a rank of a distributed run whose sessions all ended (a loss of zero that
            # still reaches every parameter it would have)
            return torch.stack(hidden).sum() * 0.0
        return self.loss(self, torch.stack(hidden)[real], targets[real]) * share

    def session_step_fields(self):
        """Fields besides the item list that :meth:`session_step` reads (e.g. the time list)."""
        return ()


def sparse_item_gradients(config):
    """Whether the item rows (input embedding, output matrix) get sparse gradients: with a sampled
    loss a batch touches a few thousand rows, and Adagrad and plain SGD (RecBole's ``sgd`` has no
    momentum) leave a row without gradient as it is, so a sparse gradient gives the very same update
    at a cost that does not grow with the catalogue (the official GRU4Rec's sparse embeddings). Adam's
    moments move every row, weight decay touches every row, and RecBole's gradient clipping reads
    dense norms: those keep dense gradients. So does a distributed run: RecBole's trainer adds every
    parameter times zero to the loss so that DDP reduces them all, which makes the item gradients
    dense, and DDP refuses a dense gradient for a sparse embedding."""
    return (
        config["loss_type"] in SAMPLED_LOSSES
        and str(config["learner"]).lower() in ("adagrad", "sgd")
        and not config["weight_decay"]
        and not config["clip_grad_norm"]
        and ("single_spec" not in config or config["single_spec"])
    )


def zero_rows(state, start):
    """``state`` (a tensor ``[layers, B, H]`` or a tuple of them, as torch's RNNs give) with the rows
    where ``start`` ``[B]`` is True set to zero."""
    if isinstance(state, tuple):
        return tuple(zero_rows(part, start) for part in state)
    return state.masked_fill(start[None, :, None], 0)


def _detached(state):
    if isinstance(state, tuple):
        return tuple(_detached(part) for part in state)
    return state.detach() if isinstance(state, torch.Tensor) else state
