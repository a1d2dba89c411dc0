"""benchmark.py: run specs, the summary tables and t-tests, and a tiny end-to-end comparison."""

import csv

import pytest
from scipy import stats

import benchmark as benchmark_cli
import recbole_ext
from recbole_ext import benchmark


def test_run_specs_with_labels_and_overrides():
    assert benchmark.parse_runs("GRU4Rec, untied=RNNCCE:weight_tying=False:hidden_size=200") == {
        "GRU4Rec": ("GRU4Rec", {}),
        "untied": ("RNNCCE", {"weight_tying": False, "hidden_size": 200}),
    }
    with pytest.raises(recbole_ext.ConfigError, match="'hidden_size' in 'x=RNNCCE:hidden_size' is not key=value"):
        benchmark.parse_runs("x=RNNCCE:hidden_size")
    with pytest.raises(recbole_ext.ConfigError, match="label 'A' is given twice"):
        benchmark.parse_runs("A=RNNCCE,A=GRU4Rec")


def fake(label, seed, ndcg, share, status="ok"):
    test = {"ndcg@10": ndcg, "blockbustershare@10": share} if status == "ok" else {}
    return {"label": label, "model": label, "seed": seed, "status": status, "error": "" if status == "ok" else "boom",
            "epochs": 3, "seconds": 1.0, "valid": dict(test), "test": test, "curve": [(1, 0.5, 0.1), (2, 1.0, 0.2)]}


RECORDS = [
    fake("A", 1, 0.30, 0.5), fake("A", 2, 0.32, 0.4), fake("A", 3, 0.31, 0.6),
    fake("Base", 1, 0.20, 0.3), fake("Base", 2, 0.25, 0.2), fake("Base", 3, 0.21, 0.1),
    fake("Bad", 1, 0, 0, status="failed"),
]


def test_summary_means_stds_best_and_paired_t_tests():
    summary, metrics, best = benchmark.summarize(RECORDS, "Base", smaller_metrics=["blockbustershare"])
    rows = {row["label"]: row for row in summary}
    assert rows["A"]["ndcg@10"] == pytest.approx((0.31, 0.01))
    assert rows["A"]["p(ndcg@10)"] == pytest.approx(stats.ttest_rel([0.30, 0.32, 0.31], [0.20, 0.25, 0.21]).pvalue)
    assert rows["Base"]["p(ndcg@10)"] is None
    assert rows["Bad"]["runs"] == 0 and rows["Bad"]["failed"] == 1 and rows["Bad"]["ndcg@10"] is None
    assert best == {"ndcg@10": "A", "blockbustershare@10": "Base"}  # lower is better for the share


def test_tables_mark_the_best_and_keep_failed_runs(tmp_path):
    summary, metrics, best = benchmark.summarize(RECORDS, "Base", smaller_metrics=["blockbustershare"])
    benchmark.write_outputs(RECORDS, summary, metrics, best, "Base", tmp_path)
    md = (tmp_path / "summary.md").read_text()
    # p-values: scipy.stats.ttest_rel([.5, .4, .6], [.3, .2, .1]) = 0.0955, ([.30, .32, .31], [.20, .25, .21]) = 0.0121
    assert "| A | 3 (0) | 0.5000 ± 0.1000 (p=0.0955) | **0.3100 ± 0.0100** (p=0.0121) |" in md
    assert "| Bad | 0 (1) | – | – |" in md and "- Bad seed 1: boom" in md
    assert "\\textbf{0.3100 $\\pm$ 0.0100}" in (tmp_path / "summary.tex").read_text()
    with open(tmp_path / "results.csv") as f:
        assert [row["status"] for row in csv.DictReader(f)] == ["ok"] * 6 + ["failed"]
    assert (tmp_path / "valid_vs_epoch.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "valid_vs_time.png").stat().st_size > 0


def test_two_models_two_seeds_end_to_end(tmp_path, tiny_data_path, capsys):
    config = tmp_path / "tiny.yaml"
    config.write_text(f"data_path: {tiny_data_path}\nload_col:\n  inter: [user_id, item_id, timestamp]\n")
    code = benchmark_cli.main([
        "--models=RNNCCE:embedding_size=8:hidden_size=8,GRU4Rec:embedding_size=8:hidden_size=8,Broken=RNNCCE:rnn_type=FOO",
        "--dataset=ml-tiny", f"--config_files={config}", "--seeds=2", "--baseline=GRU4Rec:embedding_size=8:hidden_size=8",
        f"--out={tmp_path / 'out'}", "--epochs=1", "--state=ERROR", "--show_progress=False",
        "--metrics=['NDCG','SPS','BlockbusterShare']", "--valid_metric=NDCG@10",
    ])
    assert code == 0
    with open(tmp_path / "out" / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["label"].split(":")[0], r["seed"], r["status"]) for r in rows] == [
        ("RNNCCE", "2020", "ok"), ("RNNCCE", "2021", "ok"), ("GRU4Rec", "2020", "ok"), ("GRU4Rec", "2021", "ok"),
        ("Broken", "2020", "failed"), ("Broken", "2021", "failed"),
    ]
    assert all(0.0 <= float(r["test/sps@10"]) <= 1.0 for r in rows if r["status"] == "ok")
    for name in ("summary.md", "summary.csv", "summary.tex", "curves.csv", "valid_vs_epoch.png", "valid_vs_time.png"):
        assert (tmp_path / "out" / name).stat().st_size > 0
    assert "rnn_type: 'FOO' is not allowed" in (tmp_path / "out" / "summary.md").read_text()


def test_unknown_model_stops_before_any_run(tmp_path, capsys):
    assert benchmark_cli.main(["--models=GRU4Rec,NoSuchModel", f"--out={tmp_path / 'out'}"]) == 2
    assert "unknown model 'NoSuchModel'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
