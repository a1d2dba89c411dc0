"""``recbole.model``: importing RecBole's SINE model (every ``recbole.model`` import does) turns on
``torch.autograd`` anomaly detection for the whole process, which made every model train ~2× slower.
It is switched off again once SINE is imported; no RecBole function is replaced."""

import torch


def install():
    import recbole.model.sequential_recommender.sine  # noqa: F401  (its import switches detection on)

    torch.autograd.set_detect_anomaly(False)
