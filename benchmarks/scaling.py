"""How memory and training cost grow with the log: DwellGRU4Rec in session mode vs the official
GRU4Rec on generated logs shaped like RSC15, up to RSC15's own size, and RecBole's GRU4Rec with and
without ``lean_sequences``.

For each ``--sizes`` N: ``python -m recbole_ext.data.synth --shape rsc15 --events N`` writes the log,
split as GRU4Rec splits RSC15 (``eval_protocol: session_split``): sessions ending in the last day are
test, those ending the day before validation, the rest training; held-out events whose item is in no
training session are dropped, then held-out sessions shorter than 2. Then, each in a fresh process
(so its memory is its own):

* **ours**: DwellGRU4Rec (``dwell_mode: none``, no hidden projection) in ``train_mode: session`` with
  sampled cross-entropy, trained by RecBole's own ``Trainer._train_epoch`` for one **full** epoch.
* **official**: Hidasi's GRU4Rec (:mod:`benchmarks.official`) on the very same training events (the
  targets' count and item sums are checked against ours), one full epoch by its own ``fit``.

Measured for both: the data set-up from a text file (ours: ``create_dataset`` + ``data_preparation``
on the ``.inter`` file; the official: reading its training TSV as its ``run.py`` does, ``read_s``,
then its ``fit`` before the first batch, i.e. its data iterator and sample cache), RSS right after it,
RSS after 1,000 batches and at the end of the epoch (and every tenth of the epoch between), the peak
(``VmHWM``), training events per second; with ``--evaluate`` sizes, Recall@20 and MRR@20 on the
test sessions (ours: RecBole's full-sort evaluation, the session read in one pass; the official: its
``evaluation.batch_eval``, mode ``standard``). A contender whose RSS passes ``--memory-cap-gb`` is
stopped there and reported as not fitting (the machine has 24 GB for everything).

With ``--recbole-sizes``, RecBole's own GRU4Rec (its defaults, CE over all items) trains on the same
kind of log with ``lean_sequences`` False and True, each in a fresh process: build seconds and peak
RSS, the first ``--recbole-batches`` training batches (the same batches in both: same seed) timed,
seconds per epoch extrapolated from them, then Recall@20 / MRR@20 on the test sessions.

    nice -n 10 python -m benchmarks.scaling --official /tmp/gru4rec_official \\
        --out benchmarks/results/scaling/memory-cpu --sizes 3000000 10000000 31700000 --evaluate 31700000

``--contenders official`` trains the official alone at ``--sizes`` (its training events are then not
checked against ours: that check runs wherever ours trains too). ``--build-only`` stops each contender
once its data is set up (ours: after ``data_preparation``; the official: at its first batch), for the
build seconds and memory alone:

    python -m benchmarks.scaling --official /tmp/gru4rec_official --out benchmarks/results/scaling/build-cpu \
        --sizes 5000000 10000000 31700000 --evaluate --build-only

Writes ``OUT/runs.csv`` (one row per measurement), ``OUT/traces.csv`` (the RSS samples) and
``OUT/summary.md``, staged and renamed into place; an existing ``OUT`` is replaced only with
``--overwrite`` and only if it holds nothing but those three.
"""

import argparse
import contextlib
import csv
import io
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from recbole_ext.data.sequence import user_spans
from recbole_ext.errors import DataError

REPO = Path(__file__).resolve().parents[1]
NAME = "scaling-log"
RESULT_FILES = ("runs.csv", "traces.csv", "summary.md")
LOSSES = ("CE", "XE-sampled", "BPR-max")
SECONDS_PER_DAY = 86400
KIB_PER_MB = 1024
EXIT_OVER_CAP = 3


# ------------------------------------------------------------------ memory
def _status_mb(key):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / KIB_PER_MB
    raise RuntimeError(f"no {key} in /proc/self/status")


def rss_mb():
    return _status_mb("VmRSS")


def peak_rss_mb():
    """This process's peak resident memory, MB: ``VmHWM``. (``ru_maxrss`` would keep the high-water
    mark of the parent's forked image across ``exec``: a floor that is not ours.)"""
    return _status_mb("VmHWM")


class RssTrace:
    """RSS at chosen batches of an epoch (1,000 and every tenth of ``n_batches``) and at its end; a
    watchdog thread stops the process (exit 3, the trace so far written to ``trace_file``) once RSS
    passes ``cap_mb``."""

    def __init__(self, n_batches, cap_mb, trace_file):
        self.samples = []  # (batch, rss MB)
        self.marks = {1000} | {max(1, round(n_batches * k / 10)) for k in range(1, 10)}
        self.cap_mb, self.trace_file, self.batches = cap_mb, trace_file, 0
        self._stop = threading.Event()
        threading.Thread(target=self._watch, daemon=True).start()

    def batch_done(self):
        self.batches += 1
        if self.batches in self.marks:
            self.samples.append((self.batches, rss_mb()))

    def end(self):
        self.samples.append((self.batches, rss_mb()))
        self._stop.set()

    def _watch(self):
        while not self._stop.wait(0.5):
            if rss_mb() > self.cap_mb:
                Path(self.trace_file).write_text(json.dumps({"over_cap_at_batch": self.batches,
                                                             "rss_mb": rss_mb(), "trace": self.samples}))
                os._exit(EXIT_OVER_CAP)


class TracedBatches:
    """A training loader's batches, each counted into an :class:`RssTrace`; counts the targets."""

    def __init__(self, loader, target_field, trace, cap_batches=0):
        self.loader, self.target_field, self.trace, self.cap = loader, target_field, trace, cap_batches
        self.shuffle = loader.shuffle
        self.targets = 0

    def __iter__(self):
        for number, batch in enumerate(self.loader, start=1):
            self.targets += int((batch[self.target_field] > 0).sum()) if self.target_field else len(batch)
            yield batch
            self.trace.batch_done()
            if self.cap and number >= self.cap:
                return

    def __len__(self):
        return len(self.loader) if not self.cap else min(self.cap, len(self.loader))


# ------------------------------------------------------------------ the split, for the official
def session_split_events(inter_file):
    """(training events, test events) of the log as ``session_split`` with 1 test and 1 validation
    day makes them (GRU4Rec's rules: the validation day counted back from the last event before the
    test sessions, the test events kept whose item a training or validation session holds), in the
    official's columns (``SessionId``, ``ItemId``, ``Time``), sorted by session and time; and the
    fingerprint of the training targets. (The official, given the training sessions' item map,
    drops the test events whose item only validation sessions hold; ours ranks them last.)"""
    import pandas as pd

    frame = pd.read_csv(inter_file, sep="\t", engine="c", dtype={"session_id:token": np.int64,
                                                                 "item_id:token": np.int64, "timestamp:float": np.float64})
    frame.columns = ["SessionId", "ItemId", "Time"]
    frame.sort_values(["SessionId", "Time"], kind="stable", inplace=True)
    end = frame.groupby("SessionId")["Time"].transform("max").to_numpy()
    is_test = end >= float(frame["Time"].max()) - SECONDS_PER_DAY
    before_test = frame[~is_test]
    valid_start = float(before_test["Time"].max()) - SECONDS_PER_DAY
    train = before_test[end[~is_test] < valid_start]
    test = frame[is_test]
    test = test[test["ItemId"].isin(np.unique(before_test["ItemId"].to_numpy()))]
    test = test[test.groupby("SessionId")["SessionId"].transform("size") >= 2]
    sessions = train["SessionId"].to_numpy()
    first, _ = user_spans(sessions)
    is_target = np.ones(len(sessions), dtype=bool)
    is_target[first] = False
    return train.reset_index(drop=True), test.reset_index(drop=True), target_fingerprint(train["ItemId"].to_numpy()[is_target])


def target_fingerprint(item_tokens):
    """(count, Σ token, Σ token²) of the target item tokens: equal multisets give equal tuples."""
    tokens = np.asarray(item_tokens, dtype=np.int64)
    return [len(tokens), int(tokens.sum()), int((tokens * tokens).sum())]


# ------------------------------------------------------------------ child processes
def _recbole_config(spec, model, settings):
    from recbole.config import Config

    return Config(model=model, dataset=NAME, config_dict={
        "data_path": spec["data_dir"], "USER_ID_FIELD": "session_id", "ITEM_ID_FIELD": "item_id",
        "TIME_FIELD": "timestamp", "load_col": {"inter": ["session_id", "item_id", "timestamp"]},
        "normalize_all": False, "eval_protocol": "session_split", "test_days": 1, "valid_days": 1,
        "metrics": ["Recall", "MRR"], "topk": [20], "valid_metric": "MRR@20", "eval_memory_mb": 512,
        "show_progress": False, "state": "ERROR", "device": "cpu", "use_gpu": False, "seed": spec["seed"],
        "checkpoint_dir": os.path.join(spec["work"], "saved"), **settings})  # removed with the run's folder


def child_ours(spec):
    """DwellGRU4Rec, session mode: build, one full epoch traced, optionally the test."""
    import torch

    torch.set_num_threads(spec["threads"])
    from recbole.data import create_dataset, data_preparation
    from recbole.utils import get_model, get_trainer, init_seed

    from recbole_ext.data.lean import held_bytes

    rss_import = rss_mb()
    settings = {"dwell_mode": "none", "num_layers": 1, "dropout_prob": 0.0, "hidden_projection": False,
                "loss_type": "XE-sampled", "n_sample": spec["n_sample"], "sample_alpha": spec["sample_alpha"],
                "learner": "adagrad", "learning_rate": spec["learning_rate"], "train_mode": "session",
                "train_batch_size": spec["batch"], "embedding_size": spec["units"], "hidden_size": spec["units"],
                "epochs": 1}
    start = time.perf_counter()
    config = _recbole_config(spec, "DwellGRU4Rec", settings)
    init_seed(spec["seed"], True)
    dataset = create_dataset(config)
    train, _, test = data_preparation(config, dataset)
    build = time.perf_counter() - start
    result = {"build_s": build, "rss_import_mb": rss_import, "rss_built_mb": rss_mb(), "peak_built_mb": peak_rss_mb(),
              "held_bytes": held_bytes([train._dataset.inter_feat, test._dataset.inter_feat]),
              "catalogue": int(dataset.item_num - 1), "epoch_targets": train._dataset.n_training_targets(),
              "test_cases": test._dataset.inter_feat.n_targets()}
    if spec["build_only"]:
        result.update(trace=[], peak_mb=peak_rss_mb(), target_fingerprint=_fingerprint_of(dataset, train))
        return result
    init_seed(spec["seed"], True)
    model = get_model("DwellGRU4Rec")(config, train._dataset)
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
    trace = RssTrace(len(train), spec["cap_mb"], spec["trace_file"])
    batches = TracedBatches(train, train._dataset.target_field, trace)
    model.train()
    start = time.perf_counter()
    trainer._train_epoch(batches, 0, show_progress=False)
    result["epoch_s"] = time.perf_counter() - start
    trace.end()
    result.update(trained_targets=batches.targets, trace=trace.samples, peak_mb=peak_rss_mb())
    if spec["evaluate"]:
        start = time.perf_counter()
        tested = trainer.evaluate(test, load_best_model=False, show_progress=False)
        result.update(recall20=tested["recall@20"], mrr20=tested["mrr@20"], test_s=time.perf_counter() - start,
                      peak_tested_mb=peak_rss_mb())
    result["target_fingerprint"] = _fingerprint_of(dataset, train)  # after the peaks: no part of training
    return result


def _fingerprint_of(dataset, train):
    token_of_id = np.array([0] + [int(token) for token in dataset.field2id_token["item_id"][1:]], dtype=np.int64)
    return target_fingerprint(token_of_id[train._dataset._targets().numpy()])


def child_official(spec):
    """The official GRU4Rec: its set-up and one full epoch traced, optionally its evaluation."""
    import pandas as pd
    import torch

    torch.set_num_threads(spec["threads"])
    from benchmarks.official import load_evaluation, load_gru4rec

    official = load_gru4rec(spec["official"])
    rss_import = rss_mb()
    start = time.perf_counter()
    # as its run.py's load_data reads a TSV: ours' build reads a text file too
    data = pd.read_csv(spec["events_file"], sep="\t", usecols=["SessionId", "ItemId", "Time"],
                       dtype={"SessionId": "int32", "ItemId": "str"})
    read = time.perf_counter() - start
    n_batches = int(np.ceil((len(data) - data["SessionId"].nunique()) / spec["batch"]))  # about: rows run out unevenly
    trace = RssTrace(n_batches, spec["cap_mb"], spec["trace_file"])
    marks = _trace_official_epoch(official.SessionDataIterator, trace, stop_at_first_batch=spec["build_only"])
    torch.manual_seed(spec["seed"])
    np.random.seed(spec["seed"])
    gru = official.GRU4Rec(layers=[spec["units"]], loss="cross-entropy", batch_size=spec["batch"],
                           dropout_p_embed=0.0, dropout_p_hidden=0.0, learning_rate=spec["learning_rate"],
                           momentum=0.0, sample_alpha=spec["sample_alpha"], n_sample=spec["n_sample"],
                           constrained_embedding=True, n_epochs=1, device=torch.device("cpu"))
    buffer = io.StringIO()
    start = time.perf_counter()
    with contextlib.redirect_stdout(buffer), contextlib.suppress(SetUpDone):
        gru.fit(data)
    total = time.perf_counter() - start
    trace.end()
    if spec["build_only"]:
        return {"build_s": read + marks["first_batch_s"] - start, "read_s": read, "rss_import_mb": rss_import,
                "rss_built_mb": marks["rss_at_first_batch"], "peak_built_mb": marks["peak_at_first_batch"],
                "catalogue": int(gru.data_iterator.n_items), "trace": [], "peak_mb": peak_rss_mb()}
    epoch = [float(line.split("(")[1].split("s)")[0]) for line in buffer.getvalue().splitlines()
             if line.startswith("Epoch")]
    if len(epoch) != 1:
        raise RuntimeError(f"official fit printed no epoch time:\n{buffer.getvalue()}")
    result = {"build_s": read + total - epoch[0], "read_s": read, "epoch_s": epoch[0], "rss_import_mb": rss_import,
              "rss_built_mb": marks["rss_at_first_batch"], "peak_built_mb": marks["peak_at_first_batch"],
              "catalogue": int(gru.data_iterator.n_items), "epoch_targets": int(len(data) - data["SessionId"].nunique()),
              "trained_targets": marks["targets"], "trace": trace.samples, "peak_mb": peak_rss_mb()}
    if spec["evaluate"]:
        evaluation = load_evaluation(spec["official"])
        test = pd.read_csv(spec["test_file"], sep="\t", usecols=["SessionId", "ItemId", "Time"],
                           dtype={"SessionId": "int32", "ItemId": "str"})
        start = time.perf_counter()
        # its iterator needs at least a batch of sessions
        recall, mrr = evaluation.batch_eval(gru, test, cutoff=[20], mode="standard",
                                            batch_size=min(512, int(test["SessionId"].nunique())))
        result.update(recall20=float(recall[20]), mrr20=float(mrr[20]), test_s=time.perf_counter() - start,
                      test_cases=int(len(test) - test["SessionId"].nunique()), peak_tested_mb=peak_rss_mb())
    return result


class SetUpDone(Exception):
    """Raised at the official's first batch under ``--build-only``."""


def _trace_official_epoch(iterator_class, trace, stop_at_first_batch=False):
    """Count the official's training batches into ``trace`` and note the time and RSS at its first
    batch (its set-up done), raising :class:`SetUpDone` there if ``stop_at_first_batch``; wraps its
    iterator's ``__call__`` for the first call only (the training epoch)."""
    marks = {"targets": 0}
    original = iterator_class.__call__

    def traced(self, enable_neg_samples, reset_hook=None):
        if "rss_at_first_batch" in marks:  # the evaluation's iterator: not traced
            yield from original(self, enable_neg_samples, reset_hook)
            return
        marks["first_batch_s"] = time.perf_counter()
        marks["rss_at_first_batch"], marks["peak_at_first_batch"] = rss_mb(), peak_rss_mb()
        if stop_at_first_batch:
            raise SetUpDone
        for in_idx, out_idx in original(self, enable_neg_samples, reset_hook):
            yield in_idx, out_idx
            marks["targets"] += len(in_idx)  # one target per active row
            trace.batch_done()

    iterator_class.__call__ = traced
    return marks


def child_recbole(spec):
    """RecBole's GRU4Rec with or without lean_sequences: build, the first batches timed, the test."""
    import torch

    torch.set_num_threads(spec["threads"])
    from recbole.data import create_dataset, data_preparation
    from recbole.utils import get_model, get_trainer, init_seed

    rss_import = rss_mb()
    start = time.perf_counter()
    config = _recbole_config(spec, "GRU4Rec", {"lean_sequences": spec["lean"], "epochs": 1})
    init_seed(spec["seed"], True)
    dataset = create_dataset(config)
    train, _, test = data_preparation(config, dataset)
    build = time.perf_counter() - start
    result = {"build_s": build, "rss_import_mb": rss_import, "rss_built_mb": rss_mb(), "peak_built_mb": peak_rss_mb(),
              "epoch_batches": len(train), "epoch_targets": len(train._dataset), "catalogue": int(dataset.item_num - 1)}
    init_seed(spec["seed"], True)
    model = get_model("GRU4Rec")(config, train._dataset)
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
    trace = RssTrace(len(train), spec["cap_mb"], spec["trace_file"])
    batches = TracedBatches(train, None, trace, cap_batches=spec["batches"])
    model.train()
    start = time.perf_counter()
    trainer._train_epoch(batches, 0, show_progress=False)
    seconds = time.perf_counter() - start
    trace.end()
    tested = trainer.evaluate(test, load_best_model=False, show_progress=False)
    result.update(timed_batches=spec["batches"], timed_s=seconds, trained_targets=batches.targets,
                  epoch_s_extrapolated=seconds / spec["batches"] * len(train), trace=trace.samples,
                  peak_mb=peak_rss_mb(), recall20=tested["recall@20"], mrr20=tested["mrr@20"])
    return result


CHILDREN = {"ours": child_ours, "official": child_official, "recbole": child_recbole}


def run_child(kind, spec, work):
    """Run one measurement in a fresh interpreter; returns its result dict (or the over-cap record)."""
    spec = {**spec, "work": str(work), "trace_file": str(work / f"trace-{kind}-{time.monotonic_ns()}.json")}
    spec_file = work / f"spec-{kind}-{time.monotonic_ns()}.json"
    spec_file.write_text(json.dumps(spec), encoding="utf-8")
    env = {**os.environ, "OMP_NUM_THREADS": str(spec["threads"]), "MKL_NUM_THREADS": str(spec["threads"])}
    done = subprocess.run([sys.executable, "-m", "benchmarks.scaling", "--child", kind, str(spec_file)],
                          check=False, cwd=REPO, env=env, capture_output=True, text=True)
    spec_file.unlink()
    if done.returncode == EXIT_OVER_CAP:
        return {"over_cap": True, **json.loads(Path(spec["trace_file"]).read_text())}
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
        raise DataError(f"--out {out} holds {', '.join(others[:3])}, not only {', '.join(RESULT_FILES)}; "
                        "--overwrite replaces only those: move it away yourself")


def write_results(out, rows, traces, summary, overwrite):
    """Write the result files in a staging folder beside ``out`` and rename it into place; a replaced
    ``out`` is moved aside and only its result files deleted, by name."""
    check_out(out, overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.staging-", dir=out.parent))
    new, replaced = staging / "new", staging / "replaced"
    new.mkdir()
    for name, table in (("runs.csv", rows), ("traces.csv", traces)):
        columns = list(dict.fromkeys(key for row in table for key in row))
        with open(new / name, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=columns)
            writer.writeheader()
            writer.writerows(table)
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


def _row(size, contender, result):
    row = {"events": size, "contender": contender}
    if result.get("over_cap"):
        return {**row, "over_cap_at_batch": result["over_cap_at_batch"], "rss_at_stop_mb": round(result["rss_mb"])}
    above = result["peak_built_mb"] - result["rss_import_mb"]
    row.update({key: result[key] for key in ("catalogue", "epoch_targets", "trained_targets") if key in result})
    row.update({
        "build_s": round(result["build_s"], 2), "rss_import_mb": round(result["rss_import_mb"]),
        "rss_built_mb": round(result["rss_built_mb"]), "peak_built_mb": round(result["peak_built_mb"]),
        "bytes_per_event_built": round(above * 2**20 / size, 1), "peak_mb": round(result["peak_mb"]),
    })
    trace = dict(result["trace"])
    if 1000 in trace:
        row["rss_batch_1000_mb"] = round(trace[1000])
        row["rss_end_mb"] = round(result["trace"][-1][1])
        row["growth_after_1000"] = round(result["trace"][-1][1] / trace[1000] - 1, 4)
    if "epoch_s" in result:
        row.update(epoch_s=round(result["epoch_s"], 1),
                   events_per_s=round(result["trained_targets"] / result["epoch_s"], 1))
    for key in ("read_s", "held_bytes", "timed_batches", "timed_s", "epoch_batches", "epoch_s_extrapolated", "recall20",
                "mrr20", "test_s", "test_cases", "peak_tested_mb"):
        if key in result:
            row[key] = round(result[key], 6) if isinstance(result[key], float) else result[key]
    return row


def summarize(rows, args, command, loads):
    lines = [
        "# Memory and training cost as an RSC15-shaped log grows",
        "",
        (f"Machine: {os.cpu_count()} CPU cores ({platform.processor() or platform.machine()}), 24 GB, shared "
         f"(load average over 1 min: {loads[0]:.1f} at the start, {loads[1]:.1f} at the end); "
         f"torch {__import__('torch').__version__}, {args.threads} thread per contender, CPU only."),
        f"Command: `{command}`",
        "",
        (f"Session mode: batch {args.batch}, {args.units} units, XE-sampled with {args.n_sample} negatives, alpha "
         f"{args.sample_alpha}, Adagrad {args.learning_rate}; "
         + ("each stopped once its data was set up (--build-only)" if args.build_only else "one full epoch each")
         + "; split: session_split (1 test day, 1 validation day)."),
        "",
        ("| events | contender | build s | RSS after build MB | peak after build MB | bytes/event above imports | "
         "events/s | RSS at batch 1,000 MB | RSS at end MB | growth | peak MB | Recall@20 | MRR@20 |"),
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        if row["contender"] not in ("ours", "official"):
            continue
        if "over_cap_at_batch" in row:
            lines.append(f"| {row['events']:,} | {row['contender']} | stopped at batch {row['over_cap_at_batch']:,}: "
                         f"RSS {row['rss_at_stop_mb']:,} MB > {args.memory_cap_gb} GB cap | | | | | | | | | | |")
            continue
        build = f"{row['build_s']:.1f}" + (f" (read {row['read_s']:.1f})" if "read_s" in row else "")
        lines.append(
            f"| {row['events']:,} | {row['contender']} | {build} | {row['rss_built_mb']:,} | "
            f"{row['peak_built_mb']:,} | {row['bytes_per_event_built']:.0f} | "
            + (f"{row['events_per_s']:,.0f}" if "events_per_s" in row else "") + " | "
            f"{row.get('rss_batch_1000_mb', '')} | {row.get('rss_end_mb', '')} | "
            + (f"{100 * row['growth_after_1000']:+.1f}%" if "growth_after_1000" in row else "") + f" | {row['peak_mb']:,} | "
            f"{row.get('recall20', float('nan')):.4f} | {row.get('mrr20', float('nan')):.4f} |")
    recbole = [row for row in rows if row["contender"].startswith("recbole")]
    if recbole:
        lines += ["", (f"RecBole's GRU4Rec (its defaults: CE over all items, batch 2048, MAX_ITEM_LIST_LENGTH 50), "
                       f"the first {args.recbole_batches} training batches timed, then tested:"), "",
                  ("| events | lean_sequences | build s | peak after build MB | peak MB | s for timed batches | "
                   "s/epoch (extrapolated) | Recall@20 | MRR@20 |"), "|---|---|---|---|---|---|---|---|---|"]
        for row in recbole:
            if "over_cap_at_batch" in row:
                lines.append(f"| {row['events']:,} | {row['contender']} | over the cap | | | | | | |")
                continue
            lines.append(f"| {row['events']:,} | {row['contender'].endswith('lean')} | {row['build_s']:.1f} | "
                         f"{row['peak_built_mb']:,} | {row['peak_mb']:,} | {row['timed_s']:.1f} | "
                         f"{row['epoch_s_extrapolated']:.0f} | {row['recall20']:.4f} | {row['mrr20']:.4f} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--official", required=True, help="checkout of hidasib/GRU4Rec_PyTorch_Official")
    parser.add_argument("--out", required=True)
    parser.add_argument("--sizes", type=int, nargs="*", default=[3_000_000, 10_000_000, 31_700_000],
                        help="events in each generated log (ours vs the official)")
    parser.add_argument("--evaluate", type=int, nargs="*", default=[31_700_000],
                        help="sizes at which both are tested after their epoch")
    parser.add_argument("--contenders", nargs="+", choices=["ours", "official"], default=["ours", "official"],
                        help="who trains at --sizes (the training-target check needs ours)")
    parser.add_argument("--recbole-sizes", type=int, nargs="*", default=[],
                        help="sizes for RecBole's GRU4Rec with and without lean_sequences")
    parser.add_argument("--recbole-batches", type=int, default=100)
    parser.add_argument("--items", type=int, default=37483)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--units", type=int, default=64)
    parser.add_argument("--n-sample", type=int, default=2048)
    parser.add_argument("--sample-alpha", type=float, default=0.5)
    parser.add_argument("--learning-rate", type=float, default=0.05)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--memory-cap-gb", type=float, default=16.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--build-only", action="store_true", help="stop each contender once its data is set up")
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)
    for key in ("items", "batch", "units", "threads", "recbole_batches"):
        if getattr(args, key) < 1:
            parser.error(f"--{key.replace('_', '-')}: {getattr(args, key)} is not allowed; use a positive integer")
    if any(size < 2 for size in args.sizes + args.recbole_sizes):
        parser.error("--sizes and --recbole-sizes are event counts of at least 2")
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
    shared = {"threads": args.threads, "official": str(official_dir), "seed": args.seed, "batch": args.batch,
              "units": args.units, "n_sample": args.n_sample, "sample_alpha": args.sample_alpha,
              "learning_rate": args.learning_rate, "cap_mb": args.memory_cap_gb * 1024, "build_only": args.build_only}
    rows, traces, load_at_start = [], [], os.getloadavg()[0]
    work = Path(tempfile.mkdtemp(prefix="scaling-"))
    try:
        for size in sorted(set(args.sizes) | set(args.recbole_sizes)):
            log_dir = work / f"events-{size}"
            subprocess.run([sys.executable, "-m", "recbole_ext.data.synth", "--shape", "rsc15", "--events", str(size),
                            "--items", str(args.items), "--seed", str(args.seed), "--out", str(log_dir),
                            "--name", NAME], check=True, cwd=REPO, stdout=subprocess.DEVNULL)
            data_dir = str(log_dir)
            if size in args.sizes:
                train, test, official_targets = session_split_events(log_dir / NAME / f"{NAME}.inter")
                events_file, test_file = log_dir / "official-train.tsv", log_dir / "official-test.tsv"
                train.to_csv(events_file, sep="\t", index=False)
                test.to_csv(test_file, sep="\t", index=False)
                test_cases = int(len(test) - test["SessionId"].nunique())
                del train, test
                spec = {**shared, "data_dir": data_dir, "events_file": str(events_file), "test_file": str(test_file),
                        "evaluate": size in args.evaluate}
                for kind in args.contenders:
                    result = run_child(kind, spec, work)
                    checked = kind == "ours" and not result.get("over_cap")
                    if checked and (result["target_fingerprint"] != official_targets
                                    or result["test_cases"] != test_cases):
                        raise RuntimeError(f"size {size}: the official's training targets {official_targets} and "
                                           f"{test_cases} test cases differ from ours {result['target_fingerprint']}, "
                                           f"{result['test_cases']}")
                    rows.append(_row(size, kind, result))
                    traces += [{"events": size, "contender": kind, "batch": batch, "rss_mb": round(rss)}
                               for batch, rss in result.get("trace", [])]
                    print(json.dumps(rows[-1]), flush=True)
            for lean in (False, True) if size in args.recbole_sizes else ():
                result = run_child("recbole", {**shared, "data_dir": data_dir, "lean": lean,
                                               "batches": args.recbole_batches}, work)
                rows.append(_row(size, "recbole-lean" if lean else "recbole-stock", result))
                print(json.dumps(rows[-1]), flush=True)
            shutil.rmtree(log_dir)  # our own temporary log
    finally:
        shutil.rmtree(work, ignore_errors=True)  # the temporary folder made above, with RecBole's log/
    summary = summarize(rows, args, command, (load_at_start, os.getloadavg()[0]))
    write_results(out, rows, traces, summary, args.overwrite)
    print(summary)
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        child_spec = json.loads(Path(sys.argv[3]).read_text(encoding="utf-8"))
        os.chdir(child_spec["work"])
        print(json.dumps(CHILDREN[sys.argv[2]](child_spec)))
        sys.exit(0)
    sys.exit(main())
