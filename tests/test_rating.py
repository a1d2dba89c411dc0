"""Rating models (RatingMF, RatingNNMF, RatingMLP), their dataset and cross-validation."""

import numpy as np
import pytest
import torch
from recbole.config import Config
from recbole.data import create_dataset, data_preparation
from recbole.data.interaction import Interaction
from recbole.trainer import Trainer

import recbole_ext
from recbole_ext.data.checks import DataWarning
from recbole_ext.data.rating_dataset import fold_assignment
from recbole_ext.model.rating import RatingMF, RatingNNMF
from recbole_ext.cross_validation import cross_validate
from tests.conftest import quick_test

# user, item, rating. Mean 3, range [1, 5].
TOY = [("u1", "i1", 5), ("u1", "i2", 3), ("u2", "i1", 4), ("u2", "i3", 2), ("u3", "i2", 1), ("u3", "i3", 3)]
# Hand-set parameters (k = 2) and the predictions μ + b_u + b_i + p_u·q_i they give, worked by hand:
P = {"u1": [1.0, 0.0], "u2": [0.0, 1.0], "u3": [1.0, 1.0]}
Q = {"i1": [1.0, 2.0], "i2": [0.4, 0.0], "i3": [-1.0, 1.0]}
B_USER = {"u1": 0.5, "u2": -0.5, "u3": 0.0}
B_ITEM = {"i1": 0.2, "i2": 0.0, "i3": -0.2}
PREDICTED = {("u1", "i1"): 4.7, ("u1", "i2"): 3.9, ("u2", "i1"): 4.7, ("u2", "i3"): 3.3,
             ("u3", "i2"): 3.4, ("u3", "i3"): 2.8}
# errors -0.3, 0.9, 0.7, 1.3, 2.4, -0.2 → MSE 8.88 / 6, MAE 5.8 / 6;
# per-rating ‖p‖² + ‖q‖² + b_u² + b_i²: 6.29, 1.41, 6.29, 3.29, 2.16, 4.04 → mean 23.48 / 6.
MSE, MAE, PENALTY = 1.48, 5.8 / 6, 23.48 / 6


def write_toy(directory, rating_type="float"):
    folder = directory / "toy"
    folder.mkdir(parents=True, exist_ok=True)
    lines = [f"user_id:token\titem_id:token\trating:{rating_type}"] + [f"{u}\t{i}\t{r}" for u, i, r in TOY]
    (folder / "toy.inter").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(directory)


def toy_config(tmp_path, model="RatingMF", **settings):
    return Config(model=model, dataset="toy", config_dict={
        "data_path": write_toy(tmp_path), "load_col": {"inter": ["user_id", "item_id", "rating"]},
        "embedding_size": 2, "reg_weight": 0.1, "state": "ERROR", "show_progress": False,
        "checkpoint_dir": str(tmp_path / "saved"), **settings,
    })


def set_toy_parameters(model, dataset):
    """Writes P, Q and the biases into the rows of the toy's ids; fixes μ and the range to the toy's."""
    with torch.no_grad():
        for token, row in P.items():
            model.user_embedding.weight[dataset.token2id("user_id", token)] = torch.tensor(row)
        for token, row in Q.items():
            model.item_embedding.weight[dataset.token2id("item_id", token)] = torch.tensor(row)
        for token, bias in B_USER.items():
            model.user_bias.weight[dataset.token2id("user_id", token)] = bias
        for token, bias in B_ITEM.items():
            model.item_bias.weight[dataset.token2id("item_id", token)] = bias
        model.global_mean.fill_(3.0)
    model.min_rating, model.max_rating = 1.0, 5.0


def toy_batch(dataset, rows):
    """An interaction of (user, item, rating) token rows."""
    return Interaction({
        "user_id": torch.tensor([dataset.token2id("user_id", u) for u, _, _ in rows]),
        "item_id": torch.tensor([dataset.token2id("item_id", i) for _, i, _ in rows]),
        "label": torch.tensor([float(r) for _, _, r in rows]),
    })


def full_toy(tmp_path, **settings):
    config = toy_config(tmp_path, eval_args={"split": {"RS": [1.0, 0.0, 0.0]}, "group_by": "none",
                                             "order": "RO", "mode": "labeled"}, **settings)
    dataset = create_dataset(config)
    train = dataset.build()[0]
    model = RatingMF(config, train)
    set_toy_parameters(model, dataset)
    return config, dataset, model


def test_hand_computed_predictions_losses_and_clipping(tmp_path):
    _, dataset, model = full_toy(tmp_path)
    batch = toy_batch(dataset, TOY)
    assert model.predict(batch).tolist() == pytest.approx([PREDICTED[(u, i)] for u, i, _ in TOY], abs=1e-6)
    assert model.calculate_loss(batch).item() == pytest.approx(MSE + 0.1 * PENALTY, abs=1e-5)
    model.loss_type = "MAE"
    assert model.calculate_loss(batch).item() == pytest.approx(MAE + 0.1 * PENALTY, abs=1e-5)
    # u3·i1 = 3 + 0 + 0.2 + (1·1 + 1·2) = 6.2: clipped to the top of the scale, then rounding is a no-op.
    outside = toy_batch(dataset, [("u3", "i1", 0), ("u1", "i2", 0)])
    assert model.predict(outside).tolist() == pytest.approx([5.0, 3.9], abs=1e-6)
    model.round_predictions = True
    assert model.predict(outside).tolist() == [5.0, 4.0]
    assert model.full_sort_predict(toy_batch(dataset, [("u1", "i1", 0)])).shape == (dataset.item_num,)


def test_plain_dot_product_without_bias(tmp_path):
    config = toy_config(tmp_path, use_bias=False, eval_args={"split": {"RS": [1.0, 0.0, 0.0]}, "group_by": "none",
                                                              "order": "RO", "mode": "labeled"})
    dataset = create_dataset(config)
    model = RatingMF(config, dataset.build()[0])
    assert not hasattr(model, "user_bias")
    with torch.no_grad():
        model.user_embedding.weight[dataset.token2id("user_id", "u1")] = torch.tensor([2.0, 1.0])
        model.item_embedding.weight[dataset.token2id("item_id", "i1")] = torch.tensor([1.0, 0.5])
    batch = toy_batch(dataset, [("u1", "i1", 0)])
    assert model.predict(batch).tolist() == pytest.approx([2.5])
    # MSE (2.5 - 0)² + 0.1 · (‖(2,1)‖² + ‖(1,0.5)‖²) = 6.25 + 0.1 · 6.25
    assert model.calculate_loss(batch).item() == pytest.approx(6.875)


def test_rounded_mae_is_the_mae_of_rounded_predictions(tmp_path):
    """Through RecBole's evaluator on a test fold: MAE as is, then with round_predictions."""
    config = toy_config(tmp_path, folds=2, fold=1, seed=3)
    dataset = create_dataset(config)
    train_data, _, test_data = data_preparation(config, dataset)
    model = RatingMF(config, train_data._dataset)
    set_toy_parameters(model, dataset)
    trainer = Trainer(config, model)
    test = test_data._dataset.inter_feat
    pairs = [(dataset.id2token("user_id", u), dataset.id2token("item_id", i))
             for u, i in zip(test["user_id"].tolist(), test["item_id"].tolist())]
    truth = test["label"].numpy()
    predicted = np.array([PREDICTED[p] for p in pairs])
    assert len(pairs) == 3
    plain = trainer.evaluate(test_data, load_best_model=False)
    model.round_predictions = True
    rounded = trainer.evaluate(test_data, load_best_model=False)
    assert plain["mae"] == pytest.approx(np.abs(predicted - truth).mean(), abs=1e-4)
    assert rounded["mae"] == pytest.approx(np.abs(np.round(predicted) - truth).mean(), abs=1e-4)
    assert rounded["mae"] != pytest.approx(plain["mae"], abs=1e-3)


def test_fold_assignment_covers_every_rating_once_and_follows_the_seed():
    folds = fold_assignment(103, 5, seed=7)
    assert sorted(np.bincount(folds).tolist()) == [20, 20, 21, 21, 21]
    assert np.array_equal(folds, fold_assignment(103, 5, seed=7))
    assert not np.array_equal(folds, fold_assignment(103, 5, seed=8))


def test_rating_dataset_folds_partition_the_ratings(tiny_config):
    def pairs(data):
        inter = data._dataset.inter_feat
        return list(zip(inter["user_id"].tolist(), inter["item_id"].tolist(), inter["label"].tolist()))

    tests, everything = [], None
    for fold in range(3):
        config = Config(model="RatingMF", dataset="ml-tiny", config_dict={**tiny_config, "folds": 3, "fold": fold})
        train, valid, test = data_preparation(config, create_dataset(config))
        split = pairs(train) + pairs(valid) + pairs(test)
        assert len(split) == len(set(split))
        everything = everything or sorted(split)
        assert sorted(split) == everything
        assert len(valid._dataset) == round((len(split) - len(test._dataset)) / 9)
        tests.extend(pairs(test))
    assert sorted(tests) == everything
    assert {r for *_, r in everything} == {1.0, 2.0, 3.0, 4.0, 5.0}


def test_label_is_the_raw_rating_even_with_normalize_all(tiny_config):
    config = Config(model="RatingMF", dataset="ml-tiny", config_dict={**tiny_config, "normalize_all": True})
    dataset = create_dataset(config)
    assert sorted(set(dataset.inter_feat["label"].tolist())) == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert dataset.inter_feat["timestamp"].max() == pytest.approx(1.0)


@pytest.mark.parametrize("model", ["RatingMF", "RatingNNMF", "RatingMLP"])
def test_each_model_trains_with_its_defaults_and_reports_rmse_mae(tiny_config, model):
    result = quick_test(tiny_config, model=model)
    assert set(result["test_result"]) == {"rmse", "mae"}
    assert 0.5 < result["test_result"]["mae"] <= result["test_result"]["rmse"] < 2.0  # the 1-5 scale
    assert model in recbole_ext.list_models()


def test_nnmf_factors_stay_non_negative_where_mf_goes_negative(tiny_config):
    def trained(model_class):
        config = Config(model=model_class.__name__, dataset="ml-tiny",
                        config_dict={**tiny_config, "epochs": 3, "learning_rate": 0.05, "use_bias": False})
        train_data, valid_data, _ = data_preparation(config, create_dataset(config))
        model = model_class(config, train_data._dataset)
        Trainer(config, model).fit(train_data, valid_data, saved=False)
        return model

    nnmf = trained(RatingNNMF)
    assert nnmf.user_embedding.weight.min() >= 0 and nnmf.item_embedding.weight.min() >= 0
    mf = trained(RatingMF)
    assert mf.user_embedding.weight.min() < 0


def test_cross_validate_reports_every_fold_and_mean_std(tiny_config):
    result = cross_validate("RatingMF", "ml-tiny", folds=2, config_dict=tiny_config)
    assert [f["fold"] for f in result["folds"]] == [0, 1]
    mean, std = result["summary"]["rounded_mae"]
    values = [f["rounded_test_result"]["mae"] for f in result["folds"]]
    assert mean == pytest.approx(np.mean(values)) and std == pytest.approx(np.std(values))
    assert set(result["summary"]) == {"rmse", "mae", "rounded_rmse", "rounded_mae", "fit_seconds"}


NO_RATING = ("RATING_FIELD: 'rating' is not a loaded interaction field of dataset 'ml-tiny' (loaded: "
             "['item_id', 'timestamp', 'user_id']); RatingMF needs a numeric rating column: set RATING_FIELD "
             "and list it in load_col")


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"load_col": {"inter": ["user_id", "item_id", "timestamp"]}}, NO_RATING),
        ({"loss_type": "BPR"}, "loss_type: 'BPR' is not allowed; use one of ['MSE', 'MAE']"),
        ({"threshold": {"rating": 4}}, "threshold: {'rating': 4} is not allowed for RatingMF; set threshold: ~ "
                                       "(rating models regress the raw rating, not a 0/1 label)"),
        ({"folds": 3, "fold": 3}, "fold: 3 is not allowed with folds: 3; use an integer in [0, 2]"),
    ],
)
def test_bad_input_is_one_clear_error(tiny_config, settings, message):
    with pytest.raises(recbole_ext.ConfigError) as error:
        quick_test(tiny_config, model="RatingMF", **settings)
    assert str(error.value) == message


def test_token_rating_field_is_refused(tmp_path):
    config = Config(model="RatingMLP", dataset="toy", config_dict={
        "data_path": write_toy(tmp_path, rating_type="token"), "state": "ERROR",
        "load_col": {"inter": ["user_id", "item_id", "rating"]}})
    with pytest.raises(recbole_ext.ConfigError) as error:
        create_dataset(config)
    assert str(error.value) == (
        "RATING_FIELD: 'rating' of dataset 'toy' is a token field; RatingMLP needs a numeric one "
        "(type float in the .inter header, e.g. rating:float)")


def test_cross_validation_of_other_models_and_bad_fold_counts_are_refused():
    with pytest.raises(recbole_ext.ConfigError, match=r"^folds: 'x' is not allowed; use an integer >= 2"):
        cross_validate("RatingMF", "ml-100k", folds="x")
    with pytest.raises(recbole_ext.ConfigError) as error:
        cross_validate("RNNCCE", "ml-100k", folds=5)
    assert str(error.value) == ("folds: cross-validation is for the rating models (RatingMF, RatingNNMF, "
                                "RatingMLP), not 'RNNCCE'")


def test_tutorial_split_80_20_trains_fixed_epochs_and_tests_a_fifth(tiny_config):
    tutorial = {"split": {"RS": [0.8, 0.0, 0.2]}, "group_by": "none", "order": "RO", "mode": "labeled"}
    config = Config(model="RatingMF", dataset="ml-tiny", config_dict={**tiny_config, "eval_args": tutorial})
    dataset = create_dataset(config)
    train, valid, test = data_preparation(config, dataset)
    assert abs(len(train._dataset) - 0.8 * len(dataset)) <= 1 and len(valid._dataset) == 0
    assert len(test._dataset) == len(dataset) - len(train._dataset)
    result = quick_test(tiny_config, model="RatingMF", eval_args=tutorial)
    assert result["best_valid_result"] is None and set(result["test_result"]) == {"rmse", "mae"}


def test_nnmf_checkpoint_reloads_weights_only(tiny_config, tmp_path):
    quick_test(tiny_config, model="RatingNNMF")
    checkpoint = next((tmp_path / "saved").glob("RatingNNMF-*.pth"))
    _, model, _, _, _, test_data = recbole_ext.load_data_and_model(str(checkpoint))
    saved = torch.load(checkpoint, weights_only=True)["state_dict"]
    assert torch.equal(model.state_dict()["user_embedding.parametrizations.weight.original"],
                       saved["user_embedding.parametrizations.weight.original"])
    assert model.item_embedding.weight.min() >= 0 and len(test_data._dataset) > 0


def test_run_py_folds_prints_each_fold_and_mean_std(tiny_data_path, tmp_path, capsys):
    from recbole_ext import run

    (tmp_path / "tiny.yaml").write_text("load_col:\n  inter: [user_id, item_id, rating]\n")
    args = ["--model=RatingMF", "--dataset=ml-tiny", f"--data_path={tiny_data_path}", "--config_files=tiny.yaml",
            "--folds=2", "--epochs=1", "--show_progress=False", "--state=ERROR"]
    assert run.main(args, prog="run.py") == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines] == [
        "fold 0", "fold 1", "rmse", "mae", "rounded_rmse", "rounded_mae", "fit_seconds"]
    assert " ± " in lines[2]
    assert run.main(["--model=RNNCCE", "--folds=5"], prog="run.py") == 2
    assert capsys.readouterr().err == ("run.py: error: folds: cross-validation is for the rating models "
                                       "(RatingMF, RatingNNMF, RatingMLP), not 'RNNCCE'\n")


def test_ratings_that_are_empty_or_nan_are_dropped_with_their_count(tmp_path):
    folder = tmp_path / "toy"
    folder.mkdir()
    rows = [f"{u}\t{i}\t{r}" for u, i, r in TOY] + ["u1\ti3\t", "u2\ti2\tnan", "u3\ti1\tNaN"]
    (folder / "toy.inter").write_text("user_id:token\titem_id:token\trating:float\n" + "\n".join(rows) + "\n")
    config = Config(model="RatingMF", dataset="toy", config_dict={
        "data_path": str(tmp_path), "load_col": {"inter": ["user_id", "item_id", "rating"]}, "state": "ERROR"})
    with pytest.warns(DataWarning) as warned:
        dataset = create_dataset(config)
    assert [str(w.message) for w in warned if w.category is DataWarning] == [
        f"{folder / 'toy.inter'}: dropped 3 of 9 rows whose 'rating' (the rating RatingMF regresses, RATING_FIELD) "
        "is empty or nan (the first on line 8): RatingMF trains and tests on that value, and RecBole would put the "
        "column's mean in its place"]
    assert sorted(dataset.inter_feat["rating"].tolist()) == sorted(float(r) for _, _, r in TOY)
    assert sorted(dataset.inter_feat["label"].tolist()) == sorted(float(r) for _, _, r in TOY)


def test_every_rating_missing_is_an_error(tmp_path):
    folder = tmp_path / "toy"
    folder.mkdir()
    (folder / "toy.inter").write_text("user_id:token\titem_id:token\trating:float\nu1\ti1\t\nu2\ti1\tnan\n")
    config = Config(model="RatingMLP", dataset="toy", config_dict={
        "data_path": str(tmp_path), "load_col": {"inter": ["user_id", "item_id", "rating"]}, "state": "ERROR"})
    with pytest.raises(recbole_ext.DataError) as error:
        create_dataset(config)
    assert str(error.value) == (f"{folder / 'toy.inter'}: every row's 'rating' (the rating RatingMLP regresses, "
                                "RATING_FIELD) is empty or nan; RatingMLP needs a number there in every row it "
                                "trains or tests on")


FOLD_ERRORS = [
    (["--folds=3", "--fold=7"], "fold: 7 is not allowed with folds: 3; use an integer in [0, 2]"),
    (["--folds=3", "--fold=-1"], "fold: -1 is not allowed with folds: 3; use an integer in [0, 2]"),
    (["--folds=3", "--fold=1.5"], "fold: 1.5 is not allowed with folds: 3; use an integer in [0, 2]"),
    (["--fold=2"], "fold: 2 is not allowed without cross-validation (folds: 1); set folds: K (an integer >= 2) to "
                   "make fold 2 of K the test set, or drop fold"),
    (["--folds=1", "--fold=2"], "fold: 2 is not allowed without cross-validation (folds: 1); set folds: K (an "
                                "integer >= 2) to make fold 2 of K the test set, or drop fold"),
]


@pytest.mark.parametrize(("flags", "message"), FOLD_ERRORS)
def test_a_fold_outside_the_folds_is_refused_on_the_command_line_as_in_a_yaml(tiny_data_path, tmp_path, capsys,
                                                                                flags, message):
    from recbole_ext import run

    args = ["--model=RatingMF", "--dataset=ml-tiny", f"--data_path={tiny_data_path}", "--epochs=1",
            "--show_progress=False", "--state=ERROR", "--load_col={'inter': ['user_id', 'item_id', 'rating']}"]
    assert run.main(args + flags, prog="run") == 2
    assert capsys.readouterr().err.splitlines()[-1] == f"run: error: {message}"
    yaml_file = tmp_path / "folds.yaml"
    yaml_file.write_text("".join(f"{flag[2:].replace('=', ': ')}\n" for flag in flags))
    assert run.main(args + [f"--config_files={yaml_file}"], prog="run") == 2
    assert capsys.readouterr().err.splitlines()[-1] == f"run: error: {message}"


def test_a_fold_given_with_folds_runs_that_fold_only(monkeypatch, capsys):
    from recbole_ext import cross_validation, run

    trained = []

    def train_fold(model, dataset, config_file_list, config_dict):
        trained.append((config_dict["folds"], config_dict["fold"]))
        return {"fold": config_dict["fold"], "test_result": {"rmse": 1.0}, "rounded_test_result": {"rmse": 1.0},
                "best_valid_result": {}, "epochs": 1, "fit_seconds": 0.5}

    monkeypatch.setattr(cross_validation, "train_fold", train_fold)
    assert run.main(["--model=RatingMF", "--folds=3", "--fold=1"], prog="run") == 0
    assert trained == [(3, 1)]
    assert capsys.readouterr().out.splitlines()[0].startswith("fold 1: rmse: 1.0000")
