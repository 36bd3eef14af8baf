"""Shared helpers for the benchmarks: a throwaway instance, timing, the Ed25519 reference rates."""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402

__all__ = ["REPO", "ed25519_rates", "rate", "percentile", "temp_instance_config", "pin_one_core", "median"]


def pin_one_core() -> None:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})


def rate(fn: Callable[[], object], *, seconds: float = 1.0) -> float:
    """Calls per second of ``fn`` over about ``seconds``."""
    n, start = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return n / elapsed


def ed25519_rates(seconds: float = 1.0) -> dict[str, float]:
    """The raw signing and verifying rates of this interpreter, the reference for our own figures."""
    key = Ed25519PrivateKey.generate()
    public = key.public_key()
    message = b'{"gtin":"08936000010010","lot":"LOT-1","serial":"K7M2Q9X4ZP3R","t":"unit"}'
    signature = key.sign(message)
    from nacl.bindings import crypto_sign_open

    public_raw = public.public_bytes_raw()
    return {"sign_per_s": rate(lambda: key.sign(message), seconds=seconds),
            "verify_per_s": rate(lambda: public.verify(signature, message), seconds=seconds),
            # what keys.signing verifies with: libsodium through PyNaCl
            "verify_libsodium_per_s": rate(lambda: crypto_sign_open(signature + message, public_raw),
                                           seconds=seconds)}


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def temp_instance_config(database_url: str | None = None) -> dict[str, str]:
    path = Path(tempfile.mkdtemp(prefix="bench-instance-"))
    return {"INSTANCE_DIR": str(path), "KEY_PASSPHRASE": "bench-passphrase", "SECRET_KEY": "b" * 32,
            "SCAN_SALT": "bench", "RATE_LIMITS": "off", "BASE_URL": "https://verify.example.vn",
            "DATABASE_URL": database_url or f"sqlite:///{path / 'registry.db'}"}
