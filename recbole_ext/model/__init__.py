"""Plugin models; importing this package registers each with RecBole's model lookup."""

from recbole_ext.model.dwellgru4rec import DwellGRU4Rec
from recbole_ext.model.rnncce import RNNCCE
from recbole_ext.registry import register_model

register_model(RNNCCE)
register_model(DwellGRU4Rec)
