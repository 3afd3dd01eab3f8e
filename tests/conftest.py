"""Shared test configuration."""

import os

import pytest

# Keep TensorFlow quiet and single-purpose in tests; every engineer's tests share 2 cores in CI.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")


# The tiny int8 models the runtime, TFLM and analyzer tests share (built once per session, see runtime_models).
@pytest.fixture(scope="session")
def mlp_int8():
    import runtime_models as models

    return models.artifact(models.mlp_int8_bytes(), "mlp_int8")


@pytest.fixture(scope="session")
def cnn_int8():
    import runtime_models as models

    return models.artifact(models.cnn_int8_bytes(), "cnn_int8")


@pytest.fixture(scope="session", autouse=True)
def _facts_of_this_session(tmp_path_factory):
    """Vet verdicts, arena figures and op probes kept for this session only: a test of a crash path must see
    the crash, not a verdict an earlier run kept in .tinyml_cache (pytest_tinyml.memo)."""
    from pytest_tinyml import memo

    previous = memo.set_root(tmp_path_factory.mktemp("facts"))
    yield
    memo.set_root(previous)


# tinyml-host, the firmware core's host build (tests/firmware_host.py builds it once per process).
@pytest.fixture(scope="session")
def host_binary(tmp_path_factory):
    from firmware_host import build_host

    return build_host(tmp_path_factory.mktemp("tinyml-host"))


@pytest.fixture
def board(host_binary):
    """``board(*args)`` starts tinyml-host on a pty (a ``HostBoard``); every one started is closed after the test."""
    from firmware_host import HostBoard

    boards = []

    def start(*args):
        boards.append(HostBoard(host_binary, *args))
        return boards[-1]

    yield start
    for b in boards:
        b.close()
