"""Distributed training on the CPU: RecBole's DDP for every plugin model, train mode and loss with the
``gloo`` backend — as two nodes of one process each (``world_size`` 2, ``nproc`` 1, ``group_offset``
0 and 1) and through RecBole's ``run(..., nproc=2)`` —, each rank a disjoint part of every epoch, the
first update of 2 ranks equal to one process's on their batch, evaluation gathered to one process's
metrics; and Ray Tune searches on a two-node Ray cluster that lose a node and still finish every
trial, the retried one continuing from its checkpoint.

No GPU here: the ``nccl`` path is checked only as far as it refuses (no CUDA, too few GPUs); the
ranks of a run are processes of this machine talking over the loopback interface."""

import csv
import itertools
import json
import os
import socket
from pathlib import Path

import pytest
import torch
from ray import tune
from recbole.config import Config

import recbole_ext
from recbole_ext import distributed, hyper
from recbole_ext.data.sequence import SESSION_BLOCK_FIELD
from recbole_ext.errors import ConfigError, DatasetNotFoundError
from recbole_ext.training import prepared_run
from tests.conftest import write_ml_slice

REPO = Path(__file__).resolve().parent.parent
SMALL = {"embedding_size": 8, "hidden_size": 8, "MAX_ITEM_LIST_LENGTH": 10, "n_sample": 64, "sample_cache_size": 4096}
RATING_MODELS = ("RatingMF", "RatingNNMF", "RatingMLP")
# float32 sums over a batch taken in another order (two halves, then DDP's average)
UPDATE_ATOL = 1e-6


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tiny(data_path, model, **overrides):
    config = {"dataset": "ml-tiny", "data_path": data_path, "epochs": 1, "train_batch_size": 64,
              "eval_batch_size": 128, "show_progress": False, "seed": 2020, "state": "ERROR",
              "load_col": {"inter": ["user_id", "item_id", "rating", "timestamp"]}, **overrides}
    return config if model in RATING_MODELS else {**SMALL, **config}


def ranked(config, rank, port, world_size=2):
    """``config`` for the process of rank ``rank`` in a run of ``world_size`` processes on this machine,
    each as one node of RecBole's multi-machine run (``run(..., nproc=1, world_size=2, ip, port,
    group_offset=rank)`` on each node): ``nproc`` 1, ``local_rank`` 0, ``offset`` the rank."""
    return {**config, "local_rank": 0, "nproc": 1, "world_size": world_size, "offset": rank,
            "ip": "127.0.0.1", "port": port}


# ---------------------------------------------------------------- sharding, as plain functions


def test_each_rank_takes_a_contiguous_part_of_every_batch_and_a_small_last_batch_joins_the_one_before():
    assert [distributed.shard(10, rank, 3) for rank in range(3)] == [(0, 4), (4, 7), (7, 10)]
    assert [distributed.shard(1, rank, 2) for rank in range(2)] == [(0, 1), (1, 1)]
    assert distributed.global_batches(10, 4, 2) == [(0, 4), (4, 8), (8, 10)]
    assert distributed.global_batches(9, 4, 2) == [(0, 4), (4, 9)]  # a last batch of 1 cannot feed 2 ranks
    assert distributed.global_batches(5, 1, 2) == [(0, 2), (2, 5)]  # a batch feeds every rank at least one
    with pytest.raises(ValueError, match="3 training samples cannot be shared by 4 ranks"):
        distributed.global_batches(3, 8, 4)


def test_backend_is_gloo_on_the_cpu_nccl_on_gpus_and_the_key_overrides_it():
    assert distributed.choose_backend(None, on_gpu=False) == "gloo"
    assert distributed.choose_backend(None, on_gpu=True) == "nccl"
    assert distributed.choose_backend("gloo", on_gpu=True) == "gloo"
    with pytest.raises(ConfigError, match="ddp_backend: 'nccl' needs a GPU per process"):
        distributed.choose_backend("nccl", on_gpu=False)
    with pytest.raises(ConfigError, match=r"ddp_backend: 'mpi' is not allowed; use one of \['gloo', 'nccl'\]"):
        distributed.choose_backend("mpi", on_gpu=False)


def test_a_distributed_config_is_refused_before_any_process_group_starts(tiny_data_path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    config = {**tiny(tiny_data_path, "RNNCCE"), "local_rank": 0, "nproc": 2, "world_size": 2, "offset": 0,
              "ip": "127.0.0.1", "port": free_port()}
    with pytest.raises(ConfigError, match="ddp_backend: 'nccl' needs a GPU per process"):
        Config(model="RNNCCE", dataset="ml-tiny", config_dict={**config, "ddp_backend": "nccl"})
    # the GPU path, as far as a machine without GPUs can follow it: one GPU id per process
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    with pytest.raises(ConfigError, match=r"nproc: 2 processes need 2 GPUs on this machine, but gpu_id is '0'"):
        Config(model="RNNCCE", dataset="ml-tiny", config_dict={**config, "gpu_id": "0"})
    assert not torch.distributed.is_initialized()


def _epoch_as_ranks(loader, world_size=2):
    """The batches each rank would train on, drawn from ``loader`` as its process would draw them."""
    seed = loader.config["seed"]
    parts = []
    for rank in range(world_size):
        loader.generator.manual_seed(seed)
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(distributed, "rank_and_world", lambda config, rank=rank: (rank, world_size))
            parts.append(list(distributed.train_batches(loader, getattr(loader, "_sliced_source", None), None)))
    loader.generator.manual_seed(seed)
    return parts


@pytest.mark.parametrize("model, mode", [("RNNCCE", "sequence"), ("RNNCCE", "prefix"), ("RatingMF", None)])
def test_the_ranks_batches_together_are_one_process_batches_in_its_order(tiny_data_path, model, mode):
    settings = {"train_mode": mode} if mode else {}
    config = tiny(tiny_data_path, model, train_batch_size=37, **settings)
    with prepared_run(model, "ml-tiny", None, config) as (_, _, (train, _, _)):
        assert train.shuffle
        train.generator.manual_seed(config["seed"])
        one_process = list(train)
        train.global_step = train.step  # what the hook keeps before RecBole divides it by the world size
        rank0, rank1 = _epoch_as_ranks(train)
    key = "item_id_list" if mode == "sequence" else "item_id"
    wholes = [batch[key] for batch in one_process]
    if len(wholes[-1]) < 2:  # a last batch too small for 2 ranks joins the one before
        wholes[-2:] = [torch.cat(wholes[-2:])]
    assert len(rank0) == len(rank1) == len(wholes)  # every rank the same number of steps
    for whole, first, second in zip(wholes, rank0, rank1):
        assert torch.equal(torch.cat([first[key], second[key]]), whole)  # disjoint, in one process's order
        assert abs(len(first) - len(second)) <= 1
        # each rank's loss share: its part of the batch's targets, times 2; they average to 1
        shares = [float(part[distributed.LOSS_SHARE_FIELD][0]) for part in (first, second)]
        assert sum(shares) == pytest.approx(2.0)
        if mode == "sequence":
            targets = [int((part["target_item_id_list"] > 0).sum()) for part in (first, second)]
            assert shares[0] / shares[1] == pytest.approx(targets[0] / targets[1])
        else:
            assert shares[0] / shares[1] == pytest.approx(len(first) / len(second))


def test_session_mode_gives_each_rank_its_own_rows_so_whole_sessions(tiny_data_path):
    config = tiny(tiny_data_path, "RNNCCE", train_mode="session", train_batch_size=9, session_steps=10)
    with prepared_run("RNNCCE", "ml-tiny", None, config) as (run_config, _, (train, _, _)):
        blocks = train._sliced_source
        parts = []
        for rank in range(2):
            with pytest.MonkeyPatch.context() as patch:
                patch.setitem(run_config.final_config_dict, "single_spec", False)
                patch.setattr(distributed, "rank_and_world", lambda config, rank=rank: (rank, 2))
                parts.append(distributed.shard_session_rows(blocks, run_config))
    for field in ("item_id_list", "target_item_id_list", "session_reset"):  # rows 0, 2, 4, … and 1, 3, …
        assert torch.equal(parts[0][field], blocks[field][:, :, 0::2])
        assert torch.equal(parts[1][field], blocks[field][:, :, 1::2])
    assert parts[0][field].shape[2] == 5 and parts[1][field].shape[2] == 4
    assert torch.equal(parts[0][SESSION_BLOCK_FIELD], blocks[SESSION_BLOCK_FIELD])  # every rank every block
    assert [float(p[distributed.LOSS_SHARE_FIELD][0]) for p in parts] == pytest.approx([10 / 9, 8 / 9])


# ---------------------------------------------------------------- two ranks on this machine

# (name, model, settings): every plugin model in every train mode it declares, with every loss
TRAIN_PLAN = [
    (f"{model}-{mode}-{loss}", model, {"train_mode": mode, "loss_type": loss})
    for model in ("RNNCCE", "DwellGRU4Rec")
    for mode in ("sequence", "prefix", "session")
    for loss in ("CE", "KL", "XE-sampled", "BPR-max", "TOP1-max")
] + [("RNNCCE-sequence-XE-sampled-adagrad", "RNNCCE", {"loss_type": "XE-sampled", "learner": "adagrad"})] + [
    (model, model, {}) for model in RATING_MODELS
] + [(f"{model}-{loss}", model, {"loss_type": loss}) for model in ("RatingMF",) for loss in ("MAE",)]
# one SGD step, no dropout: the update is the gradient itself, the same for 2 ranks and 1 process
FIRST_UPDATE = {"learner": "sgd", "learning_rate": 0.5, "dropout_prob": 0.0}
UPDATE_PLAN = [
    ("RNNCCE-prefix", "RNNCCE", {"train_mode": "prefix", "train_batch_size": 31, **FIRST_UPDATE}),
    ("RNNCCE-sequence", "RNNCCE", {"train_mode": "sequence", "train_batch_size": 150, **FIRST_UPDATE}),
    ("RNNCCE-session", "RNNCCE", {"train_mode": "session", "train_batch_size": 13, "session_steps": 5,
                                  **FIRST_UPDATE}),
    ("DwellGRU4Rec-session", "DwellGRU4Rec", {"train_mode": "session", "train_batch_size": 16, "session_steps": 5,
                                              **FIRST_UPDATE}),
    ("RatingMLP", "RatingMLP", {"train_batch_size": 301, **FIRST_UPDATE}),
]
# a few steps an epoch in every train mode, so that 2 ranks stay quick on 2 cores (session mode: users
# of at most 150 interactions, a row each, blocks of 50 steps)
QUICK = {"train_batch_size": 1024}
QUICK_SESSIONS = {"train_batch_size": 32, "session_steps": 50, "user_inter_num_interval": "[0,150]"}
# RecBole's whole run in 4 steps that still learn something (2 of the 30 test users hit)
QUICK_RUN = {**QUICK, "learning_rate": 0.05}


def settings_of(model, settings):
    return {**(QUICK_SESSIONS if settings.get("train_mode") == "session" else QUICK), **settings}


class FirstBatch:
    """A training loader cut to its first batch (RecBole's ``_train_epoch`` then makes one update)."""

    shuffle = False

    def __init__(self, loader):
        self.loader = loader

    def __iter__(self):
        return itertools.islice(iter(self.loader), 1)


def weights(model):
    return {name: value.detach().cpu().clone() for name, value in model.state_dict().items()}


def two_rank_worker(rank, port, data_path, out):
    """One of two ranks, each as one node of a two-machine run (:func:`ranked`): every plan of this
    module, each in its own prepared run (the first config starts the process group, the others
    keep it); rank 0 writes what the test process checks."""
    import recbole_ext  # noqa: F401

    # two "nodes" share this machine's cores: one thread each (a node of nproc 1 would take them all)
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)
    out = Path(out)
    results = {}
    for name, model, settings in TRAIN_PLAN:
        config = ranked(tiny(data_path, model, **settings_of(model, settings)), rank, port)
        with prepared_run(model, "ml-tiny", None, config) as (run_config, trainer, (train, valid, test)):
            assert run_config["ddp_backend"] == "gloo" and str(run_config["device"]) == "cpu"
            trainer.fit(train, valid, verbose=False, saved=True)
            result = trainer.evaluate(test, load_best_model=True)
            results[name] = dict(result)
            if rank == 0 and name in ("RNNCCE-sequence-CE", "RatingMF"):
                torch.save(weights(trainer.model), out / f"{name}.weights.pth")
            if name == "RNNCCE-sequence-CE":  # the samples this rank trained on, step by step
                steps = [[(int(u), int(t)) for u, t in zip(b["user_id"], b["target_item_id_list"][:, 0])]
                         for b in train]
                (out / f"epoch.rank{rank}.json").write_text(json.dumps(steps))
    for name, model, settings in UPDATE_PLAN:
        config = ranked(tiny(data_path, model, **settings), rank, port)
        with prepared_run(model, "ml-tiny", None, config) as (_, trainer, (train, _, _)):
            trainer._train_epoch(FirstBatch(train), 0)
            if rank == 0:
                torch.save(weights(trainer.model), out / f"{name}.update.pth")
    if rank == 0:
        (out / "results.json").write_text(json.dumps(results))


@pytest.fixture(scope="module")
def ddp_data_path(tmp_path_factory):
    """ml-100k's first 30 users: the two ranks train every plan of this module in seconds."""
    return str(write_ml_slice(tmp_path_factory.mktemp("ddp-data"), n_users=30))


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory, ddp_data_path):
    out = tmp_path_factory.mktemp("two-ranks")
    torch.multiprocessing.spawn(two_rank_worker, args=(free_port(), ddp_data_path, str(out)), nprocs=2)
    return out


def test_every_plugin_model_trains_in_every_train_mode_and_loss_on_two_ranks(two_ranks):
    results = json.loads((two_ranks / "results.json").read_text())
    assert sorted(results) == sorted(name for name, _, _ in TRAIN_PLAN)
    for name, result in results.items():
        metrics = ("rmse", "mae") if name.startswith("Rating") else ("ndcg@10", "mrr@10", "recall@10")
        assert all(0.0 <= result[m] < 5.0 for m in metrics), (name, result)


def test_each_rank_trains_on_its_own_part_of_the_epoch_in_the_same_number_of_steps(two_ranks, ddp_data_path):
    rank0, rank1 = (json.loads((two_ranks / f"epoch.rank{r}.json").read_text()) for r in (0, 1))
    assert len(rank0) == len(rank1) > 1
    seen0, seen1 = ({tuple(s) for step in rank for s in step} for rank in (rank0, rank1))
    assert not seen0 & seen1
    config = tiny(ddp_data_path, "RNNCCE", train_mode="sequence", loss_type="CE")
    with prepared_run("RNNCCE", "ml-tiny", None, config) as (_, _, (train, _, _)):
        windows = {(int(u), int(t)) for u, t in zip(train._sliced_source["user_id"],
                                                    train._sliced_source["target_item_id_list"][:, 0])}
    assert seen0 | seen1 == windows and sum(map(len, rank0 + rank1)) == len(windows)


@pytest.mark.parametrize("name, model, settings", UPDATE_PLAN, ids=[p[0] for p in UPDATE_PLAN])
def test_the_first_update_of_two_ranks_is_one_process_update_on_their_batch(two_ranks, ddp_data_path,
                                                                             name, model, settings):
    """2 ranks × about B samples (targets, rows) = 1 process × 2B on the same batch, to 1e-6."""
    with prepared_run(model, "ml-tiny", None, tiny(ddp_data_path, model, **settings)) as (config, trainer, data):
        before = weights(trainer.model)
        trainer._train_epoch(FirstBatch(data[0]), 0)
        one_process = weights(trainer.model)
    two = torch.load(two_ranks / f"{name}.update.pth", weights_only=True)
    assert two.keys() == one_process.keys()
    moved = 0
    for key, value in one_process.items():
        torch.testing.assert_close(two[key] - before[key], value - before[key], atol=UPDATE_ATOL, rtol=0, msg=key)
        moved += int((value != before[key]).any())
    assert moved >= 2  # the step changed the weights


@pytest.mark.parametrize("name, model, settings", [("RNNCCE-sequence-CE", "RNNCCE", {"train_mode": "sequence"}),
                                                   ("RatingMF", "RatingMF", {})])
def test_evaluation_gathered_from_two_ranks_is_one_process_evaluation_of_the_same_weights(
        two_ranks, ddp_data_path, name, model, settings):
    trained = torch.load(two_ranks / f"{name}.weights.pth", weights_only=True)
    expected = json.loads((two_ranks / "results.json").read_text())[name]
    with prepared_run(model, "ml-tiny", None, tiny(ddp_data_path, model, **settings)) as (_, trainer, data):
        trainer.model.load_state_dict(trained)
        assert dict(trainer.evaluate(data[2], load_best_model=False)) == expected


def test_ranks_making_the_same_folder_at_once_do_not_fail(tmp_path, monkeypatch):
    # two ranks both find ./log missing, then both make it: RecBole's ensure_dir failed on the second
    import recbole.trainer.trainer
    import recbole.utils.logger
    import recbole.utils.utils

    folder = tmp_path / "log"
    folder.mkdir()  # made by the other rank just after this one looked
    monkeypatch.setattr(os.path, "exists", lambda path: False)
    with pytest.raises(FileExistsError):
        recbole.utils.utils.ensure_dir.__wrapped__(str(folder))
    for module in (recbole.utils.logger, recbole.trainer.trainer, recbole.utils.utils):
        module.ensure_dir(str(folder))
    assert folder.is_dir()


def test_recbole_run_with_nproc_2_returns_test_results_on_the_cpu(ddp_data_path, tmp_path):
    from recbole.quick_start import run

    config = tiny(ddp_data_path, "RNNCCE", checkpoint_dir=str(tmp_path / "saved"), **QUICK_RUN)
    result = run("RNNCCE", "ml-tiny", config_dict=config, nproc=2, ip="127.0.0.1", port=str(free_port()))
    assert set(result) == {"best_valid_score", "valid_score_bigger", "best_valid_result", "test_result"}
    assert set(result["test_result"]) == {"recall@10", "mrr@10", "ndcg@10", "hit@10", "precision@10"}
    assert all(0.0 <= value <= 1.0 for result_of in ("test_result", "best_valid_result")
               for value in result[result_of].values())
    (checkpoint,) = (tmp_path / "saved").glob("RNNCCE-*.pth")  # rank 0 writes the one checkpoint
    recbole_ext.checkpoints.allow_checkpoint_model_class(str(checkpoint))
    recbole_ext.checkpoints.check_checkpoint(str(checkpoint))  # weights-only loadable
    # and evaluated in this one process, as any checkpoint: its config is a single process's
    loaded_config, model, _, _, _, test_data = recbole_ext.load_data_and_model(str(checkpoint))
    assert loaded_config["single_spec"] and loaded_config["local_rank"] == 0
    assert sum(len(batch[0]) for batch in test_data) == len(test_data._dataset)


# ---------------------------------------------------------------- Ray searches that survive faults


def test_a_trial_continues_after_its_last_checkpointed_epoch_as_if_never_stopped(ddp_data_path):
    config = {**tiny(ddp_data_path, "RNNCCE"), "epochs": 3, "train_batch_size": 256}
    saved = {}

    def keeping(reports):
        def report_checkpoint(metrics, folder):
            reports.append(metrics)
            saved.setdefault(metrics["epoch"], {name: Path(folder, name).read_bytes()
                                                for name in (hyper.TRIAL_STATE_FILE, hyper.BEST_MODEL_FILE)})
        return report_checkpoint

    reports = []
    whole = hyper.run_trial({}, "RNNCCE", "ml-tiny", None, config, reports.append, report_checkpoint=keeping(reports))
    assert [r["epoch"] for r in reports] == [1, 2, 3, 3]
    for epoch in (1, 3):
        folder = Path(f"after-{epoch}")
        folder.mkdir()
        for name, data in saved[epoch].items():
            (folder / name).write_bytes(data)
        torch.load(folder / hyper.TRIAL_STATE_FILE, weights_only=True)  # plain tensors and values
        again = []
        result = hyper.run_trial({}, "RNNCCE", "ml-tiny", None, config, again.append,
                                 report_checkpoint=keeping(again), resume_from=str(folder))
        # the epochs after the checkpoint, with the valid scores and the test result of the whole run
        assert [r["epoch"] for r in again] == list(range(epoch + 1, 4)) + [3]
        assert [r["valid_score"] for r in again[:-1]] == [r["valid_score"] for r in reports[epoch:3]]
        assert result["test_result"] == whole["test_result"] and result["epochs"] == 3


def test_a_node_that_cannot_see_the_dataset_fails_its_trial_with_one_line(tmp_path):
    node = {"node_id": "ab" * 28, "node": "10.0.0.7 (host worker-3, Ray node abababab)"}
    config = {"data_path": str(tmp_path / "nowhere"), "load_col": {"inter": ["user_id", "item_id", "timestamp"]}}
    with pytest.raises(DatasetNotFoundError) as error:
        hyper.run_trial({}, "RNNCCE", "ml-tiny", None, config, lambda metrics: None, node=node)
    message = str(error.value)
    assert "\n" not in message and error.value.__cause__ is None and error.value.__suppress_context__
    assert message.startswith("node 10.0.0.7 (host worker-3, Ray node abababab) cannot see the dataset")
    assert str(tmp_path / "nowhere" / "ml-tiny") in message
    assert "every node mounts at the same path and pass that path as --data_path" in message


def test_max_failures_is_a_non_negative_count_kept_by_the_search():
    assert hyper.parse_args(["--max_failures=3"]).max_failures == 3
    with pytest.raises(SystemExit):
        hyper.parse_args(["--max_failures=-1"])
    with pytest.raises(SystemExit):
        hyper.parse_args(["--max_failures=1", "--resume"])


class LoseWorkerNode(tune.Callback):
    """A Ray Tune callback that removes the cluster's worker node once a trial running there has saved
    the checkpoint of its first epoch: the trial then waits in its report until Tune asks for the next
    epoch, so it is lost right there, whatever the speed of the machine. The cluster is looked up in
    :data:`CLUSTER`, not held: Ray keeps the callbacks in the experiment's pickled state."""

    def on_trial_save(self, iteration, trials, trial, **info):
        worker, result = CLUSTER.get("worker"), trial.last_result
        if worker is not None and result.get("node_id") == worker.node_id and result.get("epoch") == 1:
            del CLUSTER["worker"]
            CLUSTER["lost"] = (worker.node_id, trial.trial_id)
            CLUSTER["cluster"].remove_node(worker)


CLUSTER = {}


def test_a_search_on_two_nodes_loses_one_and_still_finishes_every_trial(ddp_data_path, tmp_path, capsys):
    import ray
    from ray.cluster_utils import Cluster

    # the head notices the lost node within a few seconds, not Ray's default 30
    health = {"health_check_initial_delay_ms": 0, "health_check_period_ms": 1000, "health_check_failure_threshold": 3}
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False,
                                                            "_system_config": health})
    try:
        CLUSTER.update(cluster=cluster, worker=cluster.add_node(num_cpus=1))
        # the trials' workers import this checkout's recbole_ext, as this process does
        ray.init(address=cluster.address, log_to_driver=False, runtime_env={"env_vars": {"PYTHONPATH": str(REPO)}})
        params = tmp_path / "x.hyper"
        params.write_text("hidden_size choice [4,8]\n")
        args = ["--model=RNNCCE", "--dataset=ml-tiny", f"--params_file={params}", f"--data_path={ddp_data_path}",
                f"--storage_path={tmp_path / 'ray'}", "--name=search", "--epochs=2", "--state=ERROR",
                "--scheduler=fifo", "--embedding_size=8", "--MAX_ITEM_LIST_LENGTH=10", "--max_failures=2",
                "--load_col={'inter':['user_id','item_id','timestamp']}"]
        assert hyper.main(args, callbacks=[LoseWorkerNode()]) == 0
        lost_node, lost_trial = CLUSTER["lost"]
    finally:
        CLUSTER.clear()
        ray.shutdown()
        cluster.shutdown()
    with open(tmp_path / "ray" / "search" / "results.csv") as f:
        rows = {row["trial_id"]: row for row in csv.DictReader(f)}
    assert [row["status"] for row in rows.values()] == ["finished", "finished"]
    assert {trial: row["retries"] for trial, row in rows.items()} == {
        trial: "1" if trial == lost_trial else "0" for trial in rows}
    assert all(row["epochs"] == "2" and float(row["test/ndcg@10"]) >= 0.0 for row in rows.values())
    assert "2 trials (2 finished)" in capsys.readouterr().out

    histories = {}
    for progress in (tmp_path / "ray" / "search").glob("*/progress.csv"):
        with open(progress) as f:
            for row in csv.DictReader(f):
                if row["node_id"]:  # the epochs' reports (the last report, the test result, names no node)
                    histories.setdefault(row["trial_id"], []).append((row["epoch"], row["node_id"]))
    assert sorted(histories) == sorted(rows)
    nodes = {node for history in histories.values() for _, node in history}
    assert lost_node in nodes and len(nodes) == 2  # trials ran on both nodes
    # epoch 1 on the lost node, epoch 2 on the other: continued from the checkpoint, not run again
    assert [epoch for epoch, _ in histories[lost_trial]] == ["1", "2"]
    assert histories[lost_trial][0][1] == lost_node and histories[lost_trial][1][1] != lost_node
