"""Plugin models; importing this package registers each with RecBole's model lookup."""

from recbole_ext.data.rating_dataset import RatingDataset
from recbole_ext.model.dwellgru4rec import DwellGRU4Rec
from recbole_ext.model.rating import RatingMF, RatingMLP, RatingNNMF
from recbole_ext.model.rnncce import RNNCCE
from recbole_ext.registry import register_model

register_model(RNNCCE)
register_model(DwellGRU4Rec)
for rating_model in (RatingMF, RatingNNMF, RatingMLP):
    # the label is the raw rating: a dataset class of their own, whatever their (no) train modes
    register_model(rating_model, dataset_class=RatingDataset)
