"""``recbole.data.dataset``: ``Dataset`` and ``SequentialDataset`` — reading checks, pandas 3, the
download, the evaluation protocols' splits.

* ``Dataset._load_feat`` / ``_load_inter_feat`` / ``SequentialDataset.data_augmentation`` /
  ``Dataset.build``: the atomic files and splits checked (:mod:`recbole_ext.data.checks`).
* ``SequentialDataset.data_augmentation`` / ``build``: the lean sequential data path (prefix samples
  as rows of the flat interactions, :mod:`recbole_ext.data.lean`) for the plugin RNNs' datasets and
  with ``lean_sequences: True``.
* ``SequentialDataset.build``: under ``user_split`` / ``session_split`` the protocol's own splits
  (:func:`recbole_ext.protocols.evaluation.build_splits`); ``Dataset.build`` refuses them for
  non-sequential models. Under leave-one-out, the training split keeps the counts of every item of
  its sequences for the popularity metrics (:mod:`recbole_ext.data.popularity`).
* pandas 3 (copy-on-write; 2.2 warns): ``Series.agg(len)`` is one number, so ``_remap`` cannot split
  token_seq ids back; chained ``fillna(inplace=True)`` fills nothing, so ``_fill_nan`` fills by
  assignment and a missing token_seq/float_seq cell is read as empty (``pd``, the module's pandas:
  a stand-in whose ``read_csv`` does that); ``Series.values`` is read-only, so the tensors of
  ``_dataframe_to_interaction`` get their own memory.
* ``Dataset._load_feat`` / ``_filter_by_inter_num`` / ``_remap``: a lean dataset's interaction file
  read with categorical tokens, counted and remapped on their codes (:mod:`recbole_ext.data.loading`).
* ``Dataset._normalize`` / ``_remove_duplication``: a sequential dataset's interactions in (sequence,
  raw time) order, equal times in file order, before RecBole normalises or converts the time field
  (:mod:`recbole_ext.data.order`); ``rm_dup_inter``'s sort made stable.
* ``Dataset._download``: RecBole's own download; offline or for a name RecBole cannot download, one
  :class:`DatasetNotFoundError` naming ``data_path`` and the files expected; no crash at the
  ``torch.distributed.barrier()`` it ends with in a single process.
"""

import contextlib
import http.client
import os
import warnings

import numpy as np
import pandas
import torch
import recbole.data.dataset.dataset as dataset_module
from recbole.data.dataset import Dataset, SequentialDataset
from recbole.utils import FeatureSource, FeatureType

from recbole_ext import settings
from recbole_ext.data import checks, lean, loading, order, popularity
from recbole_ext.errors import DatasetNotFoundError
from recbole_ext.hooks.replace import replace, wrap
from recbole_ext.protocols import evaluation as protocols

# pandas 2.2 warns (FutureWarning) where RecBole's dataset.py fills a column through
# ``df[field].fillna(..., inplace=True)``; pandas 3 fills nothing there (the fill is done by assignment)
_CHAINED_INPLACE_FILL = (
    r"A value is (trying to be|being) set on a copy of a DataFrame or Series "
    r"through chained assignment using an inplace method"
)


def install():
    _reading()
    _order()
    _pandas3()
    _download()
    _splits()


def _reading():
    @wrap(Dataset, "_load_feat")
    def _load_feat(recbole_load_feat, self, filepath, source):
        categorical = source == FeatureSource.INTERACTION and isinstance(self, SequentialDataset) and lean.is_lean(self)

        def load():
            with _chained_fills_unannounced(), loading.categorical_reading() if categorical else contextlib.nullcontext():
                return recbole_load_feat(self, filepath, source)

        return checks.checked_load_feat(self, filepath, source, load)

    @wrap(Dataset, "_filter_by_inter_num")
    def _filter_by_inter_num(recbole_filter_by_inter_num, self):
        if not loading.filter_by_inter_num(self):
            recbole_filter_by_inter_num(self)

    @wrap(Dataset, "_load_inter_feat")
    def _load_inter_feat(recbole_load_inter_feat, self, token, dataset_path):
        recbole_load_inter_feat(self, token, dataset_path)
        checks.repeated_rows(self, token, dataset_path)

    @wrap(SequentialDataset, "data_augmentation")
    def data_augmentation(recbole_data_augmentation, self):
        checks.require_a_sequence(self)
        if lean.is_lean(self):
            return lean.flatten(self)
        return recbole_data_augmentation(self)


def _order():
    @wrap(Dataset, "_normalize")
    def _normalize(recbole_normalize, self):
        if isinstance(self, SequentialDataset):
            order.sort_by_raw_time(self)  # before the time field is scaled (and later made float32)
        recbole_normalize(self)

    def _remove_duplication(self):
        order.remove_duplication(self)

    replace(Dataset, "_remove_duplication", _remove_duplication, __name__)


def _splits():
    @wrap(Dataset, "build")
    def build(recbole_build, self):
        if not isinstance(self, SequentialDataset):
            protocols.refuse_non_sequential(self, settings.of(self.config).protocol)
        return checks.require_splits(self, recbole_build(self))

    @wrap(SequentialDataset, "build")
    def sequential_build(recbole_sequential_build, self):
        run = settings.of(self.config)
        if run.held_out:
            return protocols.build_splits(self, run.protocol)
        if lean.is_lean(self):
            datasets = checks.require_splits(self, lean.build_leave_one_out(self))
        else:
            datasets = recbole_sequential_build(self)  # its Dataset.build checks the splits
        # the popularity metrics count every item of the training sequences, first items included
        popularity.attach(datasets[0], popularity.sequence_item_counts(self, datasets[0].inter_feat))
        return datasets


def _pandas3():
    @wrap(Dataset, "_remap")
    def _remap(recbole_remap, self, remap_list):
        if loading.remap_categorical(self, remap_list):
            return
        for feat, field, _ in remap_list:  # a categorical column beside others: RecBole's strings
            if loading.is_categorical(feat[field]):
                feat[field] = feat[field].astype(object)
        # RecBole's own remap, each token_seq column handed over as one flat token column
        handed_over, flattened = [], []
        for feat, field, ftype in remap_list:
            if ftype != FeatureType.TOKEN_SEQ:
                handed_over.append((feat, field, ftype))
                continue
            sequences = list(feat[field])
            tokens = np.concatenate(sequences) if sequences else np.array([], dtype=str)
            flat = pandas.DataFrame({field: tokens})
            handed_over.append((flat, field, FeatureType.TOKEN))
            flattened.append((feat, field, flat, np.cumsum([len(s) for s in sequences])[:-1]))
        recbole_remap(self, handed_over)
        for feat, field, flat, split_points in flattened:
            feat[field] = np.split(flat[field].to_numpy(), split_points)

    @wrap(Dataset, "_fill_nan")
    def _fill_nan(recbole_fill_nan, self):
        for feat_name in self.feat_name_list:
            feat = getattr(self, feat_name)
            for field in feat:
                if self.field2type[field] == FeatureType.TOKEN:
                    feat[field] = feat[field].fillna(0)
                elif self.field2type[field] == FeatureType.FLOAT:
                    feat[field] = feat[field].fillna(feat[field].mean())
        with _chained_fills_unannounced():
            recbole_fill_nan(self)  # its own fills now find nothing; it still turns missing sequences empty

    @wrap(Dataset, "_dataframe_to_interaction")
    def _dataframe_to_interaction(recbole_dataframe_to_interaction, self, data):
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            interaction = recbole_dataframe_to_interaction(self, data)
        for field, values in interaction.interaction.items():
            interaction.interaction[field] = values.clone()  # owns its memory, whatever pandas lent
        return interaction

    replace(dataset_module, "pd", _PandasReadingEmptySequences(), __name__)


class _PandasReadingEmptySequences:
    """pandas for RecBole's dataset.py, except that ``read_csv`` reads empty token_seq/float_seq cells
    as "" (not NaN, which RecBole's ``split`` of a sequence cell fails on)."""

    def __getattr__(self, name):
        return getattr(pandas, name)

    @staticmethod
    def read_csv(*args, **kwargs):
        frame = loading.read_csv(*args, **kwargs)
        for column in frame.columns:  # still named "field:type" here
            if str(column).rpartition(":")[2].endswith("seq"):
                frame[column] = frame[column].fillna("")
        return frame


@contextlib.contextmanager
def _chained_fills_unannounced():
    """RecBole's chained fills, already done by assignment, without pandas' warning about them."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_CHAINED_INPLACE_FILL)
        yield


def _download():
    @wrap(Dataset, "_download")
    def _download(recbole_download, self):
        if self._get_download_url("url", allow_none=True) is None:
            raise missing_dataset_error(self, "RecBole has no download for that name")
        folder_was_there = os.path.exists(self.dataset_path)
        try:
            recbole_download(self)
        except (OSError, http.client.HTTPException, RuntimeError) as error:
            if isinstance(error, RuntimeError) and "Stopped downloading" not in str(error):
                raise
            if not folder_was_there and os.path.isdir(self.dataset_path) and not os.listdir(self.dataset_path):
                os.rmdir(self.dataset_path)  # the empty folder RecBole made would hide the dataset next time
            raise missing_dataset_error(self, f"RecBole could not download it: {_network_reason(error)}") from None
        except ValueError as error:
            # RecBole 1.2.1 ends every download with torch.distributed.barrier(), which fails outside
            # a process group: the files are there, and a single process has nobody to wait for.
            if torch.distributed.is_initialized() or "process group has not been initialized" not in str(error):
                raise


def _network_reason(error):
    reason = getattr(error, "reason", None) or error
    return f"{type(error).__name__}: {reason}"


def missing_dataset_error(dataset, why):
    name, folder = dataset.dataset_name, dataset.dataset_path
    return DatasetNotFoundError(
        f"dataset {name!r} not found and {why}: expected atomic files {os.path.join(folder, name)}.inter "
        f"(and optionally .user, .item) under `data_path` {os.path.dirname(os.path.normpath(folder))!r}; "
        "put them there, set `data_path`, or convert a session log with `python -m recbole_ext.data.convert`."
    )
