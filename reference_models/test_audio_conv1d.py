"""The tutorial's Conv1D audio classifier, on synthetic keyword-like MFCC sequences."""

from _reference import ReferenceModel


class TestAudioConv1d(ReferenceModel):
    MODEL = "audio_conv1d"
