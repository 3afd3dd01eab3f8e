"""The board side of ``assert_budget``: which board's figures judge a target's budget, and what it measured.

A board counts as the measurement of ``target`` only when it is a real device (``where="device"``) whose
``BoardIdentity.chip`` is that target. The sim never counts for a target: it runs TFLite Micro on the host
(the 64-bit arena, the host's clock) and says ``chip=host-sim``, so a budget for ``esp32s3`` is then judged on
the estimate, and the report says so. Without ``target``, a board's own figures are used as they are
(``where`` = ``device`` or ``sim``).

``board`` is what the test passes: a ``Board`` (the ``tinyml_board`` fixture; it is benchmarked on the
model), a ``BoardResult`` of that model, ``False`` (always the estimate), or ``None``: inside pytest with
``--tinyml-board`` naming a serial or network board, this worker's leased board (the one the fixture hands
out) when a ``target`` is given. An explicit device of another chip is a ``ConfigError``; the session's board
of another chip, or the sim, leaves the budget to the estimate with a note.
"""

from __future__ import annotations

from dataclasses import dataclass

from pytest_tinyml.errors import ConfigError


@dataclass(frozen=True)
class Measurement:
    """What a board measured for a budget: its arena (bytes) and median latency (ms), and which board it was.

    Example:
        >>> m = Measurement("device", "/dev/ttyUSB0", "esp32s3", 240, 23152, 6.1, {"chip": "esp32s3"}, None, 20)
        >>> m.arena_kb, m.label
        (22.609375, 'esp32s3 device /dev/ttyUSB0')
    """

    where: str
    board: str
    chip: str | None
    cpu_mhz: int | None
    arena_bytes: int | None
    latency_ms: float
    identity: dict
    model_sha256: str | None
    runs: int
    run_id: str | None = None  # the BoardResult's: one benchmark judged twice is one run

    @property
    def arena_kb(self) -> float | None:
        return None if self.arena_bytes is None else self.arena_bytes / 1024

    @property
    def label(self) -> str:
        """Chip, where and port: ``esp32s3 device /dev/ttyUSB0``, or ``the sim (host-sim)``."""
        if self.where == "sim":
            return f"the sim ({self.chip or 'host-sim'})"
        return f"{self.chip or 'board'} {self.where} {self.board}"


def _is_board(value) -> bool:
    from pytest_tinyml._model_io import is_board  # the one test of "an open board"

    return is_board(value)


def _is_result(value) -> bool:
    """A ``BoardResult`` of ``benchmark`` (latency and arena), not predictions without timings."""
    return hasattr(value, "latency_us") and hasattr(value, "arena_bytes")


def _chip_and_where(value) -> tuple[str | None, str]:
    identity = getattr(value, "identity", None)
    chip = getattr(identity, "chip", None) if identity is not None else None
    if chip is None and _is_result(value):
        chip = (value.info or {}).get("chip")
    return chip, str(getattr(value, "where", "device"))


def _session_board(target: str):
    """This worker's leased board when ``--tinyml-board`` names one that can be a ``target`` (not the sim);
    ``(None, note)`` when there is none, or it is another chip."""
    from pytest_tinyml import options, report

    item = report.current_item()
    if item is None:
        return None, None
    specs = options.of(item.config).boards
    if not specs:
        return None, None
    if all(s.is_sim for s in specs):
        return None, f"the sim board (chip host-sim) is not an {target}: the budget is judged on the estimate"
    if any(s.kind == "embedded" for s in specs):  # its dut comes from pytest-embedded's fixtures only
        return None, "--tinyml-board=embedded: pass board=tinyml_board to measure on it"
    from pytest_tinyml.board.fixture import session_for

    session = session_for(item.config)
    board = session.board()
    item.addfinalizer(session.hand_over_if_wanted)  # as the tinyml_board fixture does
    chip, where = _chip_and_where(board)
    if where != "device" or chip != target:
        return None, (f"board {board.name} (chip {chip or 'unknown'}, {where}) is not an {target}: the budget is "
                      "judged on the estimate")
    return board, None


def choose(board, target: str | None):
    """``(board or result to measure on, or None, note)``: the note says why no board was used.

    Example:
        >>> choose(False, "esp32s3")
        (None, None)
    """
    if board is False:
        return None, None
    if board is None:
        return _session_board(target) if target is not None else (None, None)
    if not (_is_board(board) or _is_result(board)):
        raise ConfigError(f"board= must be a board (the tinyml_board fixture), a BoardResult of this model, None "
                          f"(the session's board) or False (the estimate); got {type(board).__name__}")
    chip, where = _chip_and_where(board)
    if target is None:
        return board, None
    if where == "sim":
        return None, (f"the sim (chip {chip or 'host-sim'}) is not an {target}: its figures are the host's, so the "
                      "budget is judged on the estimate")
    if chip != target:
        name = getattr(board, "name", None) or "the board result"
        raise ConfigError(f"{name} reports chip {chip or 'unknown'}, the budget is for target={target!r}: its "
                          f"figures are not an {target}'s. Mark the test tinyml_board(kind={target!r}) so it runs "
                          f"on that chip, pass target={chip!r}, or board=False for the estimate")
    return board, None


def measure(board, artifact, *, runs: int = 20, warmup: int = 3) -> Measurement:
    """Benchmark ``artifact`` on ``board`` (or check that a ``BoardResult`` is of it) and take its figures.

    Example:
        >>> m = measure(tinyml_board, artifact)  # doctest: +SKIP
        >>> m.where, m.latency_ms  # doctest: +SKIP
        ('device', 6.1)
    """
    if _is_board(board):
        result = board.benchmark(artifact, runs=runs, warmup=warmup)
        name = board.name
    else:
        result, name = board, str((board.info or {}).get("port") or "board result")
        if result.model_sha256 and result.model_sha256 != artifact.sha256:
            raise ConfigError(f"the board result is of model sha256 {result.model_sha256[:12]}, the budget's model "
                              f"{artifact.name} is {artifact.sha256[:12]}: benchmark the same artifact")
    if result.model_sha256 is None:
        raise ConfigError(f"{name} does not say which model it ran (an MLPerf Tiny firmware?): its figures cannot "
                          "judge this model's budget; flash the tinyml-bench firmware")
    identity = result.identity.as_dict() if result.identity is not None else {"where": result.where}
    chip, where = _chip_and_where(result)
    return Measurement(where=where, board=name, chip=chip, cpu_mhz=identity.get("cpu_mhz"),
                       arena_bytes=result.arena_bytes, latency_ms=result.latency_us.median / 1000.0,
                       identity=identity, model_sha256=result.model_sha256, runs=result.runs,
                       run_id=getattr(result, "run_id", None))
