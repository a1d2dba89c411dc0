"""Search hyper-parameters of one model with Ray Tune, from a RecBole hyper file.

    python run_hyper.py --model=RNNCCE --dataset=ml-100k --params_file=hyper/rnncce.hyper --epochs=20
    python run_hyper.py --model=GRU4Rec --params_file=hyper/gru4rec.hyper --address=auto --gpus_per_trial=1
    python run_hyper.py --model=RNNCCE --dataset=ml-100k --resume      # continue an interrupted search

Any other ``--key=value`` is a config override for every trial (e.g. ``--epochs=20``). The results
table goes to ``STORAGE_PATH/NAME/results.{csv,md}`` unless ``--output_file`` names another prefix.
"""

import argparse
import os
import sys
from pathlib import Path

import recbole_ext
from recbole_ext import hyper

EXIT_ERROR, EXIT_NO_TRIAL_FINISHED, EXIT_INTERRUPTED = 2, 1, 130
# Flags that define a search: on --resume they come from the saved experiment and may only repeat it.
# (The hyper file is compared by content.)
SEARCH_FLAGS = ("model", "dataset", "config_files", "num_samples", "scheduler", "max_concurrent", "cpus_per_trial",
                "gpus_per_trial")


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", "-m", default=None, help="model name (default: RNNCCE)")
    parser.add_argument("--dataset", "-d", default=None, help="dataset name (default: ml-100k)")
    parser.add_argument("--config_files", default=None, help="space-separated config files")
    parser.add_argument("--params_file", default=None, help="RecBole hyper file (required unless --resume)")
    parser.add_argument("--num_samples", type=int, default=None,
                        help="trials (default: the grid when every line is `choice`, else 20 samples)")
    parser.add_argument("--scheduler", choices=["asha", "fifo"], default=None,
                        help="asha (default) stops poor trials early on the valid metric; fifo runs all to the end")
    parser.add_argument("--max_concurrent", type=int, default=None, help="trials at once (default: as resources allow)")
    parser.add_argument("--cpus_per_trial", type=float, default=None, help="CPUs per trial (default: 1)")
    parser.add_argument("--gpus_per_trial", type=float, default=None,
                        help="GPUs per trial (default: 0); fractions share a GPU")
    parser.add_argument("--address", default=None,
                        help="existing Ray cluster, e.g. auto or HOST:6379 (default: $RAY_ADDRESS, else a local Ray)")
    parser.add_argument("--num_cpus", type=int, default=None, help="CPUs of a local Ray (default: all)")
    parser.add_argument("--storage_path", default="ray_results", help="where Ray keeps experiments (default: ray_results)")
    parser.add_argument("--name", default=None, help="experiment name (default: MODEL-DATASET)")
    parser.add_argument("--resume", action="store_true", help="continue the experiment NAME: finished trials are kept")
    parser.add_argument("--retry_failed", action="store_true", help="with --resume: run failed trials again")
    parser.add_argument("--output_file", default=None, help="results table prefix (default: STORAGE_PATH/NAME/results)")
    args, overrides = parser.parse_known_args(argv)
    for arg in overrides:
        if not arg.startswith("--") or "=" not in arg:
            parser.error(f"unrecognized argument {arg!r}; config overrides are --key=value")
    args.overrides = dict(arg[2:].split("=", 1) for arg in overrides)
    for flag in ("num_samples", "max_concurrent", "num_cpus"):
        if getattr(args, flag) is not None and getattr(args, flag) < 1:
            parser.error(f"--{flag}: {getattr(args, flag)} is not allowed; use a positive integer")
    if args.retry_failed and not args.resume:
        parser.error("--retry_failed needs --resume")
    if args.address and args.num_cpus:
        parser.error("--num_cpus sizes a local Ray; a cluster given by --address has its own CPUs")
    return args


def new_settings(args):
    """The search's settings from the command line, checked before Ray starts."""
    if args.params_file is None:
        raise recbole_ext.ConfigError("--params_file is required (a RecBole hyper file, see hyper/)")
    config_files = [str(Path(f).resolve()) for f in args.config_files.split()] if args.config_files else []
    for path in [args.params_file, *config_files]:
        if not os.path.isfile(path):
            raise recbole_ext.ConfigError(f"{path!r} is not a file")
    settings = {
        "model": args.model or "RNNCCE",
        "dataset": args.dataset or "ml-100k",
        "config_files": config_files,
        "params_file": args.params_file,
        "space": hyper.parse_hyper_file(args.params_file),
        "overrides": absolute_data_path(args.overrides),
        "num_samples": args.num_samples,
        "scheduler": args.scheduler or "asha",
        "max_concurrent": args.max_concurrent,
        "cpus_per_trial": 1 if args.cpus_per_trial is None else args.cpus_per_trial,
        "gpus_per_trial": 0 if args.gpus_per_trial is None else args.gpus_per_trial,
    }
    config = hyper.check_parameter_names(
        settings["space"], settings["model"], settings["dataset"], config_files, config_dict(settings["overrides"])
    )
    settings.update(valid_metric=config["valid_metric"], bigger=config["valid_metric_bigger"], epochs=config["epochs"])
    return settings


def resumed_settings(args, experiment):
    settings = hyper.load_settings(experiment)
    if settings is None:
        raise recbole_ext.ConfigError(f"--resume: no experiment to resume at {experiment} (see --storage_path, --name)")
    given = {flag: getattr(args, flag) for flag in SEARCH_FLAGS}
    if args.config_files:
        given["config_files"] = [str(Path(f).resolve()) for f in args.config_files.split()]
    for flag in SEARCH_FLAGS:
        if given[flag] is not None and given[flag] != settings[flag]:
            raise recbole_ext.ConfigError(
                f"--resume: --{flag}={given[flag]!r} differs from the experiment's {settings[flag]!r}; "
                "a resumed search keeps its settings (drop the flag, or start a new search with another --name)"
            )
    if args.params_file is not None and hyper.parse_hyper_file(args.params_file) != settings["space"]:
        raise recbole_ext.ConfigError(f"--resume: {args.params_file} changed since the search started")
    overrides = absolute_data_path(args.overrides)
    if overrides and overrides != settings["overrides"]:
        raise recbole_ext.ConfigError(
            f"--resume: the overrides {overrides} differ from the experiment's {settings['overrides']}; "
            "a resumed search keeps its settings"
        )
    return settings


def absolute_data_path(overrides):
    # Trials run in their own folders: a relative data_path would point elsewhere there.
    if "data_path" in overrides:
        return {**overrides, "data_path": str(Path(overrides["data_path"]).resolve())}
    return dict(overrides)


def config_dict(overrides):
    """``--key=value`` strings to values, the way RecBole's command line converts them."""
    from recbole.config.configurator import Config

    return Config._convert_config_dict(None, dict(overrides))


def build_tuner(args, settings, experiment):
    from ray import tune

    trainable = tune.with_resources(
        tune.with_parameters(
            hyper.train_trial, model=settings["model"], dataset=settings["dataset"],
            config_files=settings["config_files"] or None, overrides=config_dict(settings["overrides"]),
        ),
        {"cpu": settings["cpus_per_trial"], "gpu": settings["gpus_per_trial"]},
    )
    if args.resume:
        # Trials carry no Ray checkpoint: an interrupted trial starts again from its first epoch.
        return tune.Tuner.restore(experiment, trainable=trainable, resume_unfinished=True,
                                  resume_errored=False, restart_errored=args.retry_failed)
    space = settings["space"]
    grid = hyper.is_grid(space) and settings["num_samples"] is None
    scheduler = None
    if settings["scheduler"] == "asha":
        from ray.tune.schedulers import ASHAScheduler

        # max_t past the last epoch: ASHA ends trials at max_t, which would cut off the test report.
        scheduler = ASHAScheduler(time_attr="epoch", max_t=int(settings["epochs"]) + 1, grace_period=1)
    return tune.Tuner(
        trainable,
        param_space=hyper.to_tune_space(space, grid),
        tune_config=tune.TuneConfig(
            metric="valid_score", mode="max" if settings["bigger"] else "min",
            num_samples=1 if grid else (settings["num_samples"] or 20),
            scheduler=scheduler, max_concurrent_trials=settings["max_concurrent"],
        ),
        run_config=tune.RunConfig(
            name=Path(experiment).name, storage_path=str(Path(experiment).parent), verbose=1,
            failure_config=tune.FailureConfig(max_failures=0, fail_fast=False),
            # each trial's RecBole log (written in its working folder) lands in its trial folder
            sync_config=tune.SyncConfig(sync_artifacts=True),
        ),
    )


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    name = args.name or f"{args.model or 'RNNCCE'}-{args.dataset or 'ml-100k'}"
    experiment = str(Path(args.storage_path).resolve() / name)
    try:
        if args.resume:
            settings = resumed_settings(args, experiment)
        else:
            if os.path.exists(experiment):
                raise recbole_ext.ConfigError(
                    f"experiment {experiment} exists; add --resume to continue it or choose another --name"
                )
            settings = new_settings(args)
    except recbole_ext.RecBoleExtError as error:
        print(f"run_hyper.py: error: {error}", file=sys.stderr)
        return EXIT_ERROR

    import ray

    started_ray = not ray.is_initialized()
    if started_ray:
        address = args.address or os.environ.get("RAY_ADDRESS")
        ray.init(address=address, num_cpus=args.num_cpus, include_dashboard=False, log_to_driver=False)
    try:
        tuner = build_tuner(args, settings, experiment)
        if not args.resume:
            hyper.save_settings(experiment, settings)
        tuner.fit()
        rows = hyper.results_table(experiment, settings["space"], settings["bigger"])
    finally:
        if started_ray:
            ray.shutdown()
    return report(rows, settings, args, experiment)


def report(rows, settings, args, experiment):
    """Write the results table and print the best trial; returns the exit status."""
    csv_path, md_path = hyper.write_tables(rows, args.output_file or os.path.join(experiment, "results"))
    counts = {status: sum(row["status"] == status for row in rows)
              for status in (hyper.FINISHED, hyper.STOPPED, hyper.FAILED, hyper.UNFINISHED)}
    print(f"\n{len(rows)} trial{'' if len(rows) == 1 else 's'} "
          f"({', '.join(f'{n} {status}' for status, n in counts.items() if n)}); "
          f"table: {csv_path}, {md_path}")
    best = hyper.best_row(rows, settings["bigger"])
    if best is not None:
        print("best params:", {name: best[name] for name in settings["space"]})
        print(f"best valid {settings['valid_metric']}: {best['best_valid_score']:.4f}")
        print("test:", {key[len("test/"):]: round(value, 4) for key, value in best.items() if key.startswith("test/")})
    if counts[hyper.UNFINISHED]:
        print(f"interrupted: continue with `python run_hyper.py --storage_path={args.storage_path} "
              f"--name={Path(experiment).name} --resume`")
        return EXIT_INTERRUPTED
    return 0 if best is not None else EXIT_NO_TRIAL_FINISHED


if __name__ == "__main__":
    sys.exit(main())
