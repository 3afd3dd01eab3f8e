"""Shared test configuration."""

import os

# Keep TensorFlow quiet and single-purpose in tests; every engineer's tests share 2 cores in CI.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
