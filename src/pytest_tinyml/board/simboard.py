"""Open a ``sim`` board: build and start ``tinyml-host`` (see :mod:`pytest_tinyml.board.sim`) and connect.

A cached ``tinyml-host`` that cannot start or fails its start-up handshake (a truncated or foreign binary in
the cache) is rebuilt once from the sources; a fresh build that fails the same way is reported with the
sim's stderr.
"""

from __future__ import annotations

from pathlib import Path

from pytest_tinyml.board import flash, sim
from pytest_tinyml.board.board import Board
from pytest_tinyml.board.client import BenchClient
from pytest_tinyml.board.transport import open_port
from pytest_tinyml.errors import BoardDisconnected, BoardError, FirmwareError

SIM_BAUD = 921600  # a pty ignores it; kept equal to the firmware's so messages read the same
# The sim's start-up (tinyml-host, the engine's imports, the built-in model's arena bisected once per cache)
# may take longer than a short --tinyml-timeout; a broken binary fails it at once (the process exits).
_HANDSHAKE_S = 60.0


def open_sim(spec, *, timeout: float = 30.0, skip_flash: bool = False, firmware_dir: str | None = None,
             cache_dir: str = ".tinyml_cache", arena_size: int = sim.DEFAULT_ARENA, extra: list[str] | None = None,
             stale_build: str | None = None) -> Board:
    """Start the simulator a ``sim[:delay_us=N,jitter_us=N,seed=N]`` spec describes and return its Board.

    "Flashing" the sim means starting the host program built from the current sources: a sim reporting
    another build (``stale_build``, for tests) is restarted, or refused under ``skip_flash``.

    Example:
        >>> from pytest_tinyml.options import parse_board
        >>> board = open_sim(parse_board("sim:delay_us=500"))  # doctest: +SKIP
    """
    fw_dir = flash.locate_firmware_dir(firmware_dir)
    binary, build_id = sim.build_host(fw_dir, Path(cache_dir))
    params = {k: int(spec.param(k, "0")) for k in ("delay_us", "jitter_us", "seed")}

    def launch(build: str) -> Board:
        process = sim.start(binary, build, arena_size=arena_size, extra=extra, log_dir=Path(cache_dir) / "sim",
                            builtin_model=sim.builtin_model(fw_dir), cache_dir=Path(cache_dir), **params)
        try:
            link = open_port(process.port, SIM_BAUD)
        except BaseException as exc:
            process.stop()
            code = process.process.poll()
            if code is not None and isinstance(exc, BoardError):  # it died before we could open its pty
                raise FirmwareError(f"the sim board {binary.name} exited with status {code} at start-up:\n"
                                    f"{process.stderr_tail()}", port=spec.text) from None
            raise
        client = BenchClient(link, port=f"{spec.text} ({process.port})", timeout=max(timeout, _HANDSHAKE_S),
                             baud=SIM_BAUD)
        board = Board(client, name=spec.text, closer=process.stop, where="sim")
        board.process = process
        try:
            board.connect()
        except BoardError as exc:
            board.close()
            tail = process.stderr_tail()
            if tail:
                exc.log = (exc.log + "\n--- tinyml-host stderr ---\n" + tail)[-8000:]
            raise
        except BaseException:
            board.close()
            raise
        client.timeout = float(timeout)
        return board

    def launch_or_rebuild(build: str) -> Board:
        nonlocal binary
        try:
            return launch(build)
        except (FirmwareError, BoardDisconnected) as first:
            # A cached binary that cannot start or dies before m-ready: rebuild it once from the sources.
            binary, _ = sim.build_host(fw_dir, Path(cache_dir), rebuild=True)
            try:
                return launch(build)
            except BoardError as again:
                again.args = (f"{again.args[0]}\n(the sim was rebuilt from {fw_dir} after its cached binary "
                              f"failed to start: {first.args[0].splitlines()[0]})",)
                raise

    board = launch_or_rebuild(stale_build or build_id)
    try:
        stale = flash.check_current(board.identity.firmware_hash, build_id, port=board.client.port,
                                    skip_flash=skip_flash, log=board.client.log)
    except BaseException:
        board.close()
        raise
    if stale:
        board.close()
        board = launch(build_id)
    return board
