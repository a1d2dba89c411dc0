"""Writing session data as RecBole atomic files plus the dataset YAML that reads them."""

import os
import shutil
import tempfile
from pathlib import Path

import yaml

INTER_HEADER = "session_id:token\titem_id:token\ttimestamp:float\n"


def dataset_config(data_path):
    """The RecBole settings for a session dataset written by :func:`write_sessions`."""
    return {
        "data_path": str(Path(data_path).resolve()),
        "USER_ID_FIELD": "session_id",
        "ITEM_ID_FIELD": "item_id",
        "TIME_FIELD": "timestamp",
        "load_col": {"inter": ["session_id", "item_id", "timestamp"]},
        "normalize_all": False,
    }


def write_sessions(sessions, items, times, out_dir, name):
    """Write ``out_dir/name/name.inter`` and ``out_dir/name/name.yaml`` and return the YAML's path.

    ``sessions``, ``items`` and ``times`` are equal-length sequences (times in seconds). The folder
    appears only complete: it is written under a temporary name and renamed.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    final = out_dir / name
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=out_dir))
    try:
        with open(staging / f"{name}.inter", "w", encoding="utf-8") as f:
            f.write(INTER_HEADER)
            f.writelines(f"{s}\t{i}\t{t:.3f}\n" for s, i, t in zip(sessions, items, times))
        with open(staging / f"{name}.yaml", "w", encoding="utf-8") as f:
            yaml.safe_dump(dataset_config(out_dir), f, sort_keys=False)
        if final.exists():
            shutil.rmtree(final)
        os.replace(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return final / f"{name}.yaml"
