"""DwellGRU4Rec's dwell modes on the seeded synthetic session log, same seed and epochs.

    python -m benchmarks.dwell_modes --sessions=3000 --epochs=20 --out=benchmarks/results/dwell_modes

Writes summary.md (valid and test Recall@20 / MRR@20 per mode) into --out.
"""

import argparse
import os
import sys
import tempfile
from pathlib import Path

import yaml


import recbole_ext  # noqa: E402
from recbole_ext.data.synth import generate  # noqa: E402
from recbole_ext.data.atomic import write_sessions  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=3000)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seeds", default="0", help="comma-separated RecBole seeds")
    parser.add_argument("--modes", default="none,boost,feature,both")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default="benchmarks/results/dwell_modes")
    args = parser.parse_args()
    sys.argv = sys.argv[:1]
    work = Path(tempfile.mkdtemp(prefix="dwell-modes-"))
    config_file = write_sessions(*generate(args.sessions, seed=0), work, "synth-sessions")
    data_config = yaml.safe_load(config_file.read_text())
    rows = []
    for mode in args.modes.split(","):
        for seed in (int(s) for s in args.seeds.split(",")):
            result = recbole_ext.run_recbole(
                model="DwellGRU4Rec",
                dataset="synth-sessions",
                config_dict={
                    **data_config, "dwell_mode": mode, "epochs": args.epochs, "seed": seed,
                    "metrics": ["Recall", "MRR"], "topk": [20], "valid_metric": "MRR@20",
                    "show_progress": False, "state": "WARNING", "device": args.device,
                    "use_gpu": args.device != "cpu", "checkpoint_dir": str(work / "saved"),
                },
            )
            valid, test = result["best_valid_result"], result["test_result"]
            rows.append(f"| {mode} | {seed} | {valid['recall@20']:.4f} | {valid['mrr@20']:.4f} | "
                        f"{test['recall@20']:.4f} | {test['mrr@20']:.4f} |")
            print(rows[-1], flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    table = ["| dwell_mode | seed | valid R@20 | valid MRR@20 | test R@20 | test MRR@20 |",
             "|---|---|---|---|---|---|", *rows]
    (out / "summary.md.tmp").write_text(
        f"{args.sessions} generated sessions, {args.epochs} epochs, device {args.device}.\n\n" + "\n".join(table) + "\n"
    )
    os.replace(out / "summary.md.tmp", out / "summary.md")


if __name__ == "__main__":
    main()
