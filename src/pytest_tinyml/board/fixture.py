"""The ``tinyml_board`` fixture's logic: one leased board per pytest-xdist worker, opened once, reused.

Worker ``gwN`` first tries the N-th ``--tinyml-board`` and then the others; with more workers than boards it
waits for a lease to come free. The board stays open across the worker's tests; it is handed over between two
tests when another worker waits for it, and closed, its lease released, by a ``config.add_cleanup`` callback
at the end -- also when tests failed or the board never opened.
"""

from __future__ import annotations

import pytest

from pytest_tinyml import options
from pytest_tinyml.board import transport

WRONG_KIND = "wrong board kind: the test's tinyml_board(kind=...) asks for {want}, board {board} is {have}"
# Waiting for another worker's board can last as long as that worker's share of the suite.
_LEASE_WAIT_S = 1800.0


class BoardSession:
    """Leases and opens this worker's board on first use; remembers an opening error so later tests fail fast.

    Example:
        >>> session = BoardSession(config)  # doctest: +SKIP
        >>> session.board().identity.where  # doctest: +SKIP
        'sim'
    """

    def __init__(self, config, *, lease_wait: float = _LEASE_WAIT_S) -> None:
        self.config = config
        self.lease_wait = lease_wait
        self.lease: transport.Lease | None = None
        self._board = None
        self._error: BaseException | None = None

    def board(self):
        if self._board is not None:
            return self._board
        if self._error is not None:
            raise self._error
        try:
            self._board = self._open()
        except Exception as exc:
            self._error = exc
            self.close()
            raise
        return self._board

    def _open(self):
        from pytest_tinyml.board.connect import open_board

        resolved = options.of(self.config)
        specs = {spec.text: spec for spec in resolved.boards}
        scopes = {text: transport.run_scope() if spec.is_sim else "machine" for text, spec in specs.items()}
        self.lease = transport.acquire(list(specs), preferred=transport.worker_index(), scopes=scopes,
                                       timeout=self.lease_wait)
        spec = specs[self.lease.board]
        return open_board(
            spec,
            baud=resolved.baud,
            timeout=resolved.timeout,
            skip_flash=resolved.skip_flash,
            firmware_dir=resolved.firmware_dir,
            cache_dir=resolved.cache_dir,
            target=resolved.target,
            on_result=record_result,
        )

    def hand_over_if_wanted(self) -> None:
        """Between tests: close the board and release the lease when another worker waits for a board."""
        if self.lease is not None and self.lease.held and self.lease.wanted():
            self.close()
            self.lease = None

    def close(self) -> None:
        board, self._board = self._board, None
        try:
            if board is not None:
                board.close()
        finally:
            if self.lease is not None:
                self.lease.release()


def record_result(result, artifact) -> None:
    """``Board.on_result`` of the fixture's boards: figures to the running test's report row, latency samples
    to the history, with ``context["board"]`` = the board's ``BoardIdentity.as_dict()``.

    Example:
        >>> board.on_result = record_result  # doctest: +SKIP
    """
    from pytest_tinyml import history, report

    report.record(latency_median_us=result.latency_us.median, arena_kb=result.arena_kb, where=result.where)
    identity = result.identity.as_dict() if result.identity is not None else {"where": result.where}
    context = {"board": identity, "model_sha256": result.model_sha256,
               "recipe": getattr(artifact, "recipe", None), "model": getattr(artifact, "name", None),
               "runs": result.runs, "warmup": result.warmup}
    history.observe(kind="board", samples_us=list(result.latency_us.samples), context=context,
                    remeasure=getattr(result, "remeasure", None))


_SESSION = pytest.StashKey[BoardSession]()


def session_for(config) -> BoardSession:
    """This worker's :class:`BoardSession`, created on first use and closed at the end of the session."""
    session = config.stash.get(_SESSION, None)
    if session is None:
        session = config.stash[_SESSION] = BoardSession(config)
        config.add_cleanup(session.close)
    return session


def board_for_test(request):
    """The board for one test: this worker's leased board, or a skip when the test wants another chip.

    Example:
        >>> board = board_for_test(request)  # doctest: +SKIP
    """
    session = session_for(request.config)
    board = session.board()
    request.addfinalizer(session.hand_over_if_wanted)
    skip_unless_kind(request, board, board.name)
    return board


def _spelled(chip) -> str:
    """A chip name as ``estimate()`` reads a target: ``kind="ESP32-S3"`` names the esp32s3 board."""
    from pytest_tinyml.board.identity import chip_name

    return chip_name(chip)


def skip_unless_kind(request, board, name: str) -> None:
    """Skip the test when its ``tinyml_board(kind=...)`` marker names other chips than the board reports."""
    marker = request.node.get_closest_marker("tinyml_board")
    wanted = marker.kwargs.get("kind") if marker is not None else None
    if wanted:
        have = (board.identity.chip if board.identity is not None else None) or "unknown"
        allowed = (wanted,) if isinstance(wanted, str) else tuple(wanted)
        if _spelled(have) not in {_spelled(a) for a in allowed}:
            pytest.skip(WRONG_KIND.format(want=" or ".join(allowed), board=name, have=have))
