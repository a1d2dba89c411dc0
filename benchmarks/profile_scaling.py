"""Where a session-mode training step spends its time on a large catalogue, by loss: torch.profiler
over RecBole's ``Trainer._train_epoch`` on the first ``--targets`` training targets of an
RSC15-shaped log (DwellGRU4Rec, dwell_mode none, 64 units, batch 64, Adagrad 0.05, 2048 negatives:
the settings of benchmarks/scaling.py).

    nice -n 10 python -m benchmarks.profile_scaling --events 500000 --targets 10000

Prints, per loss, µs per target of an unprofiled pass, then the profiled pass's top operations and
the share of its CPU time inside the optimizer step.

With Adagrad (no weight decay) the sampled losses give the item rows sparse gradients
(``recbole_ext.model.rnn.sparse_item_gradients``), so the step updates only the rows a batch
touched; ``--dense-rows`` turns that off, to see what a dense update over the whole catalogue costs.
The full-softmax CE touches every row and is dense either way.
"""

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path


import torch  # noqa: E402
from recbole.data import create_dataset, data_preparation  # noqa: E402
from recbole.utils import get_trainer, init_seed  # noqa: E402
from torch.profiler import profile  # noqa: E402

from recbole_ext.data.atomic import write_sessions  # noqa: E402
from recbole_ext.data.synth_rsc15 import generate_rsc15  # noqa: E402
from recbole_ext.model.dwellgru4rec import DwellGRU4Rec  # noqa: E402
from benchmarks.session_speed import NAME, recbole_config  # noqa: E402


LOSSES = ("CE", "XE-sampled", "BPR-max")


class FirstTargets:
    """The batches of a RecBole training loader up to the one that reaches ``cap`` targets (all of
    them with cap 0); counts the targets it handed out."""

    def __init__(self, loader, target_field, cap):
        self.loader, self.target_field, self.cap = loader, target_field, cap
        self.shuffle = loader.shuffle
        self.targets = 0

    def __iter__(self):
        self.targets = 0
        for batch in self.loader:
            self.targets += int((batch[self.target_field] > 0).sum())
            yield batch
            if self.cap and self.targets >= self.cap:
                return


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=500_000, help="events in the generated log")
    parser.add_argument("--targets", type=int, default=10_000, help="training targets per pass")
    parser.add_argument("--mode", choices=["session", "sequence"], default="session")
    parser.add_argument("--dense-rows", action="store_true", help="dense gradients for the item rows (module doc)")
    args = parser.parse_args(argv)
    settings = argparse.Namespace(n_sample=2048, sample_alpha=0.5, learning_rate=0.05, learner="adagrad",
                                  epochs=1, seed=0, hidden_projection=False)
    work = tempfile.mkdtemp(prefix="profile-scaling-")
    try:
        write_sessions(*generate_rsc15(args.events, seed=0), work, NAME)
        os.chdir(work)  # RecBole's log/ folder
        config = recbole_config(work, settings, {"train_mode": args.mode, "train_batch_size": 64,
                                                 "embedding_size": 64, "hidden_size": 64})
        train = data_preparation(config, create_dataset(config))[0]
        torch.set_num_threads(1)
        print(f"{train._dataset.item_num - 1} items, train_mode {args.mode}, dense rows: {args.dense_rows}")
        for loss in LOSSES:
            config["loss_type"] = loss
            init_seed(0, True)
            model = DwellGRU4Rec(config, train._dataset)
            if args.dense_rows:
                model.sparse_item_grad = model.item_embedding.sparse = False
            trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
            batches = FirstTargets(train, train._dataset.target_field, args.targets)
            start = time.perf_counter()
            trainer._train_epoch(batches, 0, show_progress=False)
            seconds = time.perf_counter() - start
            print(f"\n{loss}: {seconds / batches.targets * 1e6:.0f} µs per target ({batches.targets} targets)")
            batches = FirstTargets(train, train._dataset.target_field, args.targets)
            with profile() as prof:
                trainer._train_epoch(batches, 0, show_progress=False)
            averages = prof.key_averages()
            total = sum(event.self_cpu_time_total for event in averages)
            optimizer = sum(event.cpu_time_total for event in averages if event.key.startswith("Optimizer.step"))
            print(f"optimizer step: {optimizer / total:.0%} of the profiled CPU time")
            print(averages.table(sort_by="self_cpu_time_total", row_limit=8))
    finally:
        os.chdir(Path.home())
        shutil.rmtree(work, ignore_errors=True)  # the temporary folder made above: the log and RecBole's log/
    return 0


if __name__ == "__main__":
    sys.exit(main())
