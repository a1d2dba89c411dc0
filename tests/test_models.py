"""The model contract: every registered model trains and tests one epoch in each train mode it
declares with each loss it declares (RecBole-GNN's quick_test, one line per combination), and a
model that breaks the contract fails loudly where it breaks it."""

import math

import pytest
from recbole.config import Config
from recbole.data import create_dataset, data_preparation
from recbole.model.abstract_recommender import SequentialRecommender
from recbole.utils import InputType
from torch import nn

import recbole_ext
import tests.toy_model  # noqa: F401  (the test-only plugin is registered like any other)
from recbole_ext import registry
from recbole_ext.data.sequence import SequenceDataset
from recbole_ext.model.rnn import RNNRecommender
from tests.conftest import quick_test


def contract_cases():
    cases = []
    for name in recbole_ext.list_models():
        model_class = registry.model_class(name)
        for train_mode in model_class.train_modes or (None,):
            for loss_type in model_class.loss_types or (None,):
                cases.append(pytest.param(name, train_mode, loss_type, id=f"{name}-{train_mode}-{loss_type}"))
    return cases


@pytest.mark.parametrize(("model", "train_mode", "loss_type"), contract_cases())
def test_every_registered_model_in_every_declared_mode_and_loss(tiny_config, model, train_mode, loss_type):
    settings = {key: value for key, value in (("train_mode", train_mode), ("loss_type", loss_type)) if value}
    # windows of 10: RecBole's prefix samples are 5x less work than at its default 50
    result = quick_test(tiny_config, model=model, MAX_ITEM_LIST_LENGTH=10, **settings)
    assert math.isfinite(result["best_valid_score"])
    assert all(math.isfinite(value) for value in result["test_result"].values())
    assert all(type(value) is float for value in result["test_result"].values())  # plain floats, not np.float64


def test_the_package_models_are_covered():
    covered = {case.values[0] for case in contract_cases()}
    assert {"RNNCCE", "DwellGRU4Rec"} <= covered


# ---------------------------------------------------------------- registration


class _Undeclared(SequentialRecommender):
    input_type = InputType.POINTWISE


def test_a_model_without_train_modes_is_refused_at_registration():
    with pytest.raises(recbole_ext.ModelContractError,
                       match=r"cannot register _Undeclared: it must declare `train_modes` as a tuple of strings"):
        recbole_ext.register_model(_Undeclared)


class TiedMismatch(RNNRecommender):
    """Ties its output to a 16-wide embedding but hands build_output 24-wide states."""

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        embedding = nn.Embedding(self.n_items, 16, padding_idx=0)
        self.rnn = nn.GRU(16, 24, batch_first=True)
        self.build_output(config, dataset, 24, embedding, weight_tying=True)


class PrefixOnly(RNNRecommender):
    train_modes = ("prefix",)

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.build_output(config, dataset, 8, nn.Embedding(self.n_items, 8, padding_idx=0), weight_tying=True)


recbole_ext.register_model(TiedMismatch)
recbole_ext.register_model(PrefixOnly)


def _datasets(tiny_config, model, **overrides):
    config = Config(model=model, dataset="ml-tiny", config_dict={**tiny_config, **overrides})
    return config, data_preparation(config, create_dataset(config))[0]._dataset


def test_an_rnn_plugin_gets_the_dataset_class_of_its_train_modes_without_being_told(tiny_config):
    config, dataset = _datasets(tiny_config, "TiedMismatch")
    assert isinstance(dataset, SequenceDataset)
    assert config["loss_type"] == "CE" and config["train_mode"] == "sequence"  # from properties/rnn.yaml


def test_a_tied_output_of_the_wrong_size_fails_in_init_naming_both_sizes(tiny_config):
    config, dataset = _datasets(tiny_config, "TiedMismatch")
    with pytest.raises(recbole_ext.ConfigError,
                       match="weight_tying: the output reads hidden states of size 24 but the item embedding has size 16"):
        TiedMismatch(config, dataset)


def test_an_undeclared_train_mode_is_a_config_error(tiny_config):
    with pytest.raises(recbole_ext.ConfigError, match=r"train_mode: 'sequence' is not allowed; use one of \['prefix'\]$"):
        _datasets(tiny_config, "PrefixOnly", train_mode="sequence")


def test_a_train_mode_for_a_recbole_model_is_a_config_error_before_loading_data(tiny_config):
    with pytest.raises(recbole_ext.ConfigError, match=r"^train_mode: 'sequence' is not allowed; use one of \['prefix'\] "
                       r"\(GRU4Rec is RecBole's: it trains on RecBole's prefix samples\)$"):
        Config(model="GRU4Rec", dataset="ml-tiny", config_dict={**tiny_config, "train_mode": "sequence"})


def test_sequence_mode_on_a_prefix_dataset_is_refused_not_silently_prefix_trained(tiny_config):
    config, _ = _datasets(tiny_config, "RNNCCE", train_mode="sequence")
    prefix_config, prefix_dataset = _datasets(tiny_config, "PrefixOnly", train_mode="prefix")
    assert not isinstance(prefix_dataset, SequenceDataset)
    with pytest.raises(recbole_ext.ConfigError,
                       match="train_mode: 'sequence' needs the dataset class SequenceDataset, but RNNCCE got "):
        recbole_ext.model.rnncce.RNNCCE(config, prefix_dataset)


def test_shared_defaults_come_from_the_base_yaml_and_the_model_yaml_holds_only_its_own_keys():
    base = registry.PROPERTIES_DIR / "rnn.yaml"
    assert registry.property_files("RNNCCE") == [
        registry.PLUGIN_OVERALL_YAML, base, registry.MODEL_PROPERTIES_DIR / "RNNCCE.yaml"]
    shared = {line.split(":")[0] for line in base.read_text().splitlines() if line and not line.startswith("#")}
    for name in ("RNNCCE", "DwellGRU4Rec"):
        own = {line.split(":")[0] for line in (registry.MODEL_PROPERTIES_DIR / f"{name}.yaml").read_text().splitlines()
               if line and not line.startswith("#")}
        assert not own & shared, (name, own & shared)


def test_a_registered_trainer_class_is_the_one_recbole_builds():
    from recbole.trainer import Trainer
    from recbole.utils import get_trainer

    class ToyTrainer(Trainer):
        pass

    class ToyTrained(PrefixOnly):
        pass

    registry.register_model(ToyTrained, trainer_class=ToyTrainer)
    assert get_trainer(ToyTrained.type, "ToyTrained") is ToyTrainer
    assert get_trainer(ToyTrained.type, "RNNCCE") is Trainer
