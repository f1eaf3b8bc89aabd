"""Throughput of the weight path: codec encode/decode and put/get on each store, as JSON.

Run: python bench/store.py [--size-mb 50] [--repeat 3] [--kubo-api ADDR]
Without --kubo-api a private offline KuboNode is started (and stopped) for the run.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from colearn_chain.codec import decode_weights, encode_weights
from colearn_chain.services.kubo import KuboNode
from colearn_chain.store import KuboStore, LocalStore, WeightStore
from colearn_chain.store.unixfs import cid_v0

MB = 1_000_000


def _best_seconds(action: Callable[[], object], repeat: int) -> float:
    """Fastest of `repeat` runs: the least disturbed by other work on the machine."""
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        best = min(best, time.perf_counter() - started)
    return best


def _rate(nbytes: int, seconds: float) -> dict[str, float]:
    return {"seconds": round(seconds, 4), "MB_per_s": round(nbytes / MB / seconds, 1)}


def bench_store(store: WeightStore, blob: bytes, repeat: int) -> dict[str, Any]:
    """Each put stores new bytes (a counter in the first 8 bytes), so every put really writes."""
    variants = [i.to_bytes(8, "big") + blob[8:] for i in range(repeat)]
    put_seconds, cids = [], []
    for variant in variants:
        started = time.perf_counter()
        cids.append(store.put(variant))
        put_seconds.append(time.perf_counter() - started)
    cid = cids[-1]
    return {
        "store": store.describe(),
        "cid": cid,
        "put": _rate(len(blob), min(put_seconds)),
        "get": _rate(len(blob), _best_seconds(lambda: store.get(cid, max_bytes=len(blob)), repeat)),
    }


def bench_codec(size: int, repeat: int) -> dict[str, Any]:
    """A model-like dict of float32 tensors totalling about `size` bytes."""
    rng = np.random.default_rng(0)
    rows = max(size // 4 // 1000, 1)
    weights = {
        "dense/kernel": rng.standard_normal((rows, 1000), dtype=np.float32),
        "dense/bias": rng.standard_normal(1000, dtype=np.float32),
    }
    blob = encode_weights(weights)
    return {
        "bytes": len(blob),
        "encode": _rate(len(blob), _best_seconds(lambda: encode_weights(weights), repeat)),
        "decode": _rate(len(blob), _best_seconds(lambda: decode_weights(blob, expected=weights), repeat)),
        "cid_v0": _rate(len(blob), _best_seconds(lambda: cid_v0(blob), repeat)),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size-mb", type=float, default=50.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--kubo-api", help="use this Kubo RPC API instead of starting a node")
    args = parser.parse_args(argv)
    size = int(args.size_mb * MB)
    blob = np.random.default_rng(0).integers(0, 256, size=size, dtype=np.uint8).tobytes()
    result: dict[str, Any] = {"blob_bytes": size, "repeat": args.repeat}
    result["codec"] = bench_codec(size, args.repeat)
    with tempfile.TemporaryDirectory(prefix="colearn-bench-") as tmp:
        result["local"] = bench_store(LocalStore(Path(tmp)), blob, args.repeat)
    status = 0
    try:
        if args.kubo_api:
            result["kubo"] = bench_store(KuboStore(args.kubo_api, timeout=120.0), blob, args.repeat)
        else:
            with KuboNode() as node:
                result["kubo"] = bench_store(KuboStore(node.api, timeout=120.0), blob, args.repeat)
    except (FileNotFoundError, RuntimeError) as error:
        result["kubo"] = {"error": str(error)}
        status = 1
    print(json.dumps(result, indent=2))
    return status


if __name__ == "__main__":
    sys.exit(main())
