"""Where one session-mode training epoch spends its time: torch.profiler over RecBole's
``Trainer._train_epoch`` (DwellGRU4Rec, dwell_mode none, 64 units, batch 64, one step per update,
XE-sampled with 2048 negatives, Adagrad 0.05; the settings of benchmarks/session_speed.py).

    nice -n 10 python -m benchmarks.profile_session_epoch --sessions 5000
"""

import argparse
import os
import sys
import tempfile


import torch  # noqa: E402
from recbole.data import create_dataset, data_preparation  # noqa: E402
from recbole.utils import get_trainer  # noqa: E402
from torch.profiler import profile  # noqa: E402

from benchmarks.session_speed import NAME, recbole_config  # noqa: E402
from recbole_ext.data.atomic import write_sessions  # noqa: E402
from recbole_ext.data.synth import generate  # noqa: E402
from recbole_ext.model.dwellgru4rec import DwellGRU4Rec  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sessions", type=int, default=5000)
    parser.add_argument("--session-steps", type=int, default=1)
    args = parser.parse_args(argv)
    settings = argparse.Namespace(n_sample=2048, sample_alpha=0.5, learning_rate=0.05, learner="adagrad", hidden_projection=False,
                                  epochs=1, seed=0)
    work = tempfile.mkdtemp(prefix="profile-session-")
    write_sessions(*generate(args.sessions, seed=0), work, NAME)
    os.chdir(work)
    config = recbole_config(work, settings, {"train_mode": "session", "train_batch_size": 64,
                                             "session_steps": args.session_steps, "embedding_size": 64,
                                             "hidden_size": 64})
    train = data_preparation(config, create_dataset(config))[0]
    torch.set_num_threads(1)
    model = DwellGRU4Rec(config, train._dataset)
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
    with profile() as prof:
        trainer._train_epoch(train, 0)
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))
    return 0


if __name__ == "__main__":
    sys.exit(main())
