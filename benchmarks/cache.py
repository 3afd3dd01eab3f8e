"""Cold vs warm wall time of building, training and converting zoo models through ``TinyMLCache``.

Run: ``.venv/bin/python benchmarks/cache.py [--models mlp,autoencoder,...] [--epochs 5] [--recipes float32,int8]``

Both passes use one fresh temporary cache directory: the cold pass trains and converts (a child process
does the conversions), the warm pass rebuilds the same seeded models and gets everything from the cache.
Building (``zoo.build``) is timed in both passes: it is not cached. Datasets are loaded once, untimed.
Goal: warm at least 20x faster than cold.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# model -> (dataset name, loader kwargs, build kwargs); small synthetic sets keep the cold pass short.
# The autoencoder learns digits x -> x ("digits_ae": digits with task "reconstruction").
PLAN = {
    "mlp": ("digits", {}, {"input_shape": (64,)}),
    "autoencoder": ("digits_ae", {}, {"input_shape": (64,)}),
    "gesture_cnn": ("gestures", {"n_train": 400, "n_test": 80}, {}),
    "audio_conv1d": ("keywords_seq", {"n_train": 400, "n_test": 80}, {}),
    "kws_dscnn": ("keywords", {"n_train": 400, "n_test": 80}, {}),
    "ic_resnet8": ("images32", {"n_train": 400, "n_test": 80}, {}),
    "ad_autoencoder": ("anomaly", {"n_train": 400, "n_test": 80}, {}),
}
DEFAULT_MODELS = "mlp,autoencoder,gesture_cnn,audio_conv1d,kws_dscnn,ic_resnet8,ad_autoencoder"


def run_pass(cache, plan, data, *, epochs: int, recipes: list[str]) -> dict:
    """Build, fit and convert every model once; returns seconds per phase and the artifacts' sha256."""
    from pytest_tinyml import zoo

    seconds = {"build": 0.0, "fit": 0.0, "convert": 0.0}
    shas = {}
    for name, (_, _, build_kwargs) in plan.items():
        ds = data[name]
        started = time.perf_counter()
        model = zoo.build(name, seed=0, **build_kwargs)
        seconds["build"] += time.perf_counter() - started

        started = time.perf_counter()
        model = cache.fit(model, ds, epochs=epochs, batch_size=32, seed=0)
        seconds["fit"] += time.perf_counter() - started

        for recipe in recipes:
            started = time.perf_counter()
            rep = ds.x_train if recipe in {"int8", "int16x8"} else None
            art = cache.convert(model, recipe, representative=rep, name=name)
            seconds["convert"] += time.perf_counter() - started
            shas[(name, recipe)] = (art.sha256, art.size)
    seconds["total"] = sum(seconds.values())
    return {"seconds": seconds, "shas": shas}


def load(datasets, name: str, kwargs: dict):
    if name == "digits_ae":
        return dataclasses.replace(datasets.load("digits"), task="reconstruction", num_classes=None)
    return datasets.load(name, **kwargs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=DEFAULT_MODELS, help=f"comma-separated zoo names (default {DEFAULT_MODELS})")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--recipes", default="float32,int8")
    args = parser.parse_args(argv)

    from pytest_tinyml import datasets
    from pytest_tinyml.cache import TinyMLCache

    names = [n for n in args.models.split(",") if n]
    unknown = [n for n in names if n not in PLAN]
    if unknown:
        parser.error(f"no benchmark plan for {unknown}; known: {sorted(PLAN)}")
    plan = {n: PLAN[n] for n in names}
    recipes = [r for r in args.recipes.split(",") if r]
    data = {name: load(datasets, ds_name, kwargs) for name, (ds_name, kwargs, _) in plan.items()}

    with tempfile.TemporaryDirectory(prefix="tinyml-cache-bench-") as root:
        cold = run_pass(TinyMLCache(root), plan, data, epochs=args.epochs, recipes=recipes)
        warm_cache = TinyMLCache(root)
        warm = run_pass(warm_cache, plan, data, epochs=args.epochs, recipes=recipes)

    print(f"models: {', '.join(names)}; recipes: {', '.join(recipes)}; epochs: {args.epochs}")
    print(f"{'phase':<10}{'cold s':>10}{'warm s':>10}{'ratio':>10}")
    for phase in ("build", "fit", "convert", "total"):
        c, w = cold["seconds"][phase], warm["seconds"][phase]
        print(f"{phase:<10}{c:>10.2f}{w:>10.3f}{c / w if w else float('inf'):>9.1f}x")
    ratio = cold["seconds"]["total"] / warm["seconds"]["total"]
    same = cold["shas"] == warm["shas"]
    print(f"warm pass: {warm_cache.hits} hits, {warm_cache.misses} misses; artifacts identical: {same}")
    for (name, recipe), (sha, size) in sorted(cold["shas"].items()):
        print(f"  {name:<16}{recipe:<10}{size:>9} bytes  {sha[:12]}")
    print(f"warm is {ratio:.1f}x faster than cold (goal >= 20x): {'OK' if ratio >= 20 else 'BELOW GOAL'}")
    return 0 if same and warm_cache.misses == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
