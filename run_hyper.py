"""Search hyper-parameters of one model with Ray Tune, from a RecBole hyper file.

    python run_hyper.py --model=RNNCCE --dataset=ml-100k --params_file=hyper/rnncce.hyper
    python run_hyper.py --model=GRU4Rec --params_file=hyper/gru4rec.hyper --address=auto --gpus_per_trial=1

Any other ``--key=value`` is a config override for every trial (e.g. ``--epochs=20``).
"""

import argparse
import os
import sys
from pathlib import Path

import recbole_ext
from recbole_ext import hyper


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", "-m", default="RNNCCE")
    parser.add_argument("--dataset", "-d", default="ml-100k")
    parser.add_argument("--config_files", default=None, help="space-separated config files")
    parser.add_argument("--params_file", required=True, help="RecBole hyper file")
    parser.add_argument("--num_samples", type=int, default=None,
                        help="trials (default: the grid size when every line is `choice`, else 20)")
    parser.add_argument("--scheduler", choices=["asha", "fifo"], default="asha")
    parser.add_argument("--max_concurrent", type=int, default=None, help="trials at once (default: as resources allow)")
    parser.add_argument("--cpus_per_trial", type=float, default=1)
    parser.add_argument("--gpus_per_trial", type=float, default=0)
    parser.add_argument("--address", default=None, help="existing Ray cluster (e.g. auto); RAY_ADDRESS is honoured")
    parser.add_argument("--num_cpus", type=int, default=None, help="CPUs of a local Ray (default: all)")
    parser.add_argument("--storage_path", default="ray_results", help="where Ray keeps the experiment")
    parser.add_argument("--name", default=None, help="experiment name (default: MODEL-DATASET)")
    parser.add_argument("--resume", action="store_true", help="continue the interrupted experiment NAME")
    parser.add_argument("--output_file", default=None, help="results table prefix (default: STORAGE/NAME/results)")
    args, overrides = parser.parse_known_args(argv)
    return parser, args, overrides


def config_overrides(parser, overrides):
    from recbole.config.configurator import Config

    fixed = {}
    for arg in overrides:
        if not arg.startswith("--") or "=" not in arg:
            parser.error(f"unrecognized argument {arg!r}; config overrides are --key=value")
        key, value = arg[2:].split("=", 1)
        fixed[key] = value
    return Config._convert_config_dict(None, fixed)


def main(argv=None):
    parser, args, overrides = parse_args(sys.argv[1:] if argv is None else argv)
    sys.argv = sys.argv[:1]  # RecBole's Config would read our flags as config keys, in every trial
    for name, value in (("num_samples", args.num_samples), ("max_concurrent", args.max_concurrent)):
        if value is not None and value < 1:
            parser.error(f"--{name}: {value} is not allowed; use a positive integer")
    fixed = config_overrides(parser, overrides)
    config_files = [str(Path(f).resolve()) for f in args.config_files.split()] if args.config_files else None
    if "data_path" in fixed:
        fixed["data_path"] = str(Path(fixed["data_path"]).resolve())  # trials run in other folders
    name = args.name or f"{args.model}-{args.dataset}"
    storage = str(Path(args.storage_path).resolve())
    try:
        for path in [args.params_file, *(config_files or [])]:
            if not os.path.isfile(path):
                raise recbole_ext.ConfigError(f"{path!r} is not a file")
        space = hyper.parse_hyper_file(args.params_file)
        config = hyper.check_parameter_names(space, args.model, args.dataset, config_files, fixed)
    except recbole_ext.RecBoleExtError as error:
        print(f"run_hyper.py: error: {error}", file=sys.stderr)
        return 2
    bigger = config["valid_metric_bigger"]
    grid = hyper.is_grid(space) and args.num_samples is None
    num_samples = 1 if grid else (args.num_samples or 20)

    import ray
    from ray import tune

    address = args.address or os.environ.get("RAY_ADDRESS")
    ray.init(address=address, num_cpus=None if address else args.num_cpus, include_dashboard=False,
             ignore_reinit_error=True, log_to_driver=False)
    trainable = tune.with_resources(
        tune.with_parameters(hyper.train_trial, model=args.model, dataset=args.dataset,
                             config_files=config_files, fixed=fixed),
        {"cpu": args.cpus_per_trial, "gpu": args.gpus_per_trial},
    )
    experiment = os.path.join(storage, name)
    if args.resume:
        if not tune.Tuner.can_restore(experiment):
            print(f"run_hyper.py: error: --resume: no experiment to resume at {experiment}", file=sys.stderr)
            return 2
        tuner = tune.Tuner.restore(experiment, trainable=trainable, resume_unfinished=True, resume_errored=False)
    else:
        scheduler = None
        if args.scheduler == "asha":
            from ray.tune.schedulers import ASHAScheduler

            # max_t past the last epoch: the final report (with the test result) must not be cut off
            scheduler = ASHAScheduler(time_attr="epoch", max_t=int(config["epochs"]) + 1, grace_period=1)
        tuner = tune.Tuner(
            trainable,
            param_space=hyper.to_tune_space(space, grid),
            tune_config=tune.TuneConfig(metric="valid_score", mode="max" if bigger else "min", num_samples=num_samples,
                                        scheduler=scheduler, max_concurrent_trials=args.max_concurrent),
            run_config=tune.RunConfig(name=name, storage_path=storage, verbose=1,
                                      failure_config=tune.FailureConfig(max_failures=0, fail_fast=False)),
        )
    results = tuner.fit()
    rows = hyper.results_table(results, space, bigger)
    csv_path, md_path = hyper.write_tables(rows, args.output_file or os.path.join(experiment, "results"))
    finished = [row for row in rows if row["best_valid_score"] is not None and row["status"] != "failed"]
    print(f"\n{len(rows)} trials ({sum(r['status'] == 'failed' for r in rows)} failed); table: {csv_path}, {md_path}")
    if finished:
        best = (max if bigger else min)(finished, key=lambda row: row["best_valid_score"])
        print("best params:", {name: best[name] for name in space})
        print(f"best valid ({config['valid_metric']}): {best['best_valid_score']:.4f}")
        print("test:", {k[5:]: round(v, 4) for k, v in best.items() if k.startswith("test/")})
    ray.shutdown()
    return 0 if finished else 1


if __name__ == "__main__":
    sys.exit(main())
