"""benchmark.py: run specs, the summary tables and t-tests, and a tiny end-to-end comparison."""

import csv

import pytest
from scipy import stats


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


def test_baselines_one_for_all_pairs_or_both():
    labels = ["tied50", "untied50", "tied100", "untied100", "GRU4Rec"]
    assert benchmark.parse_baselines("GRU4Rec", labels) == {
        "tied50": "GRU4Rec", "untied50": "GRU4Rec", "tied100": "GRU4Rec", "untied100": "GRU4Rec", "GRU4Rec": None}
    assert benchmark.parse_baselines("tied50:untied50,tied100:untied100", labels) == {
        "tied50": "untied50", "untied50": None, "tied100": "untied100", "untied100": None, "GRU4Rec": None}
    assert benchmark.parse_baselines("GRU4Rec,tied50:untied50", labels)["tied50"] == "untied50"
    assert benchmark.parse_baselines("GRU4Rec,tied50:untied50", labels)["tied100"] == "GRU4Rec"
    assert benchmark.parse_baselines(None, labels)["tied50"] == "GRU4Rec"  # the last label by default
    assert benchmark.parse_baselines("A:x=1", ["A:x=1", "A"])["A"] == "A:x=1"  # a label may hold ':'
    with pytest.raises(recbole_ext.ConfigError, match="'tied50:GRU' is neither a label nor LABEL:BASELINE"):
        benchmark.parse_baselines("tied50:GRU", labels)
    with pytest.raises(recbole_ext.ConfigError, match="'GRU4Rec' and 'tied50' are both given as the baseline"):
        benchmark.parse_baselines("GRU4Rec,tied50", labels)


def test_summary_means_stds_best_and_paired_t_tests():
    summary, metrics, best = benchmark.summarize(RECORDS, "Base", smaller_metrics=["blockbustershare"])
    rows = {row["label"]: row for row in summary}
    assert metrics == ["blockbustershare@10", "ndcg@10"]
    assert rows["A"]["ndcg@10"] == pytest.approx((0.31, 0.01))
    assert rows["A"]["p(ndcg@10)"] == pytest.approx(stats.ttest_rel([0.30, 0.32, 0.31], [0.20, 0.25, 0.21]).pvalue)
    assert rows["Base"]["p(ndcg@10)"] is None and rows["Base"]["baseline"] is None
    assert rows["Bad"]["runs"] == 0 and rows["Bad"]["failed"] == 1 and rows["Bad"]["ndcg@10"] is None
    assert rows["A"]["epochs"] == 3 and rows["A"]["seconds"] == 1.0
    assert best == {"ndcg@10": {"A"}, "blockbustershare@10": {"Base"}}  # lower is better for the share


def test_pairwise_t_tests_use_the_seeds_both_labels_finished():
    records = [fake("A", 1, 0.30, 0.5), fake("A", 2, 0.32, 0.4), fake("A", 3, 0.31, 0.6), fake("A", 4, 0.9, 0.9),
               fake("B", 1, 0.20, 0.3), fake("B", 2, 0.25, 0.2), fake("B", 3, 0, 0, status="failed"),
               fake("B", 4, 0.21, 0.1), fake("C", 1, 0.1, 0.1), fake("C", 2, 0.1, 0.1)]
    summary, _, _ = benchmark.summarize(records, {"A": "B", "B": None, "C": "A"})
    rows = {row["label"]: row for row in summary}
    assert rows["A"]["p(ndcg@10)"] == pytest.approx(stats.ttest_rel([0.30, 0.32, 0.9], [0.20, 0.25, 0.21]).pvalue)
    assert rows["C"]["p(ndcg@10)"] == pytest.approx(stats.ttest_rel([0.1, 0.1], [0.30, 0.32]).pvalue)
    assert rows["B"]["p(ndcg@10)"] is None


def test_tables_mark_the_best_and_keep_failed_runs(tmp_path):
    summary, metrics, best = benchmark.summarize(RECORDS, "Base", smaller_metrics=["blockbustershare"])
    benchmark.write_outputs(RECORDS, summary, metrics, best, tmp_path)
    md = (tmp_path / "summary.md").read_text()
    p_share = stats.ttest_rel([0.5, 0.4, 0.6], [0.3, 0.2, 0.1]).pvalue  # 0.0955
    p_ndcg = stats.ttest_rel([0.30, 0.32, 0.31], [0.20, 0.25, 0.21]).pvalue  # 0.0121
    assert "p: paired t-test against Base" in md
    assert f"| A | 3 (0) | 0.5000 ± 0.1000 (p={p_share:.2g}) | **0.3100 ± 0.0100** (p={p_ndcg:.2g}) | 3 | 1 |" in md
    assert "| Base | 3 (0) | **0.2000 ± 0.1000** | 0.2200 ± 0.0265 | 3 | 1 |" in md
    assert "| Bad | 0 (1) | – | – | – | – |" in md and "- Bad seed 1: boom" in md
    tex = (tmp_path / "summary.tex").read_text()
    assert "\\textbf{0.3100 $\\pm$ 0.0100} ($p$=0.012)" in tex and tex.rstrip().endswith("\\end{tabular}")
    with open(tmp_path / "summary.csv") as f:
        a_row = next(row for row in csv.DictReader(f) if row["label"] == "A")
    assert float(a_row["p(ndcg@10)"]) == pytest.approx(p_ndcg) and a_row["baseline"] == "Base"
    with open(tmp_path / "results.csv") as f:
        assert [row["status"] for row in csv.DictReader(f)] == ["ok"] * 6 + ["failed"]
    assert (tmp_path / "valid_vs_epoch.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "valid_vs_time.png").read_bytes()[:4] == b"\x89PNG"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temp files left


def test_columns_pick_the_table_metrics_and_counts_get_one_decimal(tmp_path):
    records = [fake("A", 1, 0.30, 0.5), fake("A", 2, 0.32, 0.5), fake("B", 1, 0.2, 0.5), fake("B", 2, 0.2, 0.5)]
    for record, coverage in zip(records, (80.0, 87.0, 70.0, 71.0)):
        record["test"]["correctitemcoverage@10"] = coverage
    summary, metrics, best = benchmark.summarize(records, "B")
    benchmark.write_outputs(records, summary, metrics, best, tmp_path, columns=["correctitemcoverage@10", "ndcg@10"])
    md = (tmp_path / "summary.md").read_text()
    p_coverage = stats.ttest_rel([80, 87], [70, 71]).pvalue
    p_ndcg = stats.ttest_rel([0.30, 0.32], [0.2, 0.2]).pvalue
    assert "| model | runs (failed) | correctitemcoverage@10 | ndcg@10 | epochs | train s |" in md
    assert f"| A | 2 (0) | **83.5 ± 4.9** (p={p_coverage:.2g}) | **0.3100 ± 0.0141** (p={p_ndcg:.2g}) | 3 | 1 |" in md
    assert "| B | 2 (0) | 70.5 ± 0.7 | 0.2000 ± 0.0000 | 3 | 1 |" in md
    assert "blockbustershare" not in md and "blockbustershare@10 mean" in (tmp_path / "summary.csv").read_text()
    with pytest.raises(recbole_ext.ConfigError, match=r"\['ndcg@5'\] not reported by these runs"):
        benchmark.check_columns("ndcg@10,ndcg@5", set(metrics))


def test_results_are_summarized_again_from_the_csv_files(tmp_path, capsys):
    summary, metrics, best = benchmark.summarize(RECORDS, "Base", smaller_metrics=["blockbustershare"])
    benchmark.write_outputs(RECORDS, summary, metrics, best, tmp_path / "first")
    records = benchmark.read_results(tmp_path / "first")
    assert [(r["label"], r["seed"], r["status"], r["test"], r["curve"]) for r in records] == [
        (r["label"], r["seed"], r["status"], r["test"], r["curve"]) for r in RECORDS]
    assert benchmark.main([f"--from_results={tmp_path / 'first'}", "--baseline=A:Base,Base:A",
                               "--columns=ndcg@10", f"--out={tmp_path / 'again'}"]) == 0
    md = (tmp_path / "again" / "summary.md").read_text()
    assert "| Base | 3 (0) | A | 0.2200 ± 0.0265 (p=0.012) | 3 | 1 |" in md  # the vs column: per-label baselines
    assert benchmark.main([f"--from_results={tmp_path / 'first'}", "--models=A"]) == 2
    assert "['--models'] would be ignored" in capsys.readouterr().err


def test_two_models_two_seeds_end_to_end(tmp_path, tiny_data_path, capsys):
    config = tmp_path / "tiny.yaml"
    config.write_text(f"data_path: {tiny_data_path}\nload_col:\n  inter: [user_id, item_id, timestamp]\n")
    code = benchmark.main([
        "--models=RNNCCE=RNNCCE:embedding_size=8:hidden_size=8,GRU4Rec:embedding_size=8:hidden_size=8,Broken=RNNCCE:rnn_type=FOO",
        "--dataset=ml-tiny", f"--config_files={config}", "--seeds=2", "--baseline=GRU4Rec:embedding_size=8:hidden_size=8",
        f"--out={tmp_path / 'out'}", "--epochs=1", "--state=ERROR", "--show_progress=False",
        "--metrics=['NDCG','SPS','BlockbusterShare']", "--valid_metric=NDCG@10", "--columns=ndcg@10,sps@10",
    ])
    assert code == 0
    with open(tmp_path / "out" / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["label"].split(":")[0], r["seed"], r["status"]) for r in rows] == [
        ("RNNCCE", "2020", "ok"), ("RNNCCE", "2021", "ok"), ("GRU4Rec", "2020", "ok"), ("GRU4Rec", "2021", "ok"),
        ("Broken", "2020", "failed"), ("Broken", "2021", "failed"),
    ]
    assert all(0.0 <= float(r["test/sps@10"]) <= 1.0 for r in rows if r["status"] == "ok")
    with open(tmp_path / "out" / "curves.csv") as f:
        curves = list(csv.DictReader(f))
    assert [(c["label"].split(":")[0], c["seed"], c["epoch"]) for c in curves] == [
        ("RNNCCE", "2020", "1"), ("RNNCCE", "2021", "1"), ("GRU4Rec", "2020", "1"), ("GRU4Rec", "2021", "1")]
    for name in ("summary.md", "summary.csv", "summary.tex", "valid_vs_epoch.png", "valid_vs_time.png"):
        assert (tmp_path / "out" / name).stat().st_size > 0
    md = (tmp_path / "out" / "summary.md").read_text()
    assert "| model | runs (failed) | ndcg@10 | sps@10 | epochs | train s |" in md
    assert "| Broken | 0 (2) | – | – | – | – |" in md
    assert "rnn_type: 'FOO' is not allowed" in (tmp_path / "out" / "summary.md").read_text()


def test_unknown_model_stops_before_any_run(tmp_path, capsys):
    assert benchmark.main(["--models=GRU4Rec,NoSuchModel", f"--out={tmp_path / 'out'}"]) == 2
    assert "unknown model 'NoSuchModel'" in capsys.readouterr().err
    assert benchmark.main(["--models=GRU4Rec", "--metrics=['NDCG','SPS']", "--topk=[10]",
                               "--columns=ndcg@10,sps@20", f"--out={tmp_path / 'out'}"]) == 2
    assert "--columns: ['sps@20'] not reported by these runs; use names from ['ndcg@10', 'sps@10']" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
