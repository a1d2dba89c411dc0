"""Faults that lose nothing: ``run``, ``benchmark``, ``convert`` and ``synth`` killed with SIGKILL at
planted points (the Nth batch, part-way through the Nth file write, just before or after a rename)
and writing to a full disk (``RLIMIT_FSIZE``), each in a child process (tests/fault_child.py). After
each fault every output file is complete or absent (checkpoints load weights-only, CSVs parse,
dataset folders hold both files or none); the same command then runs again without any cleanup,
and leaves no staging file behind. A killed ``run`` resumed with ``--resume`` ends with the weights of
an uninterrupted run. (``hyper`` and writers at once: tests/test_faults_search.py.)"""

import os
import re

import pandas as pd
import torch

from recbole_ext.data import synth
from tests.fault_checks import (
    KILLED,
    check_csv,
    check_dataset_folder,
    check_outputs,
    child,
    last_line,
    leftovers,
    load_checkpoint,
)


def run_args(data_path, *extra):
    return ["--model=RNNCCE", "--dataset=ml-tiny", f"--data_path={data_path}",
            "--load_col={'inter': ['user_id', 'item_id', 'timestamp']}", "--embedding_size=8", "--hidden_size=8",
            "--train_batch_size=256", "--eval_batch_size=256", "--show_progress=False", "--state=ERROR", *extra]


# ---------------------------------------------------------------- run


def test_a_killed_run_resumed_ends_with_the_weights_of_an_uninterrupted_run(tmp_path, tiny_data_path):
    args = run_args(tiny_data_path, "--epochs=4")
    code, whole_out, err = child("run", *args, cwd=tmp_path / "whole", env={"FAULT_WEIGHTS": "weights.pt"})
    assert code == 0, err

    work = tmp_path / "killed"
    saved = work / "saved"
    # killed in the third epoch: the state after the second is saved
    code, _, _ = child("run", *args, cwd=work, env={"FAULT_KILL": "batch:5:epoch2"})
    assert code == KILLED
    (resume,) = saved.glob("*.resume.pth")
    assert load_checkpoint(resume)["epoch"] == 1  # weights-only, like every file in saved/
    assert sorted(check_outputs(saved)) == sorted([resume.name, resume.name.replace(".resume.pth", ".pth")])
    resume_arg = f"--resume={resume.relative_to(work)}"

    # resumed, then killed again with its second write complete but not yet renamed into place
    code, _, _ = child("run", resume_arg, cwd=work, env={"FAULT_KILL": "rename:2"})
    assert code == KILLED
    assert len(leftovers(work)) == 1 and len(check_outputs(saved)) == 2

    code, out, err = child("run", resume_arg, cwd=work, env={"FAULT_WEIGHTS": "weights.pt"})
    assert code == 0, err
    assert leftovers(work) == []
    (best,) = saved.iterdir()  # the resume state is removed once the run is tested
    assert best.name == resume.name.replace(".resume.pth", ".pth")
    # Tolerance: none. The continued run draws the same random numbers (Python, numpy, torch, the
    # loader's generator) and does the same float operations in the same order on the same CPU.
    whole = torch.load(tmp_path / "whole" / "weights.pt", weights_only=True)
    resumed = torch.load(work / "weights.pt", weights_only=True)
    assert whole.keys() == resumed.keys() and all(torch.equal(whole[k], resumed[k]) for k in whole)
    (whole_best,) = (tmp_path / "whole" / "saved").iterdir()
    best_weights, whole_best_weights = load_checkpoint(best)["state_dict"], load_checkpoint(whole_best)["state_dict"]
    assert all(torch.equal(best_weights[k], whole_best_weights[k]) for k in whole_best_weights)
    assert out.splitlines()[-2:] == whole_out.splitlines()[-2:]  # best valid and test result


def test_a_run_that_cannot_write_its_checkpoint_leaves_none_and_runs_again(tmp_path, tiny_data_path):
    args = run_args(tiny_data_path, "--epochs=2")
    saved = tmp_path / "saved"
    # a full disk: no file may grow beyond 64 KiB; the checkpoint takes ~140 KiB
    code, _, err = child("run", *args, cwd=tmp_path, env={"FAULT_FSIZE": "65536"})
    assert code == 1
    assert re.fullmatch(r"python -m recbole_ext run: error: cannot write saved/RNNCCE-[\w-]+\.pth: "
                        r"File too large; nothing was written", last_line(err)), err
    assert os.listdir(saved) == []

    # killed with half of its first checkpoint on disk
    code, _, _ = child("run", *args, cwd=tmp_path, env={"FAULT_KILL": "write:1"})
    assert code == KILLED
    assert check_outputs(saved) == [] and len(leftovers(tmp_path)) == 1

    code, _, err = child("run", *args, cwd=tmp_path)
    assert code == 0, err
    assert leftovers(tmp_path) == [] and len(check_outputs(saved)) == 1


# ---------------------------------------------------------------- benchmark

OUTPUTS = ["curves.csv", "results.csv", "summary.csv", "summary.md", "summary.tex", "valid_vs_epoch.png",
           "valid_vs_time.png"]


def test_a_killed_benchmark_runs_again_and_a_failed_write_keeps_the_earlier_file(tmp_path, tiny_data_path):
    args = ["--models=a=RNNCCE:hidden_size=8,b=RNNCCE:hidden_size=4", "--seeds=1", "--out=out",
            *run_args(tiny_data_path, "--epochs=1")[1:]]
    temporary = tmp_path / "tmp"  # the runs' temporary checkpoint folders
    temporary.mkdir()
    env = {"TMPDIR": str(temporary)}
    out = tmp_path / "out"

    # killed while training: nothing written yet; the run's temporary checkpoint folder is left
    code, _, _ = child("benchmark", *args, cwd=tmp_path, env={**env, "FAULT_KILL": "batch:3:epoch0"})
    assert code == KILLED
    assert check_outputs(out) == [] and len(run_folders(temporary)) == 1

    # killed part-way through the second plot: what was written before is whole, results.csv not yet
    code, _, _ = child("benchmark", *args, cwd=tmp_path, env={**env, "FAULT_KILL": "write:1:valid_vs_time.png"})
    assert code == KILLED
    assert check_outputs(out) == ["curves.csv", "summary.csv", "summary.md", "summary.tex", "valid_vs_epoch.png"]
    assert leftovers(tmp_path) == [f"out/{name}" for name in os.listdir(out) if name.startswith(".valid_vs_time")]
    before = (out / "valid_vs_epoch.png").read_bytes()

    # a full disk while writing the plots: one error line, the earlier plot kept as it was
    code, _, err = child("benchmark", *args, cwd=tmp_path, env={**env, "FAULT_FSIZE": "4096:1:*.png"})
    assert code == 1
    assert last_line(err) == ("python -m recbole_ext benchmark: error: cannot write out/valid_vs_epoch.png: "
                              "File too large; the earlier file is kept")
    assert (out / "valid_vs_epoch.png").read_bytes() == before and "results.csv" not in os.listdir(out)

    code, _, err = child("benchmark", *args, cwd=tmp_path, env=env)
    assert code == 0, err
    assert check_outputs(out) == OUTPUTS
    assert leftovers(tmp_path) == [] and run_folders(temporary) == []
    assert [row[3] for row in check_csv(out / "results.csv")] == ["status", "ok", "ok"]


def run_folders(folder):
    """The temporary checkpoint folders of benchmark runs (recbole_ext.training.prepared_run)."""
    return [name for name in os.listdir(folder) if name.startswith("recbole-ext-run-")]


# ---------------------------------------------------------------- convert and synth


def write_rsc15_log(path):
    sessions, items, times = synth.generate(150, n_items=40, seed=1)
    stamps = [f"{s},{pd.Timestamp(int(t), unit='s').isoformat()}Z,{i},0" for s, i, t in zip(sessions, items, times)]
    path.write_text("\n".join(stamps) + "\n")


def test_a_killed_conversion_leaves_the_dataset_whole_or_absent_and_loses_no_earlier_dataset(tmp_path):
    write_rsc15_log(tmp_path / "clicks.dat")
    data = tmp_path / "data"
    data.mkdir()
    (data / "other.txt").write_text("not ours")
    args = ["rsc15", "clicks.dat", "data", "--name=rsc", "--min_item_support=1"]

    # killed part-way through the .inter file: no dataset folder, a staging folder left
    code, _, _ = child("convert", *args, cwd=tmp_path, env={"FAULT_KILL": "write:1:rsc.inter"})
    assert code == KILLED
    assert not check_dataset_folder(data / "rsc", "rsc") and len(leftovers(tmp_path)) == 1

    code, out, err = child("convert", *args, cwd=tmp_path)
    assert code == 0, err
    assert check_dataset_folder(data / "rsc", "rsc") and leftovers(tmp_path) == []
    earlier = (data / "rsc" / "rsc.inter").read_bytes()

    # --overwrite killed between moving the earlier dataset aside and moving the new one in: the
    # folder is absent, the earlier dataset waits in the staging folder
    overwrite = [*args, "--min_session_length=3", "--overwrite"]
    code, _, _ = child("convert", *overwrite, cwd=tmp_path, env={"FAULT_KILL": "rename:2"})
    assert code == KILLED
    assert not check_dataset_folder(data / "rsc", "rsc") and len(leftovers(tmp_path)) == 1
    # the next command puts it back before anything else (this one then refuses to overwrite it)
    code, _, err = child("convert", *args, cwd=tmp_path)
    assert code == 2 and "already exists; pass --overwrite" in last_line(err)
    assert (data / "rsc" / "rsc.inter").read_bytes() == earlier and leftovers(tmp_path) == []

    code, _, err = child("convert", *overwrite, cwd=tmp_path)
    assert code == 0, err
    assert check_dataset_folder(data / "rsc", "rsc") and (data / "rsc" / "rsc.inter").read_bytes() != earlier
    assert sorted(os.listdir(data)) == ["other.txt", "rsc"] and (data / "other.txt").read_text() == "not ours"


def test_a_killed_generator_leaves_the_dataset_whole_or_absent(tmp_path):
    args = ["--out=data", "--name=gen", "--sessions=200", "--seed=3"]
    code, _, err = child("synth", *args, cwd=tmp_path, env={"FAULT_FSIZE": "1024"})
    assert code == 1
    assert last_line(err) == "synth: error: cannot write data/gen: File too large; nothing was written"
    # killed with the .inter file whole and half of the YAML on disk
    code, _, _ = child("synth", *args, cwd=tmp_path, env={"FAULT_KILL": "write:1:gen.yaml"})
    assert code == KILLED
    assert not check_dataset_folder(tmp_path / "data" / "gen", "gen") and len(leftovers(tmp_path)) == 1

    code, out, err = child("synth", *args, cwd=tmp_path)
    assert code == 0, err
    assert check_dataset_folder(tmp_path / "data" / "gen", "gen") and leftovers(tmp_path) == []
