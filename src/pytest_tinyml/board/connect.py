"""Open a board: a serial device (checked against the firmware sources, rebuilt and flashed when stale) or
the sim (:mod:`pytest_tinyml.board.simboard`). The one place that turns a ``BoardSpec`` into a ``Board``.
"""

from __future__ import annotations

from pytest_tinyml.board.board import Board
from pytest_tinyml.board.client import BenchClient


def open_board(spec, *, baud: int = 921600, timeout: float = 30.0, skip_flash: bool = False,
               firmware_dir: str | None = None, cache_dir: str = ".tinyml_cache", target: str | None = None,
               sim_options: dict | None = None, on_result=None) -> Board:
    """Open the board a ``BoardSpec`` names, make sure it runs the current firmware, and connect.

    A device whose firmware build differs from the sources is rebuilt (idf.py) and flashed (esptool), unless
    ``skip_flash``: then it is a ``FirmwareError``. ``sim`` starts the host simulator. ``on_result`` is
    handed every benchmark result (see :class:`~pytest_tinyml.board.board.Board`).

    Example:
        >>> from pytest_tinyml.options import parse_board
        >>> with open_board(parse_board("sim")) as board:  # doctest: +SKIP
        ...     board.identity.where
        'sim'
    """
    from pytest_tinyml.board import flash

    if spec.is_sim:
        from pytest_tinyml.board.simboard import open_sim

        board = open_sim(spec, timeout=timeout, skip_flash=skip_flash, firmware_dir=firmware_dir,
                         cache_dir=cache_dir, **(sim_options or {}))
        board.on_result = on_result
        return board
    from pytest_tinyml.board.transport import open_port

    port = spec.text

    def connect() -> Board:
        board = Board(BenchClient(open_port(port, baud), port=port, timeout=timeout, baud=baud), name=port,
                      where="device", on_result=on_result)
        try:
            board.connect()
        except BaseException:
            board.close()
            raise
        return board

    board = connect()
    fw_dir = flash.locate_firmware_dir(firmware_dir)
    expected = flash.device_build_id(fw_dir)
    reported = None if board.mlperf_only else board.identity.firmware_hash
    if board.mlperf_only and skip_flash:
        return board  # an MLPerf Tiny firmware flashed by hand: benchmark(None) times its built-in model
    try:
        stale = flash.check_current(reported, expected, port=port, skip_flash=skip_flash, log=board.client.log,
                                    by_hand=flash.by_hand_command(fw_dir, expected))
    except BaseException:
        board.close()
        raise
    if not stale:
        return board
    chip = board.identity.chip
    config = target or flash.default_board_config(fw_dir, chip)
    board.close()
    if not config:
        raise flash.FirmwareError(f"cannot tell which board configuration to build for {port} (it reports chip "
                                  f"{chip or 'unknown'!r}): pass --tinyml-target (e.g. esp32s3, esp32c3-usb)",
                                  port=port)
    firmware = flash.build(fw_dir, config, cache_dir, expected)
    flash.flash(port, firmware)
    board = connect()
    if not flash.same_build_hash(board.identity.firmware_hash or "", firmware.build_hash):
        board.close()
        raise flash.FirmwareError(f"{port} still reports build {board.identity.firmware_hash} after flashing "
                                  f"{firmware.build_hash}: the firmware does not embed TINYML_BUILD_ID; check "
                                  "firmware/main/CMakeLists.txt", port=port)
    return board
