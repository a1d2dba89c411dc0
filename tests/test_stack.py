"""Today's stack: RecBole 1.2.1's datasets under pandas 2 and 3 alike, and RecBole's own download.

CI runs this file under both pandas versions (``make test``); the dataset digests below were
recorded under pandas 2.3.3 (sequential datasets' interactions in (sequence, raw time)
order, data/order.py), so a pandas 3 run that passes built the very same feature values.
"""

import hashlib
import io
import urllib.error
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pandas
import pytest
import yaml
from recbole.config import Config
from recbole.data import create_dataset, data_preparation

import recbole.utils.url
import recbole_ext
from tests.conftest import quick_test, write_ml_slice

ITEM_COLUMNS = ["item_id", "movie_title", "release_year", "class"]
RECBOLE_URLS = Path(recbole.utils.url.__file__).parents[1] / "properties" / "dataset" / "url.yaml"


def dataset_digest(dataset):
    """SHA-256 over every feature tensor (name, dtype, shape, values) and every field's id→token map."""
    digest = hashlib.sha256()
    for feat_name in ("inter_feat", "item_feat", "user_feat"):
        feat = getattr(dataset, feat_name)
        if feat is None:
            continue
        if isinstance(feat, pandas.DataFrame):
            feat = dataset._dataframe_to_interaction(feat)  # RecBole's own tensors, sequences padded
        for field in sorted(feat.interaction):
            values = feat.interaction[field].numpy()
            digest.update(f"{feat_name}.{field}:{values.dtype}:{values.shape}".encode())
            digest.update(np.ascontiguousarray(values).tobytes())
    for field in sorted(dataset.field2id_token):
        digest.update(f"{field}=".encode() + "\x1f".join(map(str, dataset.field2id_token[field])).encode())
    return digest.hexdigest()


def token_seq_config(tiny_config):
    return {**tiny_config, "load_col": {**tiny_config["load_col"], "item": ITEM_COLUMNS}, "selected_features": ["class"]}


def tokens_of(dataset, field, item_token):
    item = dataset.field2token_id[dataset.iid_field][item_token]
    ids = dataset.item_feat[field][item].tolist()
    return [dataset.field2id_token[field][i] for i in ids if i != 0]


def test_token_seq_dataset_is_the_same_under_every_pandas(tiny_config):
    dataset = create_dataset(Config(model="GRU4RecF", dataset="ml-tiny", config_dict=token_seq_config(tiny_config)))

    assert tokens_of(dataset, "class", "1") == ["Animation", "Children's", "Comedy"]
    assert tokens_of(dataset, "movie_title", "2") == ["GoldenEye"]
    assert dataset.field2seqlen["class"] == 6
    assert dataset_digest(dataset) == "6d016047a17e9415ffe4dc997571f41f80b246d46bac6dfa1ef1c3d79ce05267"


def test_rnncce_dataset_is_the_same_under_every_pandas(tiny_config):
    dataset = create_dataset(Config(model="RNNCCE", dataset="ml-tiny", config_dict=tiny_config))

    assert dataset.user_num == 61 and dataset.inter_num == 6584
    assert dataset_digest(dataset) == "26c443e2fd0ea8e6a42b2b58c9da481a425005c05686c35db071a5dbc1da76b8"


def test_gru4recf_trains_one_epoch_on_item_classes(tiny_config):
    result = quick_test(token_seq_config(tiny_config), model="GRU4RecF")

    assert 0.0 <= result["test_result"]["ndcg@10"] <= result["test_result"]["hit@10"] <= 1.0


def test_missing_cells_are_filled_alike_under_every_pandas(tiny_config, tmp_path):
    folder = write_ml_slice(tmp_path / "data", name="ml-holes")
    item_file = folder / "ml-holes" / "ml-holes.item"
    lines = item_file.read_text(encoding="utf-8").splitlines()
    lines[0] += "\tbudget:float"
    lines[1] = "1\tToy Story\t\t\t30.0"  # no release year (token), no class (token_seq)
    lines[2] = "2\tGoldenEye\t1995\tAction Adventure Thriller\t"  # no budget (float)
    lines[3:] = [line + "\t10.0" for line in lines[3:]]
    item_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    config = {
        **token_seq_config(tiny_config),
        "data_path": str(folder),
        "load_col": {**tiny_config["load_col"], "item": ITEM_COLUMNS + ["budget"]},
        "normalize_all": False,
    }

    dataset = create_dataset(Config(model="GRU4RecF", dataset="ml-holes", config_dict=config))

    toy_story = dataset.field2token_id["item_id"]["1"]
    golden_eye = dataset.field2token_id["item_id"]["2"]
    assert tokens_of(dataset, "class", "1") == []
    assert dataset.item_feat["release_year"][toy_story].item() == 0  # [PAD]
    assert tokens_of(dataset, "class", "2") == ["Action", "Adventure", "Thriller"]
    budgets = [30.0] + [10.0] * (len(lines) - 3)  # every item but GoldenEye
    assert dataset.item_feat["budget"][golden_eye].item() == pytest.approx(np.mean(budgets))


def test_dataset_creation_warns_nothing_from_recbole(tiny_config):
    # setup.cfg ignores FutureWarning and DeprecationWarning for the suite: record them all here.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        create_dataset(Config(model="GRU4RecF", dataset="ml-tiny", config_dict=token_seq_config(tiny_config)))
        rnncce = Config(model="RNNCCE", dataset="ml-tiny", config_dict=tiny_config)
        data_preparation(rnncce, create_dataset(rnncce))

    from_recbole = [f"{w.filename}:{w.lineno}: {w.category.__name__}: {w.message}" for w in caught
                    if "/recbole/" in w.filename and not is_pandas4_inplace_notice(w)]
    assert from_recbole == []


def is_pandas4_inplace_notice(caught):
    """pandas 3.1's notice that ``inplace=`` goes away in pandas 4 (RecBole's inplace calls on whole
    frames still work in pandas 3): a DeprecationWarning, not shown in a normal run."""
    return caught.category.__name__ == "Pandas4Warning" and str(caught.message).startswith("The inplace keyword")



def test_training_run_prints_no_future_warning_from_recbole(tiny_config):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quick_test(tiny_config, model="RNNCCE")

    future = [f"{w.filename}:{w.lineno}: {w.message}" for w in caught
              if "/recbole/" in w.filename and issubclass(w.category, FutureWarning)]
    assert future == []

class _FakeDownload(io.BytesIO):
    """What ``urllib.request.urlopen`` returns, as far as RecBole's download reads it."""

    def info(self):
        return {"Content-Length": str(len(self.getvalue()))}


def zipped_ml_slice(tmp_path, name):
    write_ml_slice(tmp_path / "zip-source", name=name)
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        for suffix in ("inter", "item"):
            zipped.write(tmp_path / "zip-source" / name / f"{name}.{suffix}", f"{name}.{suffix}")
    return archive.getvalue()


def test_recbole_downloads_a_missing_dataset_itself(tiny_config, tmp_path, monkeypatch):
    archive = zipped_ml_slice(tmp_path, "ml-1m")
    requested = []

    def urlopen(url, *args, **kwargs):
        requested.append(url)
        return _FakeDownload(archive)

    monkeypatch.setattr(recbole.utils.url.ur, "urlopen", urlopen)
    config = {**tiny_config, "data_path": str(tmp_path / "downloads")}

    dataset = create_dataset(Config(model="GRU4Rec", dataset="ml-1m", config_dict=config))

    url = yaml.safe_load(RECBOLE_URLS.read_text(encoding="utf-8"))["ml-1m"]
    assert set(requested) == {url}
    assert sorted(p.name for p in (tmp_path / "downloads" / "ml-1m").iterdir()) == ["ml-1m.inter", "ml-1m.item"]
    assert dataset.user_num == 61 and dataset.inter_num == 6584


def test_offline_download_is_one_clear_error(tiny_config, tmp_path, monkeypatch):
    def urlopen(url, *args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(recbole.utils.url.ur, "urlopen", urlopen)
    data_path = tmp_path / "downloads"
    config = {**tiny_config, "data_path": str(data_path)}

    with pytest.raises(recbole_ext.DatasetNotFoundError) as raised:
        quick_test(config, model="GRU4Rec", dataset="ml-1m")

    assert str(raised.value) == (
        "dataset 'ml-1m' not found and RecBole could not download it: URLError: [Errno -3] Temporary failure "
        f"in name resolution: expected atomic files {data_path / 'ml-1m' / 'ml-1m.inter'} (and optionally "
        f".user, .item) under `data_path` '{data_path}'; put them there, set `data_path`, or convert a "
        "session log with `python -m recbole_ext.data.convert`."
    )
    assert not (data_path / "ml-1m").exists()  # no empty folder left to hide the dataset next time

