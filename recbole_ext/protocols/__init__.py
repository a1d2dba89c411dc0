"""Evaluation protocols beside RecBole's leave-one-out, chosen by the config key ``eval_protocol``:
``user_split`` (Devooght & Bersini's held-out users) and ``session_split`` (GRU4Rec's held-out
sessions by time). :func:`install` puts the RecBole hooks in place (docs/protocols.md)."""

from recbole_ext.protocols.evaluation import install
from recbole_ext.protocols.settings import PROTOCOLS, read_settings

__all__ = ["PROTOCOLS", "install", "read_settings"]
