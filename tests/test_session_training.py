"""train_mode: session — GRU4Rec's session-parallel rows: every target once, in the official order,
states reset exactly where a row's sequence changes and equal to whole-sequence states, no target
time read, RecBole's trainer in use."""

import math

import pytest
import torch
from recbole.config import Config
from recbole.data import create_dataset, data_preparation
from recbole.data.dataloader.abstract_dataloader import AbstractDataLoader
from recbole.data.interaction import Interaction
from recbole.trainer import Trainer

import recbole_ext
from recbole_ext.data.sequence import SESSION_BLOCK_FIELD, SESSION_RESET_FIELD, sliced_batches, keeps_on_device
from recbole_ext.model.dwellgru4rec import DwellGRU4Rec
from recbole_ext.model.rnn import sparse_item_gradients
from recbole_ext.model.rnncce import RNNCCE
from tests.conftest import quick_test
from tests.session_data import session_dataset

ROWS = 8
SMALL = {"embedding_size": 8, "hidden_size": 8, "dropout_prob": 0.0, "train_batch_size": ROWS}
ITEMS, TIMES, TARGETS = "item_id_list", "timestamp_list", "target_item_id_list"


@pytest.fixture(scope="module")
def sessions(tmp_path_factory):
    return session_dataset(tmp_path_factory.mktemp("sessions"), n_sessions=120)


@pytest.fixture
def session_config(sessions, tmp_path):
    return {**sessions, **SMALL, "epochs": 1, "show_progress": False, "state": "ERROR",
            "checkpoint_dir": str(tmp_path / "saved"), "metrics": ["Recall", "MRR"], "topk": [20],
            "valid_metric": "MRR@20"}


def build(model_class, config_dict, **settings):
    config = Config(model=model_class.__name__, dataset=config_dict["dataset"],
                    config_dict={**config_dict, **SMALL, "train_mode": "session", **settings})
    train = data_preparation(config, create_dataset(config))[0]
    torch.manual_seed(0)
    return model_class(config, train._dataset), train, config


def row_sessions(steps):
    """The sessions the step tensors hold, as (first step, row, inputs, input times, targets), from
    the reset flags alone."""
    items, times, targets, reset = (steps[f].flatten(0, 1) for f in (ITEMS, TIMES, TARGETS, SESSION_RESET_FIELD))
    found = []
    for row in range(items.size(1)):
        for step in range(items.size(0)):
            if reset[step, row]:
                found.append([step, row, [], [], []])
            if targets[step, row] > 0:
                session = found[-1]
                assert session[1] == row
                session[2].append(int(items[step, row]))
                session[3].append(float(times[step, row]))
                session[4].append(int(targets[step, row]))
    return sorted([s for s in found if s[4]], key=lambda s: (s[0], s[1]))


def training_sequences(config_dict):
    """{session: (items, times)} of each training sequence, from RecBole's own prefix samples: the
    first sample's items, then every sample's target."""
    config = Config(model="RNNCCE", dataset=config_dict["dataset"], config_dict={**config_dict, "train_mode": "prefix"})
    inter = data_preparation(config, create_dataset(config))[0]._dataset.inter_feat
    sequences = {}
    for row in range(len(inter)):
        user = int(inter["session_id"][row])
        if user not in sequences:
            head = int(inter["item_length"][row])
            sequences[user] = (inter[ITEMS][row, :head].tolist(), inter[TIMES][row, :head].tolist())
        sequences[user][0].append(int(inter["item_id"][row]))
        sequences[user][1].append(float(inter["timestamp"][row]))
    return sequences


def test_every_target_once_in_the_official_order_with_resets_only_at_session_changes(session_config):
    _, train, _ = build(RNNCCE, session_config, session_steps=3)
    steps = train._dataset.inter_feat
    assert steps[ITEMS].shape[1:] == (3, ROWS)
    assert steps[SESSION_BLOCK_FIELD].tolist() == list(range(len(steps)))
    found = row_sessions(steps)
    expected = training_sequences(session_config)
    assert len(found) == len(expected) == 120
    # each session whole (inputs then its last item as the final target), each once
    found_sequences = sorted(tuple(s[2] + s[4][-1:]) for s in found)
    assert found_sequences == sorted(tuple(items) for items, _ in expected.values())
    for _, _, inputs, _, targets in found:
        assert targets == inputs[1:] + targets[-1:]
    # taken in order of their first event's time (the official session_order='time'), with times
    # of the inputs only
    first_times = [s[3][0] for s in found]
    assert first_times == sorted(first_times)
    assert sorted(tuple(s[3]) for s in found) == sorted(tuple(times[:-1]) for _, times in expected.values())
    # the first ROWS sessions start at step 0, one per row
    assert [(s[0], s[1]) for s in found[:ROWS]] == [(0, row) for row in range(ROWS)]
    # resets: exactly the steps where a session starts (idle rows at the end count as fresh)
    reset = steps[SESSION_RESET_FIELD].flatten(0, 1)
    targets = steps[TARGETS].flatten(0, 1)
    assert int((reset & (targets > 0)).sum()) == len(found)


def test_the_blocks_of_an_epoch_come_in_order_even_with_shuffle_on(session_config):
    _, train, _ = build(RNNCCE, session_config, shuffle=True, session_steps=2)
    assert [int(batch[SESSION_BLOCK_FIELD][0]) for batch in train] == list(range(len(train._dataset)))


def whole_sequence_states(model, inputs, times):
    """forward's states over each session read as one whole sequence, [n_sessions, L, D]."""
    width = max(len(i) for i in inputs)
    pad = lambda rows, dtype: torch.tensor([r + [0] * (width - len(r)) for r in rows], dtype=dtype)  # noqa: E731
    batch = Interaction({ITEMS: pad(inputs, torch.long), TIMES: pad(times, torch.float),
                         "item_length": torch.tensor([len(i) for i in inputs])})
    return model.forward(batch)


def session_states(model, steps):
    """session_step over every block in order; the hidden states [steps, rows, D]."""
    state, hidden = None, []
    for block in range(len(steps)):
        for k in range(steps[ITEMS].size(1)):
            step = {ITEMS: steps[ITEMS][block, k], TIMES: steps[TIMES][block, k]}
            output, state = model.session_step(step, state, steps[SESSION_RESET_FIELD][block, k])
            hidden.append(output)
    return torch.stack(hidden)


@pytest.mark.parametrize(("model_class", "settings"), [
    (RNNCCE, {"rnn_type": "GRU"}),
    (RNNCCE, {"rnn_type": "LSTM", "num_layers": 2}),
    (DwellGRU4Rec, {"dwell_mode": "none", "num_layers": 2}),
    (DwellGRU4Rec, {"dwell_mode": "boost", "dwell_threshold": 20.0}),
    (DwellGRU4Rec, {"dwell_mode": "feature"}),
    (DwellGRU4Rec, {"dwell_mode": "both", "dwell_threshold": 20.0, "num_layers": 2}),
])
def test_each_step_gives_the_state_of_the_whole_sequence_at_that_position(session_config, model_class, settings):
    model, train, _ = build(model_class, session_config, session_steps=4, **settings)
    model.train()  # boosting applies in training; dropout is 0
    steps = train._dataset.inter_feat
    found = row_sessions(steps)
    with torch.no_grad():
        stepped = session_states(model, steps)
        whole = whole_sequence_states(model, [s[2] for s in found], [s[3] for s in found])
    for index, (first_step, row, inputs, _, _) in enumerate(found):
        torch.testing.assert_close(stepped[first_step : first_step + len(inputs), row], whole[index, : len(inputs)])
    if settings.get("dwell_mode") in ("boost", "both"):
        # the threshold boosts some items, so the comparison covered repeated copies
        dwell = torch.tensor([b - a for s in found for a, b in zip(s[3], s[3][1:])])
        assert int((dwell >= 20.0).sum()) > 10


@pytest.mark.parametrize("dwell_mode", ["boost", "feature", "both"])
def test_a_step_never_reads_its_targets_time(session_config, dwell_mode):
    """Changing the time of step j's input (the time of step j−1's target) changes nothing before
    step j, and changes step j where the row's session goes on (its previous item's dwell)."""
    model, train, _ = build(DwellGRU4Rec, session_config, session_steps=1, dwell_mode=dwell_mode,
                            dwell_threshold=20.0)
    model.train()
    steps = train._dataset.inter_feat
    j = 5
    later = Interaction({field: steps[field].clone() for field in steps.columns})
    later[TIMES][j] += 1000.0
    with torch.no_grad():
        before, after = session_states(model, steps), session_states(model, later)
    torch.testing.assert_close(before[:j], after[:j])
    goes_on = ~steps[SESSION_RESET_FIELD][j, 0]
    assert goes_on.any()
    assert not torch.allclose(before[j][goes_on], after[j][goes_on])
    torch.testing.assert_close(before[j][~goes_on], after[j][~goes_on])


@pytest.mark.parametrize("model", ["RNNCCE", "DwellGRU4Rec"])
def test_one_epoch_trains_through_run_recbole(session_config, model):
    result = quick_test(session_config, model=model, train_mode="session", loss_type="XE-sampled",
                        n_sample=16, session_steps=2)
    assert math.isfinite(result["best_valid_score"]) and result["best_valid_score"] > 0
    assert set(result["test_result"]) == {"recall@20", "mrr@20"}


def test_training_carries_the_state_between_batches_and_resets_it_each_epoch(session_config):
    model, train, _ = build(RNNCCE, session_config, session_steps=2, rnn_type="GRU")
    batches = list(train)
    model.calculate_loss(batches[0])
    carried = model._session_state
    model.calculate_loss(batches[1])
    assert model._session_state is not carried and not model._session_state.requires_grad
    with pytest.raises(recbole_ext.ConfigError, match=r"train_mode: 'session' got block 3 after block 1: "):
        model.calculate_loss(batches[3])
    first = model.calculate_loss(batches[0])  # a new epoch starts from zero states again
    model._session_state = None
    torch.testing.assert_close(model.calculate_loss(batches[0]), first)


def test_a_batch_loss_is_per_row_of_the_batch_so_the_last_sessions_do_not_take_bigger_steps(session_config):
    model, train, _ = build(DwellGRU4Rec, session_config, dwell_mode="none", loss_type="CE")
    last = list(train)[-1]
    targets, reset = last[TARGETS][0, 0], last[SESSION_RESET_FIELD][0, 0]
    real = targets > 0
    assert 0 < int(real.sum()) < ROWS  # the epoch's last step: some rows have no session left
    model._next_session_block = int(last[SESSION_BLOCK_FIELD][0])
    loss = model.calculate_loss(last)
    hidden, _ = model.session_step({ITEMS: last[ITEMS][0, 0]}, None, reset)
    per_row = torch.nn.functional.cross_entropy(hidden @ model.output_weight.t() + model.output_bias, targets,
                                                reduction="none")
    torch.testing.assert_close(loss, per_row[real].sum() / ROWS)


@pytest.mark.parametrize(("settings", "sparse"), [
    ({"loss_type": "XE-sampled", "learner": "adagrad"}, True),
    ({"loss_type": "BPR-max", "learner": "SGD"}, True),
    ({"loss_type": "XE-sampled", "learner": "adam"}, False),  # Adam's moments move every row
    ({"loss_type": "CE", "learner": "adagrad"}, False),  # the full softmax touches every row anyway
    ({"loss_type": "TOP1-max", "learner": "adagrad", "weight_decay": 0.1}, False),
    ({"loss_type": "TOP1-max", "learner": "adagrad", "clip_grad_norm": {"max_norm": 5}}, False),
])
def test_item_rows_get_sparse_gradients_only_where_the_update_is_the_same(settings, sparse):
    assert sparse_item_gradients({"weight_decay": 0.0, "clip_grad_norm": None, **settings}) is sparse


def test_sparse_item_gradients_give_recbole_s_adagrad_the_same_updates(session_config):
    trained = []
    for sparse in (True, False):
        model, train, config = build(DwellGRU4Rec, session_config, dwell_mode="none", loss_type="XE-sampled",
                                     n_sample=4, learner="adagrad", learning_rate=0.05)
        assert model.sparse_item_grad
        assert ROWS + 4 < model.n_items  # fewer columns than items: the sampled rows alone are scored
        if not sparse:
            model.sparse_item_grad = model.item_embedding.sparse = False
        optimizer = Trainer(config, model).optimizer
        torch.manual_seed(1)  # the same negatives for both
        for batch in list(train)[:3]:
            optimizer.zero_grad()
            model.calculate_loss(batch).backward()
            assert model.item_embedding.weight.grad.is_sparse is sparse
            optimizer.step()
        trained.append({name: p.detach().clone() for name, p in model.named_parameters()})
    sparse_trained, dense_trained = trained
    assert sparse_trained.keys() == dense_trained.keys()
    for name, values in sparse_trained.items():
        torch.testing.assert_close(values, dense_trained[name])
    initial = build(DwellGRU4Rec, session_config)[0].item_embedding.weight
    assert not torch.equal(sparse_trained["item_embedding.weight"], initial)  # the steps did move the rows


@pytest.mark.parametrize(("key", "mode"), [("item_drop_prob", "sequence"), ("shuffle_prob", "prefix")])
def test_rnncce_noise_is_refused_in_session_mode(session_config, key, mode):
    config = Config(model="RNNCCE", dataset=session_config["dataset"],
                    config_dict={**session_config, "train_mode": "session", key: 0.5})
    dataset = create_dataset(config)
    train = data_preparation(config, dataset)[0]._dataset
    with pytest.raises(recbole_ext.ConfigError,
                       match=rf"^{key}: 0.5 is not available with train_mode: session, which reads one item per "
                             rf"step: set {key}: 0 or train_mode: {mode}$"):
        RNNCCE(config, train)


# ---------------------------------------------------------------- batches as slices of built tensors


def test_sequence_batches_are_slices_of_a_shuffled_order_serving_each_window_once(session_config):
    config = Config(model="RNNCCE", dataset=session_config["dataset"],
                    config_dict={**session_config, "train_mode": "sequence", "train_batch_size": 40})
    train = data_preparation(config, create_dataset(config))[0]
    windows = train._dataset.inter_feat
    assert train._sliced_source is not None
    epochs = [list(train) for _ in range(2)]
    for batches in epochs:
        assert len(batches) == len(train) == math.ceil(len(windows) / train.step)
        served = torch.cat([batch[TARGETS] for batch in batches])
        assert sorted(map(tuple, served.tolist())) == sorted(map(tuple, windows[TARGETS].tolist()))
    first, second = (torch.cat([b[TARGETS] for b in batches]) for batches in epochs)
    assert not torch.equal(first, windows[TARGETS]) and not torch.equal(first, second)  # shuffled anew
    # the very batches RecBole's own loader gives from the same generator state
    state = train.generator.get_state()
    ours = list(train)
    train.generator.set_state(state)
    recbole = list(AbstractDataLoader.__iter__(train))
    assert [b[TARGETS].tolist() for b in ours] == [b[TARGETS].tolist() for b in recbole]


def test_a_split_too_big_for_the_gpu_stays_in_host_memory():
    gpu, cpu = torch.device("cuda", 0), torch.device("cpu")
    assert keeps_on_device(4 * 2**30, gpu, free_bytes=8 * 2**30)  # half of what is free: moved once
    assert not keeps_on_device(4 * 2**30 + 1, gpu, free_bytes=8 * 2**30)  # more: pinned, copied per batch
    assert keeps_on_device(10**15, cpu, free_bytes=None)  # host memory is the CPU's own


def test_batches_copied_per_batch_are_the_batches_sliced_on_the_device(session_config):
    config = Config(model="RNNCCE", dataset=session_config["dataset"],
                    config_dict={**session_config, "train_mode": "sequence", "train_batch_size": 40})
    train = data_preparation(config, create_dataset(config))[0]
    state = train.generator.get_state()
    resident = list(sliced_batches(train._sliced_source, train.step, True, train.generator))
    train.generator.set_state(state)
    copied = list(sliced_batches(train._sliced_source, train.step, True, train.generator, batch_device=torch.device("cpu")))
    assert len(copied) == len(resident) > 1
    assert all(torch.equal(a[TARGETS], b[TARGETS]) for a, b in zip(copied, resident))


def test_prefix_batches_are_gathered_from_the_lean_samples(session_config):
    config = Config(model="RNNCCE", dataset=session_config["dataset"],
                    config_dict={**session_config, "train_mode": "prefix"})
    train = data_preparation(config, create_dataset(config))[0]
    assert train._sliced_source is train._dataset  # batches gathered per slice (equal to RecBole's: test_lean.py)
    assert sum(len(batch) for batch in train) == len(train._dataset)


def test_more_rows_than_sessions_warns_with_the_idle_share(session_config, recwarn):
    from recbole_ext.model.rnn import IdleRowsWarning

    sessions = len(training_sequences(session_config))
    with pytest.warns(IdleRowsWarning) as warned:
        model, train, _ = build(RNNCCE, session_config, train_batch_size=200)
    (message,) = [str(w.message) for w in warned if w.category is IdleRowsWarning]
    items = train._dataset.inter_feat[ITEMS]
    idle = 1 - int((items > 0).sum()) / items.numel()
    assert message == (
        f"train_mode: session with train_batch_size 200: the training split has {sessions} sessions, so "
        f"{200 - sessions} of the 200 rows never hold one, yet every step computes them all ({idle:.1%} of each "
        f"epoch's row steps are idle); train_batch_size: {sessions} or less trains on the same targets in a "
        "fraction of the time")
    recwarn.clear()
    build(RNNCCE, session_config, train_batch_size=sessions)
    assert not [w for w in recwarn if w.category is IdleRowsWarning]
