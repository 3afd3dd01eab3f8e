"""MLPerf Tiny keyword spotting: DS-CNN on 49x10 MFCC, 12 classes (synthetic keyword-like data here)."""

from _reference import ReferenceModel


class TestKwsDscnn(ReferenceModel):
    MODEL = "kws_dscnn"
