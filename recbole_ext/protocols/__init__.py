"""Evaluation protocols beside RecBole's leave-one-out, chosen by the config key ``eval_protocol``:
``user_split`` (Devooght & Bersini's held-out users) and ``session_split`` (GRU4Rec's held-out
sessions by time). The hooks that put them in RecBole's flow: :mod:`recbole_ext.hooks` (docs/protocols.md)."""

from recbole_ext.protocols.settings import PROTOCOLS, read_settings

__all__ = ["PROTOCOLS", "read_settings"]
