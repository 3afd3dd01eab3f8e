"""MLPerf Tiny anomaly detection: the 640-input dense autoencoder (synthetic machine sounds here)."""

from _reference import AnomalyModel


class TestAdAutoencoder(AnomalyModel):
    MODEL = "ad_autoencoder"
