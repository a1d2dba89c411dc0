"""The shared losses against hand computations, their sampler, and every loss × plugin model."""


import pytest
import torch
from torch import nn

import recbole_ext
from recbole_ext.model.loss import build_loss
from recbole_ext.model.rnn import RNNRecommender


class Settings(dict):
    """RecBole's Config answers None for a missing key."""

    def __getitem__(self, key):
        return self.get(key)


DEFAULTS = {"kl_temperature": 10.0, "kl_weight": 0.5, "n_sample": 1, "sample_alpha": 1.0, "bpreg": 1.0, "logq": 0.0,
            "sample_cache_size": 1000}


class TinyModel(nn.Module):
    """Output layer W = [[0,0],[1,0],[0,1],[1,1]], b = [0, .1, -.2, .3]; item 0 is padding."""

    n_items = 4
    sparse_item_grad = False

    def __init__(self, tied=True):
        super().__init__()
        self.item_embedding = nn.Embedding(4, 2)
        self.item_embedding.weight.data = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
        self.output_bias = nn.Parameter(torch.tensor([0.0, 0.1, -0.2, 0.3]))
        self.output_is_item_embedding = tied

    @property
    def output_weight(self):
        return self.item_embedding.weight

    item_scores = RNNRecommender.item_scores  # the scoring the plugin RNNs share


class TinyTrainingData:
    def target_item_counts(self):
        return torch.tensor([0, 2, 5, 3])  # support: item 1 twice, item 2 five times, item 3 three times


def make_loss(loss_type, model=None, **settings):
    config = Settings({**DEFAULTS, **settings, "loss_type": loss_type})
    return build_loss(config, model or TinyModel(), TinyTrainingData())


ONE_ROW = (torch.tensor([[1.0, 2.0]]), torch.tensor([2]))  # logits 0, 1.1, 1.8, 3.3
TWO_ROWS = (torch.tensor([[1.0, 2.0], [0.0, 1.0]]), torch.tensor([2, 3]))  # shared negative: item 1


def with_fixed_negatives(loss, negatives):
    loss.sample = lambda n: torch.tensor(negatives[:n])
    return loss


def test_ce_by_hand():
    model = TinyModel()
    assert make_loss("CE")(model, *ONE_ROW).item() == pytest.approx(1.8154065374356427, abs=1e-6)


@pytest.mark.parametrize("temperature, expected", [(10.0, 1.821106993284959), (2.0, 1.8458302545350684)])
def test_kl_by_hand(temperature, expected):
    model = TinyModel()
    loss = make_loss("KL", model, kl_temperature=temperature)
    assert loss(model, *ONE_ROW).item() == pytest.approx(expected, abs=1e-6)


def test_kl_with_zero_weight_is_ce():
    model = TinyModel()
    hidden, targets = torch.randn(5, 2), torch.tensor([1, 2, 3, 1, 2])
    assert make_loss("KL", model, kl_weight=0.0)(model, hidden, targets).item() == pytest.approx(
        make_loss("CE", model)(model, hidden, targets).item(), abs=1e-6
    )


def test_kl_term_vanishes_when_all_item_embeddings_are_equal():
    model = TinyModel()
    model.item_embedding.weight.data[:] = torch.tensor([0.3, -0.7])
    hidden, targets = torch.randn(3, 2), torch.tensor([1, 2, 3])
    assert make_loss("KL", model, kl_weight=5.0)(model, hidden, targets).item() == pytest.approx(
        make_loss("CE", model)(model, hidden, targets).item(), abs=1e-6
    )


def _kl_path_gradient(path):
    """Gradient of the KL term w.r.t. E through one path only, the other reading a constant copy."""
    embedding = TinyModel().item_embedding.weight
    constant = embedding.detach().clone()
    output_embedding, target_embedding = (embedding, constant) if path == "output" else (constant, embedding)
    hidden, targets = torch.tensor([[1.0, 2.0]]), torch.tensor([2])
    soft = ((target_embedding[targets] @ target_embedding[1:].t()) / 2.0).log_softmax(-1)
    predicted = ((hidden @ output_embedding[1:].t()) / 2.0).log_softmax(-1)
    (soft.exp() * (soft - predicted)).sum().backward()
    return embedding.grad.clone()


def test_kl_gradient_reaches_the_embedding_through_output_and_soft_target():
    model = TinyModel()
    loss = make_loss("KL", model, kl_temperature=2.0, kl_weight=1.0)
    hidden, targets = torch.tensor([[1.0, 2.0]]), torch.tensor([2])
    total = loss(model, hidden, targets) - make_loss("CE", model)(model, hidden, targets)
    (full,) = torch.autograd.grad(total, model.item_embedding.weight)
    output_path, target_path = _kl_path_gradient("output"), _kl_path_gradient("soft target")
    assert output_path.abs().sum() > 1e-4 and target_path.abs().sum() > 1e-4
    assert torch.allclose(full, 2.0 * (output_path + target_path), atol=1e-6)  # γ·τ = 2


def test_sampled_cross_entropy_by_hand():
    loss = with_fixed_negatives(make_loss("XE-sampled"), [1])
    assert loss(TinyModel(), *TWO_ROWS).item() == pytest.approx(1.217021662743636, abs=1e-6)


def test_sampled_cross_entropy_with_logq_by_hand():
    loss = with_fixed_negatives(make_loss("XE-sampled", logq=1.0), [1])  # q = (.2, .5, .3) for items 1..3
    assert loss(TinyModel(), *TWO_ROWS).item() == pytest.approx(1.4348650112489452, abs=1e-5)


def test_logq_corrects_targets_by_support_and_negatives_by_support_to_the_alpha():
    # corrections log 5, log 3 for the target columns (items 2, 3), 0.5 * log 2 for the negative (item 1)
    loss = with_fixed_negatives(make_loss("XE-sampled", logq=1.0, sample_alpha=0.5), [1])
    assert loss(TinyModel(), *TWO_ROWS).item() == pytest.approx(1.5097114905363331, abs=1e-5)


@pytest.mark.parametrize("bpreg, expected", [(1.0, 6.110162679273341), (0.0, 0.9324758983796442)])
def test_bpr_max_by_hand_with_its_regularization(bpreg, expected):
    loss = with_fixed_negatives(make_loss("BPR-max", bpreg=bpreg), [1])
    assert loss(TinyModel(), *TWO_ROWS).item() == pytest.approx(expected, abs=1e-6)


def test_top1_max_by_hand():
    loss = with_fixed_negatives(make_loss("TOP1-max"), [1])
    assert loss(TinyModel(), *TWO_ROWS).item() == pytest.approx(1.3397490689148337, abs=1e-6)


def test_sampled_scores_cover_only_batch_targets_and_shared_negatives():
    loss = make_loss("XE-sampled", n_sample=7)
    scores, items = loss.scores(TinyModel(), *TWO_ROWS)
    assert scores.shape == (2, 2 + 7) and items.shape == (9,)
    assert items[:2].tolist() == [2, 3]


@pytest.mark.parametrize("loss_type", ["XE-sampled", "BPR-max", "TOP1-max"])
def test_scoring_every_item_then_picking_columns_equals_scoring_the_columns(loss_type):
    """With more columns than items the loss scores every item once and picks the columns: the same
    loss and the same gradients as scoring each column's item (what it does on big catalogues)."""
    results = []
    for n_items in (4, 1000):  # 9 columns: more than 4 items, fewer than 1000
        model = TinyModel()
        model.n_items = n_items
        loss = with_fixed_negatives(make_loss(loss_type, model, n_sample=7), [1, 2, 3, 3, 2, 1, 1])
        value = loss(model, *TWO_ROWS)
        value.backward()
        results.append((value.item(), model.item_embedding.weight.grad, model.output_bias.grad))
    (picked, picked_w, picked_b), (columns, columns_w, columns_b) = results
    assert picked == pytest.approx(columns, abs=1e-6)
    assert torch.allclose(picked_w, columns_w, atol=1e-6) and torch.allclose(picked_b, columns_b, atol=1e-6)
    assert columns_b.abs().sum() > 0  # the gradients compared are not all zero


@pytest.mark.parametrize("alpha, expected", [(1.0, [0.0, 0.2, 0.5, 0.3]), (0.0, [0.0, 1 / 3, 1 / 3, 1 / 3])])
def test_negative_draws_follow_support_to_the_alpha(alpha, expected):
    torch.manual_seed(0)
    draws = make_loss("BPR-max", sample_alpha=alpha).sample(100_000)
    frequencies = torch.bincount(draws, minlength=4).double() / draws.numel()
    # 100k draws: a frequency's standard error is at most 0.0016, so 0.01 is over 6 standard errors
    assert frequencies.tolist() == pytest.approx(expected, abs=0.01)
    assert frequencies[0] == 0  # the padding item is never drawn


def test_never_seen_items_are_never_drawn_even_uniformly():
    class OnlyItemsTwoAndThree:
        def target_item_counts(self):
            return torch.tensor([0, 0, 5, 3])

    config = Settings({**DEFAULTS, "loss_type": "BPR-max", "sample_alpha": 0.0})
    torch.manual_seed(0)
    draws = build_loss(config, TinyModel(), OnlyItemsTwoAndThree()).sample(20_000)
    assert set(draws.tolist()) == {2, 3}


def test_support_falls_back_to_the_item_field_without_target_counts():
    class PlainDataset:
        iid_field = "item_id"
        inter_feat = {"item_id": torch.tensor([3, 3, 3, 1])}

    config = Settings({**DEFAULTS, "loss_type": "XE-sampled"})
    assert build_loss(config, TinyModel(), PlainDataset()).support.tolist() == [0.0, 1.0, 0.0, 3.0]


def test_sampler_tables_move_with_the_model_and_stay_out_of_checkpoints():
    model = TinyModel()
    model.loss = make_loss("TOP1-max", model)
    model.to(torch.float64)  # stands in for .to(device): the same buffer traversal
    assert model.loss.support.dtype == torch.float64
    assert "loss.support" not in model.state_dict() and "loss.sample_cdf" not in model.state_dict()


@pytest.mark.parametrize("loss_type", ["BPR-max", "TOP1-max"])
def test_a_lone_target_without_negatives_gives_zero_loss_not_nan(loss_type):
    model = TinyModel()
    loss = make_loss(loss_type, model, n_sample=0)(model, torch.tensor([[1.0, 2.0]]), torch.tensor([2]))
    loss.backward()
    assert loss.item() == 0.0 and torch.isfinite(model.output_bias.grad).all()


def test_kl_refuses_an_untied_model():
    with pytest.raises(recbole_ext.ConfigError, match="loss_type: 'KL' needs the output layer tied"):
        make_loss("KL", TinyModel(tied=False))


def test_unknown_loss_type_lists_the_allowed_ones():
    with pytest.raises(recbole_ext.ConfigError, match=r"loss_type: 'BPR' is not allowed; use one of \['CE', 'KL'"):
        make_loss("BPR")


def test_logq_is_refused_where_it_does_not_apply():
    with pytest.raises(recbole_ext.ConfigError, match="logq: 1.0 is only used by loss_type 'XE-sampled'"):
        make_loss("TOP1-max", logq=1.0)


def test_missing_loss_key_names_it():
    with pytest.raises(recbole_ext.ConfigError, match="n_sample: None is not allowed"):
        make_loss("XE-sampled", n_sample=None)


def test_negatives_come_from_one_cached_draw_a_slice_per_batch():
    loss = make_loss("XE-sampled", n_sample=3, sample_cache_size=7)  # 7 // 3: two batches per draw
    draws = []
    real_sample = loss.sample
    loss.sample = lambda n: draws.append(n) or real_sample(n)
    model = TinyModel()
    torch.manual_seed(0)
    first, second, third = (loss.scores(model, *TWO_ROWS)[1][2:] for _ in range(3))
    assert draws == [6, 6]  # one draw of two batches' negatives, then the next when it is used up
    torch.manual_seed(0)
    block = real_sample(6).view(2, 3)
    assert first.tolist() == block[0].tolist() and second.tolist() == block[1].tolist()
    assert third.shape == (3,) and set(third.tolist()) <= {1, 2, 3}


def test_the_negative_cache_is_drawn_again_on_the_model_s_new_device():
    model = TinyModel()
    model.loss = make_loss("BPR-max", model, n_sample=2)
    model.loss.negatives()
    model.to(torch.float64)  # the cdf is already float64: the cache is kept
    cached = model.loss._cached_negatives
    model.loss.negatives()
    assert model.loss._cached_negatives is cached
    model.loss.sample_cdf = model.loss.sample_cdf.to("meta")  # stands in for a move to another device
    assert model.loss.negatives().device.type == "meta"
