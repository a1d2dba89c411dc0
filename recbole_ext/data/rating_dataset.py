"""Explicit-rating data: the label is the raw rating, and ratings can be split into k folds.

RecBole 1.2.1's value metrics (``RMSE``, ``MAE``) compare ``rec.score`` with ``data.label``, which
the collector reads from the ``LABEL_FIELD`` column. RecBole only ever fills that column with 0/1
labels (``threshold``), and ml-100k's dataset YAML min-max scales every float field
(``normalize_all: True``), the rating included. :class:`RatingDataset` keeps RecBole's pipeline and
changes two steps: ``LABEL_FIELD`` becomes a copy of the raw ``RATING_FIELD`` (no threshold), and
normalisation leaves the rating and the label on their own scale.

With ``folds: k`` (k >= 2) :meth:`RatingDataset.build` replaces ``eval_args``' split: the ratings of
fold ``fold`` are the test set, the other folds are training data, of which a share set by the
``RS`` ratios' train:valid proportion (``[0.8, 0.1, 0.1]`` → 1/9) is held out for validation;
``RS`` with a valid ratio of 0 holds out nothing (train a fixed number of ``epochs``). The fold of
each rating depends only on ``seed``, ``folds`` and the rating's position in the loaded
interaction file (:func:`fold_assignment`).
"""

import numpy as np
import torch
from recbole.data.dataset import Dataset
from recbole.utils import FeatureSource, FeatureType

from recbole_ext.errors import ConfigError


def fold_assignment(n_ratings, folds, seed):
    """The fold (0 .. folds-1) of each of ``n_ratings`` ratings: a seeded random permutation dealt
    round-robin, so fold sizes differ by at most one and every rating is in exactly one fold."""
    if isinstance(folds, bool) or not isinstance(folds, int) or folds < 2:
        raise ConfigError(f"folds: {folds!r} is not allowed; use an integer >= 2 for cross-validation")
    if n_ratings < folds:
        raise ConfigError(f"folds: {folds} is more than the {n_ratings} ratings of the dataset")
    order = np.random.default_rng(seed).permutation(n_ratings)
    assignment = np.empty(n_ratings, dtype=np.int64)
    assignment[order] = np.arange(n_ratings) % folds
    return assignment


def check_fold(folds, fold):
    """Raise :class:`ConfigError` unless ``folds`` is 1 (or unset) or an integer >= 2 and ``fold`` is
    one of its folds (``fold: 0`` without folds)."""
    if folds not in (None, 1) and (isinstance(folds, bool) or not isinstance(folds, int) or folds < 2):
        raise ConfigError(f"folds: {folds!r} is not allowed; use an integer >= 2 for cross-validation, or 1")
    if isinstance(fold, bool) or not isinstance(fold, int) or not 0 <= fold < max(folds, 1):
        if folds in (None, 1):
            raise ConfigError(f"fold: {fold!r} is not allowed without cross-validation (folds: {folds!r}); set "
                              f"folds: K (an integer >= 2) to make fold {fold!r} of K the test set, or drop fold")
        raise ConfigError(f"fold: {fold!r} is not allowed with folds: {folds}; use an integer in [0, {folds - 1}]")


def validation_share(config):
    """The share of training ratings held out for validation, from ``eval_args``' RS ratios."""
    split = config["eval_args"]["split"]
    ratios = split.get("RS") if isinstance(split, dict) else None
    if not isinstance(ratios, list) or len(ratios) != 3 or ratios[0] <= 0 or min(ratios) < 0:
        raise ConfigError(
            f"eval_args.split: {split!r} is not allowed with folds; use {{'RS': [train, valid, test]}} "
            "(the train:valid proportion splits each fold's training ratings, the test ratio is unused)"
        )
    return ratios[1] / (ratios[0] + ratios[1])


class RatingDataset(Dataset):
    """A general dataset whose label is the raw rating (see the module docstring)."""

    def label_source_columns(self):
        """The column the label is made from (:func:`recbole_ext.data.checks.label_columns`): a row
        without a rating is dropped with a warning, not filled with the mean rating."""
        return {self.config["RATING_FIELD"]: f"the rating {self.config['model']} regresses, RATING_FIELD"}

    def _set_label_by_threshold(self):
        model = self.config["model"]
        if self.config["threshold"] is not None:
            raise ConfigError(
                f"threshold: {self.config['threshold']!r} is not allowed for {model}; set threshold: ~ "
                "(rating models regress the raw rating, not a 0/1 label)"
            )
        rating = self.config["RATING_FIELD"]
        if rating is None or rating not in self.inter_feat:
            loaded = sorted(self.inter_feat.columns) if self.inter_feat is not None else []
            raise ConfigError(
                f"RATING_FIELD: {rating!r} is not a loaded interaction field of dataset "
                f"{self.dataset_name!r} (loaded: {loaded}); {model} needs a numeric rating column: "
                "set RATING_FIELD and list it in load_col"
            )
        if self.field2type[rating] != FeatureType.FLOAT:
            raise ConfigError(
                f"RATING_FIELD: {rating!r} of dataset {self.dataset_name!r} is a "
                f"{self.field2type[rating].value} field; {model} needs a numeric one (type float in the "
                ".inter header, e.g. rating:float)"
            )
        if self.label_field != rating:
            self.set_field_property(self.label_field, FeatureType.FLOAT, FeatureSource.INTERACTION, 1)
            self.inter_feat[self.label_field] = self.inter_feat[rating].astype(float)

    def _normalize(self):
        keep = {field: self.inter_feat[field].copy() for field in {self.label_field, self.config["RATING_FIELD"]}}
        super()._normalize()
        for field, values in keep.items():
            self.inter_feat[field] = values

    def build(self):
        folds = self.config["folds"]
        fold = self.config["fold"]
        if folds in (None, 1):
            if fold not in (None, 0):
                check_fold(folds, fold)
            return super().build()
        check_fold(folds, fold)
        if self.benchmark_filename_list is not None:
            raise ConfigError("folds: cross-validation splits one interaction file; unset benchmark_filename")
        self._change_feat_format()
        assignment = fold_assignment(len(self.inter_feat), folds, self.config["seed"])
        test = np.flatnonzero(assignment == fold)
        rest = np.flatnonzero(assignment != fold)
        rest = rest[np.random.default_rng([self.config["seed"], fold]).permutation(len(rest))]
        n_valid = int(round(validation_share(self.config) * len(rest)))
        train, valid = np.sort(rest[n_valid:]), np.sort(rest[:n_valid])
        return [self.copy(self.inter_feat[torch.from_numpy(part)]) for part in (train, valid, test)]
