"""RecBole's prefix augmentation against ours (``SequenceDataset.data_augmentation``), in one run:
the dataset build of an RSC15-shaped log, alternating, ``--rounds`` times each.

    nice -n 10 python -m benchmarks.prefix_samples_speed --events 1000000
"""

import argparse
import os
import sys
import tempfile
import time


from recbole.config import Config  # noqa: E402
from recbole.data import create_dataset  # noqa: E402
from recbole.data.dataset import SequentialDataset  # noqa: E402

from recbole_ext.data.atomic import write_sessions  # noqa: E402
from recbole_ext.data.sequence import SequenceDataset  # noqa: E402
from recbole_ext.data.synth_rsc15 import generate_rsc15  # noqa: E402

OURS = SequenceDataset.data_augmentation


def build_seconds(work, augmentation):
    SequenceDataset.data_augmentation = augmentation
    config = Config(model="DwellGRU4Rec", dataset="log", config_dict={
        "data_path": work, "USER_ID_FIELD": "session_id", "ITEM_ID_FIELD": "item_id", "TIME_FIELD": "timestamp",
        "load_col": {"inter": ["session_id", "item_id", "timestamp"]}, "MAX_ITEM_LIST_LENGTH": 50,
        "train_mode": "session", "state": "ERROR", "show_progress": False})
    start = time.perf_counter()
    create_dataset(config)._change_feat_format()  # RecBole's step that runs the augmentation
    return time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    sys.argv = sys.argv[:1]  # RecBole's Config would read our flags as config keys
    work = tempfile.mkdtemp(prefix="prefix-samples-")
    write_sessions(*generate_rsc15(args.events, seed=0), work, "log")
    os.chdir(work)  # RecBole's log/ folder
    for round_index in range(args.rounds):
        recbole = build_seconds(work, SequentialDataset.data_augmentation)
        ours = build_seconds(work, OURS)
        print(f"round {round_index + 1}, {args.events} events: RecBole's augmentation {recbole:.1f} s, "
              f"ours {ours:.1f} s, {recbole / ours:.1f}x", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
