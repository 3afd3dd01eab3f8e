"""MLPerf Tiny visual wake words: MobileNetV1 alpha 0.25 on 96x96x3 (synthetic images here)."""

from _reference import ReferenceModel


class TestVwwMobilenetV1(ReferenceModel):
    MODEL = "vww_mobilenet_v1"
