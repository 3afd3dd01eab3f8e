"""A data set slice through the sim board with ``Board.predict``: streamed in batches (protocol 1.2) vs one sample
at a time (``tinyml-load input`` + ``tinyml-infer 1 0`` + ``tinyml-outputs`` per sample: what a firmware before
1.2 gets, and what ``Board.benchmark`` does for its inputs).

Both run the committed test model (``tests/data/board_mlp_int8.tflite``, 64 int8 in, 10 out) on the same slice
on one sim, interleaved repetitions; the model is on the board before either is timed. Printed side by side:
the median wall time, the commands sent over the serial link and the bytes written to it (what a real UART at
921600 baud pays for), and whether both gave the same integers.

    .venv/bin/python benchmarks/board_predict.py                    # 500 samples, 5 repetitions
    .venv/bin/python benchmarks/board_predict.py --samples 300 --repeats 9
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

MODEL = Path(__file__).resolve().parent.parent / "tests" / "data" / "board_mlp_int8.tflite"


class Counter:
    """Counts what the host writes to the link (commands end with '%')."""

    def __init__(self, link) -> None:
        self.link, self.commands, self.bytes = link, 0, 0
        self._write = link.write
        link.write = self.write

    def write(self, data: bytes):
        self.commands += data.count(b"%")
        self.bytes += len(data)
        return self._write(data)

    def take(self) -> tuple[int, int]:
        figures, self.commands, self.bytes = (self.commands, self.bytes), 0, 0
        return figures


def main(argv: list[str] | None = None) -> int:
    import numpy as np

    from pytest_tinyml.board.simboard import open_sim
    from pytest_tinyml.options import parse_board

    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    model = MODEL.read_bytes()
    x = np.random.default_rng(0).uniform(0, 16, (args.samples, 64)).astype(np.float32)
    times = {"batched": [], "one by one": []}
    traffic, outputs = {}, {}
    with tempfile.TemporaryDirectory() as cache, open_sim(parse_board("sim"), cache_dir=cache, timeout=30) as board:
        counter = Counter(board.client.link)
        board.predict(model, x[:2])  # the model goes up once, before anything is timed
        protocol = board.info["protocol"]
        counter.take()
        for _ in range(args.repeats):
            start = time.perf_counter()
            predictions = board.predict(model, x)
            times["batched"].append(time.perf_counter() - start)
            traffic["batched"] = counter.take()
            outputs["batched"] = predictions.raw_outputs
            board.info["protocol"] = "1.1"  # as a firmware before batches reports itself: one sample at a time
            start = time.perf_counter()
            single = board.predict(model, x)
            times["one by one"].append(time.perf_counter() - start)
            board.info["protocol"] = protocol
            traffic["one by one"] = counter.take()
            outputs["one by one"] = single.raw_outputs
        batches = predictions.batches
    same = bool(np.array_equal(outputs["batched"], outputs["one by one"]))
    print(f"{args.samples} samples of a 64-byte int8 input on the sim, {args.repeats} interleaved repetitions; "
          f"batches {list(batches)}")
    print(f"{'path':<12} {'median s':>9} {'commands':>9} {'bytes sent':>11}")
    for name in times:
        commands, written = traffic[name]
        print(f"{name:<12} {statistics.median(times[name]):>9.3f} {commands:>9} {written:>11}")
    ratio = statistics.median(times["one by one"]) / statistics.median(times["batched"])
    print(f"batched is {ratio:.1f}x faster, {traffic['one by one'][0] / traffic['batched'][0]:.0f}x fewer commands; "
          f"same integers: {'yes' if same else 'NO'}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
