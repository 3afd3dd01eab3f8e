"""MLPerf Tiny image classification: ResNet-8 on 32x32x3, 10 classes (synthetic images here)."""

from _reference import ReferenceModel


class TestIcResnet8(ReferenceModel):
    MODEL = "ic_resnet8"
