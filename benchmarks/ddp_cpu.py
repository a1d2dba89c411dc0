"""One process against RecBole's DDP with two ranks on this machine's CPU cores (``gloo``): the same
run of each model on ml-100k, each epoch's training seconds and the test result, and the largest
difference between the first SGD update of two ranks and that of one process on the same batch.

    nice -n 10 python -m benchmarks.ddp_cpu --epochs 2 --out benchmarks/results/ddp_cpu/results.jsonl

Layouts, run in this order: one process with one torch thread (``1x1``), two ranks with one thread
each (``2x1``, what ``recbole_ext.distributed.init_device`` gives each of 2 processes on 2 cores),
one process with every core as threads (``1xN``). The ranks train one process's batches, each on
its half.
"""

import argparse
import itertools
import json
import os
import socket
import sys
import tempfile
import time

import torch

RUNS = {
    "RNNCCE-sequence": ("RNNCCE", {"train_mode": "sequence"}),
    "RNNCCE-session": ("RNNCCE", {"train_mode": "session"}),
    "RatingMF": ("RatingMF", {}),
}
FIRST_UPDATE = ("RNNCCE", {"train_mode": "sequence", "learner": "sgd", "learning_rate": 0.5, "dropout_prob": 0.0})


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def base_config(epochs):
    return {"epochs": epochs, "state": "ERROR", "show_progress": False, "seed": 2020, "stopping_step": epochs}


def ranked(config, rank, port):
    return {**config, "local_rank": rank, "nproc": 2, "world_size": 2, "offset": 0, "ip": "127.0.0.1", "port": port}


def train(model, config):
    from recbole_ext.training import train_and_test

    result = train_and_test(model, "ml-100k", None, config)
    return {"train_seconds": result["train_seconds"], "test_result": result["test_result"],
            "epochs": result["epochs"]}


def first_update(model, config):
    from recbole_ext.training import prepared_run

    class FirstBatch:
        shuffle = False

        def __init__(self, loader):
            self.loader = loader

        def __iter__(self):
            return itertools.islice(iter(self.loader), 1)

    with prepared_run(model, "ml-100k", None, config) as (_, trainer, (train_data, _, _)):
        before = {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}
        trainer._train_epoch(FirstBatch(train_data), 0)
        return {k: v.detach() - before[k] for k, v in trainer.model.state_dict().items()}


def rank_worker(rank, port, epochs, out):
    import recbole_ext  # noqa: F401

    records = {}
    for name, (model, settings) in RUNS.items():
        records[name] = train(model, ranked({**base_config(epochs), **settings}, rank, port))
    model, settings = FIRST_UPDATE
    update = first_update(model, ranked({**base_config(1), **settings}, rank, port))
    if rank == 0:
        torch.save(update, out + ".update.pth")
        with open(out + ".ranks.json", "w") as f:
            json.dump(records, f)


def one_process(epochs, threads):
    torch.set_num_threads(threads)
    records = {name: train(model, {**base_config(epochs), **settings}) for name, (model, settings) in RUNS.items()}
    model, settings = FIRST_UPDATE
    return records, first_update(model, {**base_config(1), **settings})


def two_ranks(epochs, work):
    prefix = os.path.join(work, "ranks")
    torch.multiprocessing.spawn(rank_worker, args=(free_port(), epochs, prefix), nprocs=2)
    with open(prefix + ".ranks.json") as f:
        records = json.load(f)
    return records, torch.load(prefix + ".update.pth", weights_only=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--out", default=None, help="append the records to this JSON-lines file")
    args = parser.parse_args(argv)
    sys.argv = sys.argv[:1]  # RecBole's Config would read our flags as config keys
    out = os.path.abspath(args.out) if args.out else None
    import recbole_ext  # noqa: F401

    work = tempfile.mkdtemp(prefix="ddp-cpu-")
    os.chdir(work)  # RecBole's log/ folder
    cores = os.cpu_count()
    layouts = {"1x1": lambda: one_process(args.epochs, 1), "2x1": lambda: two_ranks(args.epochs, work),
               f"1x{cores}": lambda: one_process(args.epochs, cores)}
    records, updates = [], {}
    for layout, run in layouts.items():
        load, start = os.getloadavg(), time.perf_counter()
        by_run, updates[layout] = run()
        seconds = time.perf_counter() - start
        for name, record in by_run.items():
            records.append({"run": name, "layout": layout, **record, "load_average_before": load,
                            "torch": torch.__version__, "cpu_count": cores})
            epoch_seconds = ", ".join(f"{s:.1f}" for s in record["train_seconds"])
            metrics = ", ".join(f"{k} {v:.4f}" for k, v in record["test_result"].items())
            print(f"{name:16s} {layout}: train s/epoch [{epoch_seconds}]; test {metrics}", flush=True)
        print(f"{layout}: {seconds:.0f} s wall (start-up included), load average before {load}", flush=True)
    one, two = updates["1x1"], updates["2x1"]
    largest = max(float((two[k] - one[k]).abs().max()) for k in one)
    scale = max(float(one[k].abs().max()) for k in one)
    print(f"first SGD update (RNNCCE, sequence): largest |2 ranks - 1 process| = {largest:.2e} "
          f"(largest |update| {scale:.2e})")
    summary = {"first_update_max_abs_difference": largest, "first_update_max_abs": scale,
               "load_average_after": os.getloadavg()}
    if out:
        os.makedirs(os.path.dirname(out), exist_ok=True)
        with open(out, "a", encoding="utf-8") as f:
            for record in records + [summary]:
                f.write(json.dumps(record) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
