"""How training cost grows with the log: DwellGRU4Rec in session mode vs the official GRU4Rec on
generated logs shaped like RSC15, and full-softmax CE vs the sampled losses at the largest catalogue.

For each ``--sizes`` N: ``python -m recbole_ext.data.synth --shape rsc15 --events N`` writes the log;
it is a RecBole dataset as it is, split by RecBole's leave-one-out (each session's last one or two
targets are validation and test). Then, each in a fresh process (so peak RSS is its own):

* **ours**: DwellGRU4Rec (``dwell_mode: none``) in ``train_mode: session`` with the settings of
  ``benchmarks/session_speed.py`` (its ``recbole_config``), trained by RecBole's own
  ``Trainer._train_epoch``. Measured: the dataset build (``create_dataset`` + ``data_preparation``),
  training events (targets) per second, peak RSS (``VmHWM``).
* **official**: Hidasi's GRU4Rec (a checkout outside this repository, for measuring only, driven as
  ``session_speed.py`` drives it, with its NumPy-2 float32 fix) on the same training events: each
  session's training sequence from RecBole's split, computed here and checked against what ours
  trains on (event count and target-item multiset). Measured: its ``fit`` setup (data iterator and
  sample cache), training events per second, peak RSS.

With ``--train-events K`` (> 0) each contender trains on the first K training targets of its
epoch (both take sessions in the order of their first event, ``batch`` rows at a time) and stops;
0 trains the whole epoch. The CSV says how many targets each measurement trained on.

At the largest size, one more process per ``--loss-modes`` mode trains ours with ``CE`` (full
softmax), ``XE-sampled`` and ``BPR-max`` in turn (``--loss-rounds`` rounds, alternating), each on
the first ``--loss-targets`` targets of the epoch, and reports seconds per target.

    nice -n 10 python -m benchmarks.scaling --official /tmp/gru4rec_official \\
        --out benchmarks/results/scaling/cpu

Writes ``OUT/runs.csv`` (every measurement) and ``OUT/summary.md``, staged and renamed into place;
an existing ``OUT`` is replaced only with ``--overwrite`` and only if it holds nothing but those two.
"""

import argparse
import contextlib
import csv
import io
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

import numpy as np  # noqa: E402

from recbole_ext.data.sequence import user_spans  # noqa: E402
from recbole_ext.errors import DataError  # noqa: E402

NAME = "speed-train"  # session_speed.recbole_config reads the dataset of this name
RESULT_FILES = ("runs.csv", "summary.md")
LOSSES = ("CE", "XE-sampled", "BPR-max")
KIB_PER_MB = 1024


def peak_rss_mb():
    """This process's peak resident memory, MB: ``VmHWM`` of /proc/self/status. (``ru_maxrss`` would
    keep the high-water mark of the parent's forked image across ``exec``: a floor that is not ours.)"""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / KIB_PER_MB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / KIB_PER_MB  # KiB on Linux


# ------------------------------------------------------------------ the official's training events
def training_events(inter_file):
    """The training sequences of RecBole's leave-one-out split of a session log, as the official code
    reads them (``SessionId``, ``ItemId``, ``Time``).

    RecBole makes one sample per event after a session's first (n − 1 of them) and holds out the last
    min(2, n − 2) of them: a session of n events trains on its first n − min(2, n − 2) events.
    Sessions come sorted by id then time with strictly increasing times (the generator's promise),
    so RecBole's order is this one.
    """
    import pandas as pd

    frame = pd.read_csv(inter_file, sep="\t")
    frame.columns = [c.split(":")[0] for c in frame.columns]
    sessions = frame["session_id"].to_numpy()
    first, ends = user_spans(sessions)
    lengths = ends - first
    position = np.arange(len(sessions)) - np.repeat(first, lengths)
    kept = np.repeat(lengths - np.minimum(2, lengths - 2), lengths)
    train = frame[position < kept]
    return pd.DataFrame({"SessionId": train["session_id"].to_numpy(), "ItemId": train["item_id"].to_numpy(),
                         "Time": train["timestamp"].to_numpy()})


def target_fingerprint(item_tokens):
    """(count, Σ token, Σ token²) of the target item tokens: equal multisets give equal tuples."""
    tokens = np.asarray(item_tokens, dtype=np.int64)
    return [int(len(tokens)), int(tokens.sum()), int((tokens * tokens).sum())]


# ------------------------------------------------------------------ child processes
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


def child_ours(spec):
    import torch

    torch.set_num_threads(spec["threads"])
    from recbole.data import create_dataset, data_preparation
    from recbole.utils import get_trainer, init_seed
    from benchmarks.session_speed import recbole_config

    from recbole_ext.model.dwellgru4rec import DwellGRU4Rec

    rss_import = peak_rss_mb()
    args = argparse.Namespace(**spec["args"])
    settings = {"train_mode": spec["mode"], "train_batch_size": args.batch, "embedding_size": args.units,
                "hidden_size": args.units, "epochs": 1}
    start = time.perf_counter()
    config = recbole_config(Path(spec["data_dir"]), args, settings)
    init_seed(args.seed, True)
    dataset = create_dataset(config)
    train, _, _ = data_preparation(config, dataset)
    build = time.perf_counter() - start
    rss_build = peak_rss_mb()
    target_field = train._dataset.target_field
    targets = train._dataset.inter_feat[target_field]
    targets = targets[targets > 0].numpy()
    result = {"build_s": build, "catalogue": int(dataset.item_num - 1), "epoch_targets": int(len(targets)),
              "rss_import_mb": rss_import, "rss_build_mb": rss_build, "runs": []}
    for loss in spec["losses"] * spec["rounds"]:
        config["loss_type"] = loss
        init_seed(args.seed, True)
        model = DwellGRU4Rec(config, train._dataset)
        trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
        batches = FirstTargets(train, target_field, spec["cap"])
        model.train()
        start = time.perf_counter()
        trainer._train_epoch(batches, 0, show_progress=False)
        seconds = time.perf_counter() - start
        result["runs"].append({"loss": loss, "targets": batches.targets, "seconds": seconds})
        del model, trainer
    result["rss_peak_mb"] = peak_rss_mb()
    # after the peak is read: the check's own arrays are no part of training
    token_of_id = np.array([0] + [int(token) for token in dataset.field2id_token["item_id"][1:]], dtype=np.int64)
    result["target_fingerprint"] = target_fingerprint(token_of_id[targets])
    return result


def child_official(spec):
    import pandas as pd
    import torch

    torch.set_num_threads(spec["threads"])
    from benchmarks.official import load_gru4rec

    official = load_gru4rec(spec["official"])
    rss_import = peak_rss_mb()
    args = argparse.Namespace(**spec["args"])
    stored = np.load(spec["events_file"])
    data = pd.DataFrame({key: stored[key] for key in ("SessionId", "ItemId", "Time")})
    rss_data = peak_rss_mb()
    trained = _cap_official_epoch(official.SessionDataIterator, spec["cap"])
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    gru = official.GRU4Rec(layers=[args.units], loss="cross-entropy", batch_size=args.batch, dropout_p_embed=0.0,
                           dropout_p_hidden=0.0, learning_rate=0.05, momentum=0.0, sample_alpha=args.sample_alpha,
                           n_sample=args.n_sample, constrained_embedding=True, n_epochs=1,
                           device=torch.device("cpu"))
    buffer = io.StringIO()
    start = time.perf_counter()
    with contextlib.redirect_stdout(buffer):
        gru.fit(data)
    total = time.perf_counter() - start
    epoch = [float(line.split("(")[1].split("s)")[0]) for line in buffer.getvalue().splitlines()
             if line.startswith("Epoch")]
    if len(epoch) != 1:
        raise RuntimeError(f"official fit printed no epoch time:\n{buffer.getvalue()}")
    return {"setup_s": total - epoch[0], "catalogue": int(gru.data_iterator.n_items),
            "epoch_targets": int(len(data) - data["SessionId"].nunique()), "rss_import_mb": rss_import,
            "rss_build_mb": rss_data, "rss_peak_mb": peak_rss_mb(),
            "runs": [{"loss": "XE-sampled", "targets": trained[0], "seconds": epoch[0]}]}


def _cap_official_epoch(iterator_class, cap):
    """Stop the official epoch once ``cap`` targets were trained (0: never); returns a one-element
    list holding the count. Wraps its iterator's ``__call__``; its code is not changed."""
    trained = [0]
    original = iterator_class.__call__

    def capped(self, enable_neg_samples, reset_hook=None):
        trained[0] = 0
        for in_idx, out_idx in original(self, enable_neg_samples, reset_hook):
            yield in_idx, out_idx
            trained[0] += len(in_idx)  # one target per active row
            if cap and trained[0] >= cap:
                return

    iterator_class.__call__ = capped
    return trained


def run_child(kind, spec, work):
    """Run one measurement in a fresh interpreter; returns its result dict."""
    spec_file = work / f"spec-{kind}-{time.monotonic_ns()}.json"
    spec_file.write_text(json.dumps(spec), encoding="utf-8")
    spec["work"] = str(work)  # RecBole writes log/ into the working folder: the child moves there
    env = {**os.environ, "OMP_NUM_THREADS": str(spec["threads"]), "MKL_NUM_THREADS": str(spec["threads"])}
    done = subprocess.run([sys.executable, "-m", "benchmarks.scaling", "--child", kind, str(spec_file)],
                          check=False, cwd=REPO, env=env, capture_output=True, text=True)
    spec_file.unlink()
    if done.returncode != 0:
        raise RuntimeError(f"{kind} child failed ({done.returncode}):\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------ output
def check_out(out, overwrite):
    """Raise :class:`DataError` unless ``out`` may receive the results (see the module doc)."""
    if not os.path.lexists(out):
        return
    if out.is_symlink() or not out.is_dir():
        raise DataError(f"--out {out} is not a folder; give a new or results folder")
    entries = sorted(os.listdir(out))
    if entries and not overwrite:
        raise DataError(f"--out {out} is not empty; pass --overwrite to replace its results")
    others = [e for e in entries if e not in RESULT_FILES or not (out / e).is_file() or (out / e).is_symlink()]
    if others:
        raise DataError(f"--out {out} holds {', '.join(others[:3])}, not only {' and '.join(RESULT_FILES)}; "
                        "--overwrite replaces only those: move it away yourself")


def write_results(out, rows, summary, overwrite):
    """Write runs.csv and summary.md in a staging folder beside ``out`` and rename it into place;
    a replaced ``out`` is moved aside and only its two files deleted, by name."""
    check_out(out, overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.staging-", dir=out.parent))
    new, replaced = staging / "new", staging / "replaced"
    new.mkdir()
    with open(new / "runs.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    (new / "summary.md").write_text(summary, encoding="utf-8")
    if os.path.lexists(out):
        os.replace(out, replaced)
    os.replace(new, out)
    for folder in (replaced, staging):
        for name in RESULT_FILES:
            with contextlib.suppress(FileNotFoundError):
                (folder / name).unlink()
        with contextlib.suppress(OSError):
            folder.rmdir()


def summarize(rows, args, command, loads):
    def get(**match):
        return [r for r in rows if all(r[k] == v for k, v in match.items())]

    cap = f"the first {args.train_events:,} training targets of the epoch" if args.train_events else "a whole epoch"
    lines = [
        "# Training cost as an RSC15-shaped log grows",
        "",
        (f"Machine: {os.cpu_count()} CPU cores ({platform.processor() or platform.machine()}), shared with other "
         f"jobs (load average over 1 min: {loads[0]:.1f} at the start, {loads[1]:.1f} at the end); "
         f"torch {__import__('torch').__version__}, {args.threads} thread per contender, CPU only."),
        f"Command: `{command}`",
        "",
        (f"Each contender and size: one fresh process, trained on {cap} (batch {args.batch}, "
         f"{args.units} units, XE-sampled with {args.n_sample} negatives, alpha {args.sample_alpha})."),
        "",
        ("| events in log | items (ours, official) | training targets | ours build s | official setup s | "
         "ours events/s | official events/s | ours / official | ours peak RSS MB | official peak RSS MB |"),
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for size in args.sizes:
        ours, official = get(size=size, contender="ours")[0], get(size=size, contender="official")[0]
        lines.append(
            f"| {size:,} | {ours['catalogue']:,}, {official['catalogue']:,} | {ours['epoch_targets']:,} | "
            f"{ours['build_s']:.1f} | {official['build_s']:.1f} | {ours['events_per_s']:.0f} | {official['events_per_s']:.0f} | "
            f"{ours['events_per_s'] / official['events_per_s']:.2f}x | {ours['rss_peak_mb']:.0f} | "
            f"{official['rss_peak_mb']:.0f} |")
    for mode in args.loss_modes:
        measured = get(contender=f"ours-losses-{mode}")
        if not measured:
            continue
        per_target = {loss: np.median([r["seconds"] / r["trained_targets"] for r in measured if r["loss"] == loss])
                      for loss in LOSSES}
        lines += ["", (f"Per-target training time by loss, `train_mode: {mode}`, batch {args.batch}, "
                       f"{measured[0]['catalogue']:,} items ({max(args.sizes):,}-event log; median of "
                       f"{args.loss_rounds} alternating rounds, each on the first {args.loss_targets:,} targets):"), "",
                  "| loss | µs per target | targets/s | CE time / this loss's time |", "|---|---|---|---|"]
        for loss in LOSSES:
            lines.append(f"| {loss} | {per_target[loss] * 1e6:.0f} | {1 / per_target[loss]:.0f} | "
                         f"{per_target['CE'] / per_target[loss]:.2f}x |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--official", required=True, help="checkout of hidasib/GRU4Rec_PyTorch_Official")
    parser.add_argument("--out", required=True)
    parser.add_argument("--sizes", type=int, nargs="+", default=[500_000, 1_000_000, 2_000_000, 5_000_000],
                        help="events in each generated log")
    parser.add_argument("--items", type=int, default=37483)
    parser.add_argument("--train-events", type=int, default=300_000,
                        help="training targets per measurement, from the start of the epoch (0: the whole epoch)")
    parser.add_argument("--loss-targets", type=int, default=30_000,
                        help="training targets per loss measurement at the largest size")
    parser.add_argument("--loss-modes", nargs="*", default=["session", "sequence"], choices=["session", "sequence"])
    parser.add_argument("--loss-rounds", type=int, default=2)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--units", type=int, default=64)
    parser.add_argument("--hidden-projection", action="store_true",
                        help="ours: RecBole GRU4Rec's dense layer before the output (default: none, as the official)")
    parser.add_argument("--n-sample", type=int, default=2048)
    parser.add_argument("--sample-alpha", type=float, default=0.5)
    parser.add_argument("--learner", default="adagrad")
    parser.add_argument("--learning-rate", type=float, default=0.05)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)
    for key in ("sizes", "items", "batch", "units", "loss_targets", "loss_rounds", "threads"):
        values = getattr(args, key) if isinstance(getattr(args, key), list) else [getattr(args, key)]
        if any(v < 1 for v in values):
            parser.error(f"--{key.replace('_', '-')}: {values} is not allowed; use positive integers")
    if args.train_events < 0:
        parser.error(f"--train-events: {args.train_events} is not allowed; use 0 (whole epoch) or a positive count")
    out = Path(args.out).resolve()
    try:
        check_out(out, args.overwrite)
    except DataError as error:
        print(f"scaling: error: {error}", file=sys.stderr)
        return 2
    official_dir = Path(args.official).resolve()
    if not (official_dir / "gru4rec_pytorch.py").is_file():
        parser.error(f"--official: {official_dir} holds no gru4rec_pytorch.py; give the official checkout")
    command = "python -m benchmarks.scaling " + " ".join(sys.argv[1:] if argv is None else argv)
    shared = {"threads": args.threads, "official": str(official_dir), "cap": args.train_events,
              "args": {"n_sample": args.n_sample, "sample_alpha": args.sample_alpha, "learner": args.learner,
                       "learning_rate": args.learning_rate, "epochs": 1, "seed": args.seed, "batch": args.batch,
                       "units": args.units, "hidden_projection": args.hidden_projection}}
    rows, load_at_start = [], os.getloadavg()[0]
    work = Path(tempfile.mkdtemp(prefix="scaling-"))
    try:
        for size in args.sizes:
            log_dir = work / f"events-{size}"
            subprocess.run([sys.executable, "-m", "recbole_ext.data.synth", "--shape", "rsc15", "--events", str(size),
                            "--items", str(args.items), "--seed", str(args.seed), "--out", str(log_dir),
                            "--name", NAME], check=True, cwd=REPO,
                           stdout=subprocess.DEVNULL)
            events = training_events(log_dir / NAME / f"{NAME}.inter")
            events_file = log_dir / "official-train.npz"
            np.savez(events_file, **{key: events[key].to_numpy() for key in events.columns})
            sessions = events["SessionId"].to_numpy()
            official_targets = target_fingerprint(events["ItemId"].to_numpy()[1:][sessions[1:] == sessions[:-1]])
            del events, sessions
            official = run_child("official", {**shared, "events_file": str(events_file)}, work)
            ours = run_child("ours", {**shared, "data_dir": str(log_dir), "mode": "session", "losses": ["XE-sampled"],
                                      "rounds": 1}, work)
            if ours["target_fingerprint"] != official_targets:
                raise RuntimeError(f"size {size}: the official's training targets {official_targets} "
                                   f"differ from ours {ours['target_fingerprint']} (count, sum, sum of squares)")
            for name, result in (("official", official), ("ours", ours)):
                rows.append(_row(size, name, "session", result, result["runs"][0], args.train_events))
                print(f"{size} {name}: {rows[-1]['events_per_s']:.0f} events/s, build {rows[-1]['build_s']:.1f} s, "
                      f"peak RSS {rows[-1]['rss_peak_mb']:.0f} MB", flush=True)
            if size != max(args.sizes):
                shutil.rmtree(log_dir)  # our own temporary log; the largest stays for the loss runs
        largest = work / f"events-{max(args.sizes)}"
        for mode in args.loss_modes:
            result = run_child("ours", {**shared, "cap": args.loss_targets, "data_dir": str(largest), "mode": mode,
                                        "losses": list(LOSSES), "rounds": args.loss_rounds}, work)
            for index, run in enumerate(result["runs"]):
                rows.append({**_row(max(args.sizes), f"ours-losses-{mode}", mode, result, run, args.loss_targets),
                             "round": index // len(LOSSES) + 1})
                print(f"losses {mode} {run['loss']}: {run['seconds'] / run['targets'] * 1e6:.0f} µs/target", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)  # the temporary folder made above, with RecBole's log/
    summary = summarize(rows, args, command, (load_at_start, os.getloadavg()[0]))
    write_results(out, rows, summary, args.overwrite)
    print(summary)
    return 0


def _row(size, contender, mode, result, run, cap):
    return {"size": size, "contender": contender, "mode": mode, "loss": run["loss"], "round": 1,
            "catalogue": result["catalogue"], "epoch_targets": result["epoch_targets"],
            "target_cap": cap, "trained_targets": run["targets"], "seconds": round(run["seconds"], 3),
            "events_per_s": round(run["targets"] / run["seconds"], 1),
            "build_s": round(result.get("build_s", result.get("setup_s")), 2),
            "rss_import_mb": round(result["rss_import_mb"], 1), "rss_build_mb": round(result["rss_build_mb"], 1),
            "rss_peak_mb": round(result["rss_peak_mb"], 1)}


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        spec = json.loads(Path(sys.argv[3]).read_text(encoding="utf-8"))
        os.chdir(spec["work"])
        result = {"ours": child_ours, "official": child_official}[sys.argv[2]](spec)
        print(json.dumps(result))
        sys.exit(0)
    sys.exit(main())
