"""Train and test one model (a recbole-ext plugin or a RecBole built-in) with RecBole.

    python run.py --model=RNNCCE --dataset=ml-100k [--config_files="a.yaml b.yaml"] [--key=value ...]

The flags are those of RecBole's run_recbole.py; any other ``--key=value`` overrides a config key.
"""

import argparse
import os
import sys

import recbole_ext
from recbole.quick_start import run
from recbole_ext import rating
from recbole.utils import dict2str


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", "-m", default="RNNCCE", help="model name (default: RNNCCE)")
    parser.add_argument("--dataset", "-d", default="ml-100k", help="dataset name (default: ml-100k)")
    parser.add_argument("--config_files", default=None, help="space-separated config files")
    parser.add_argument("--nproc", type=int, default=1, help="processes for distributed training")
    parser.add_argument("--ip", default="localhost", help="master address for distributed training")
    parser.add_argument("--port", default="5678", help="master port for distributed training")
    parser.add_argument("--world_size", type=int, default=-1, help="total processes across machines")
    parser.add_argument("--group_offset", type=int, default=0, help="rank offset of this machine")
    args, _ = parser.parse_known_args(argv)
    return args


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    config_files = args.config_files.split() if args.config_files else None
    try:
        for path in config_files or []:
            if not os.path.isfile(path):
                raise recbole_ext.ConfigError(f"--config_files: {path!r} is not a file")
        # --- ratings (issue 14): --folds=K (K >= 2) cross-validates a rating model ---
        folds = rating.folds_argument(sys.argv[1:] if argv is None else argv)
        if folds > 1:
            print(rating.format_summary(rating.cross_validate(args.model, args.dataset, folds, config_files)))
            return 0
        # --- end ratings ---
        result = run(
            args.model,
            args.dataset,
            config_file_list=config_files,
            nproc=args.nproc,
            world_size=args.world_size,
            ip=args.ip,
            port=args.port,
            group_offset=args.group_offset,
        )
    except recbole_ext.RecBoleExtError as error:
        print(f"run.py: error: {error}", file=sys.stderr)
        return 2
    if result is not None:
        print(f"best valid: {dict2str(result['best_valid_result'])}")
        print(f"test result: {dict2str(result['test_result'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
