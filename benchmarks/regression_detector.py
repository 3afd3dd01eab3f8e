"""How good is the latency regression gate? False alarms on no change, detection of a 10% slowdown.

Simulates per-run timings with lognormal noise (coefficient of variation 2-5%, 30 samples a side) and runs
them through the very function the plugin uses (``pytest_tinyml.history.compare.compare_samples``).

    .venv/bin/python benchmarks/regression_detector.py            # 4000 trials per cell, seed 7
    .venv/bin/python benchmarks/regression_detector.py --trials 500 --seed 1

Goals (issue 7): false-alarm rate <= 1% with no change, detection rate >= 95% for a 10% slowdown, at the
board defaults (alpha 0.01, min_effect 5%). The host default (min_effect 10%) is shown too: a slowdown of
exactly the floor is caught about half the time by construction.
"""

from __future__ import annotations

import argparse
import math
import sys
import time

import numpy as np

from pytest_tinyml.history.compare import DEFAULT_ALPHA, DEFAULT_MIN_EFFECT, compare_samples

MEDIAN_US = 1000.0
CVS = (0.02, 0.03, 0.04, 0.05)


def timings(rng: np.random.Generator, cv: float, n: int, scale: float = 1.0) -> np.ndarray:
    """``n`` lognormal timings with median ``MEDIAN_US * scale`` and coefficient of variation ``cv``."""
    sigma = math.sqrt(math.log1p(cv * cv))
    return MEDIAN_US * scale * rng.lognormal(0.0, sigma, n)


def rate(rng: np.random.Generator, *, cv: float, slowdown: float, n: int, trials: int,
         min_effect: float) -> tuple[float, float]:
    """Fractions of trials the gate calls a regression, and of trials whose p-value alone is <= alpha."""
    hits = significant = 0
    for _ in range(trials):
        base = timings(rng, cv, n)
        now = timings(rng, cv, n, 1.0 + slowdown)
        result = compare_samples(base, now, alpha=DEFAULT_ALPHA, min_effect=min_effect)
        hits += result.is_regression
        significant += result.p_value <= DEFAULT_ALPHA
    return hits / trials, significant / trials


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=4000, help="trials per cell (default 4000)")
    parser.add_argument("--samples", type=int, default=30, help="samples a side (default 30)")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    started = time.perf_counter()
    print(f"lognormal timings, median {MEDIAN_US:.0f} us, n = {args.samples} a side, {args.trials} trials per cell, "
          f"alpha = {DEFAULT_ALPHA}, seed = {args.seed}")
    print(f"{'gate':<22}{'CV':>6}{'false alarms (no change)':>27}{'(p <= alpha alone)':>20}"
          f"{'detected (10% slower)':>24}")
    worst_false, worst_detect = 0.0, 1.0
    for kind in ("board", "host"):
        min_effect = DEFAULT_MIN_EFFECT[kind]
        for cv in CVS:
            false, p_only = rate(rng, cv=cv, slowdown=0.0, n=args.samples, trials=args.trials, min_effect=min_effect)
            detect, _ = rate(rng, cv=cv, slowdown=0.10, n=args.samples, trials=args.trials, min_effect=min_effect)
            if kind == "board":
                worst_false, worst_detect = max(worst_false, false), min(worst_detect, detect)
            print(f"{kind + f' (min_effect {min_effect:.0%})':<22}{cv:>6.0%}{false:>27.2%}{p_only:>20.2%}"
                  f"{detect:>24.2%}")
    ok = worst_false <= 0.01 and worst_detect >= 0.95
    print(f"board defaults over CV 2-5%: worst false-alarm rate {worst_false:.2%} (goal <= 1%), "
          f"worst detection rate {worst_detect:.2%} (goal >= 95%): {'MET' if ok else 'NOT MET'}")
    print(f"({time.perf_counter() - started:.1f} s)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
