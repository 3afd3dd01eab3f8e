"""The tutorial's dense autoencoder as an anomaly detector on synthetic normal vs anomalous signals."""

from _reference import AnomalyModel


class TestAutoencoder(AnomalyModel):
    MODEL = "autoencoder"
