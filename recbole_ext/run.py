"""One run: the ``run`` command (RecBole's ``run_recbole.py``).

    python -m recbole_ext run --model=RNNCCE --dataset=ml-100k [--config_files="a.yaml b.yaml"] [--key=value ...]
    python -m recbole_ext run --resume=saved/RNNCCE-Jan-01-2025_10-00-00-1234.resume.pth

The command takes the flags of RecBole's ``run_recbole.py``; any other ``--key=value`` overrides a
config key (read as a literal, never evaluated). ``--folds=K`` (K >= 2) cross-validates a rating model
(:func:`recbole_ext.cross_validation.cross_validate`) and prints each fold and mean ± std
(``--fold=F`` too: fold F only). One process trains as RecBole's ``run_recbole`` does
(:func:`recbole_ext.training.run`), saving before every epoch the state to continue the run after a
kill, ``saved/NAME.resume.pth`` beside the best checkpoint ``saved/NAME.pth`` (removed once the run is
tested); ``--resume=FILE`` continues it, with that run's config, to the same weights as an
uninterrupted run. ``--nproc`` > 1 trains through RecBole's own ``run``. Searches and benchmarks
train through :func:`recbole_ext.training.train_and_test`.
"""

import argparse
import sys


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="run", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", "-m", default=None, help="model name (default: RNNCCE)")
    parser.add_argument("--dataset", "-d", default=None, help="dataset name (default: ml-100k)")
    parser.add_argument("--config_files", default=None, help="space-separated config files")
    parser.add_argument("--nproc", type=int, default=1, help="processes for distributed training")
    parser.add_argument("--ip", default="localhost", help="master address for distributed training")
    parser.add_argument("--port", default="5678", help="master port for distributed training")
    parser.add_argument("--world_size", type=int, default=-1, help="total processes across machines")
    parser.add_argument("--group_offset", type=int, default=0, help="rank offset of this machine")
    parser.add_argument("--resume", default=None, metavar="FILE",
                        help="continue the run whose state FILE holds (saved/NAME.resume.pth), with its config")
    return parser.parse_known_args(argv)


def main(argv=None, prog="run"):
    """The ``run`` command; returns the exit code (2 for bad input, with one line on stderr)."""
    from recbole.quick_start import run
    from recbole.utils import dict2str

    from recbole_ext import cli, training
    from recbole_ext.errors import RecBoleExtError

    args, extra = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        if args.nproc < 1:
            raise RecBoleExtError(f"--nproc: {args.nproc} is not allowed; use an integer >= 1")
        overrides = cli.config_overrides(extra)
        config_files = cli.config_files(args.config_files)
        if args.resume is not None:
            _check_resume(args, overrides, config_files)
        args.model = cli.name("--model", args.model, "RNNCCE")
        args.dataset = cli.name("--dataset", args.dataset, "ml-100k")
        if overrides.get("folds", 1) != 1:
            return _cross_validate(args, overrides, config_files, prog)
        with cli.without_command_line(), cli.one_line_warnings(prog), cli.console_log_held_until_training():
            if args.nproc == 1 and args.world_size <= 0:
                result = training.run(args.model, args.dataset, config_file_list=config_files, config_dict=overrides,
                                      resume_file=args.resume)
            else:
                result = run(
                    args.model, args.dataset, config_file_list=config_files, config_dict=overrides,
                    nproc=args.nproc, world_size=args.world_size, ip=args.ip, port=args.port,
                    group_offset=args.group_offset,
                )
    except RecBoleExtError as error:
        return cli.bad_input(prog, error)
    if result is not None:
        print(f"best valid: {dict2str(result['best_valid_result'])}")
        print(f"test result: {dict2str(result['test_result'])}")
    return 0


def _check_resume(args, overrides, config_files):
    """``--resume`` continues a run with the config saved in its file: the flags that would change it
    are refused, not ignored."""
    from recbole_ext.errors import ConfigError

    if not args.resume.strip():
        raise ConfigError("--resume: no file given; pass the state a run saved, e.g. --resume=saved/NAME.resume.pth")
    given = [f"--{key}" for key in overrides] + (["--config_files"] if config_files else [])
    given += [f"--{flag}" for flag in ("model", "dataset") if getattr(args, flag) is not None]
    if args.nproc != 1 or args.world_size > 0:
        given.append("--nproc" if args.nproc != 1 else "--world_size")
    if given:
        raise ConfigError(f"--resume continues the run saved in {args.resume} with that run's config, in one "
                          f"process; drop {', '.join(given)}")


def _cross_validate(args, overrides, config_files, prog):
    from recbole_ext import cli, cross_validation

    folds = overrides.pop("folds")
    fold = overrides.pop("fold", None)
    with cli.without_command_line(), cli.one_line_warnings(prog):
        summary = cross_validation.cross_validate(args.model, args.dataset, folds, config_files, overrides,
                                                  only_fold=fold)
    print(cross_validation.format_summary(summary))
    return 0
