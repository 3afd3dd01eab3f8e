"""The MCU-friendly gesture model (Conv1D over IMU windows), full int8 on TFLite Micro."""

from _reference import ReferenceModel


class TestGestureCnn(ReferenceModel):
    MODEL = "gesture_cnn"
