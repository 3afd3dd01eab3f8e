"""The tutorial's MobileNet-style depthwise-separable CNN, on synthetic 32x32 images."""

from _reference import ReferenceModel


class TestMobilenetDscnn(ReferenceModel):
    MODEL = "mobilenet_dscnn"
