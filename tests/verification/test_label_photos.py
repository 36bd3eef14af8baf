"""Phone-like photos of our own printed labels: genuine at least 98 % of the time; the same
photos with one character of the signature changed are never genuine, and counterfeit whenever
the changed code is read, which it must be at least 98 % of the time too (the serials are random,
so which photo, if any, the decoders miss changes from run to run)."""

from __future__ import annotations

import io

from PIL import Image

from registry.labels import LabelData, render_png
from registry.services import Actor, Role
from tests.conftest import GTIN, batch_data
from tests.verification.phone_photos import phone_photo

PHOTOS = 50


def _tamper(url: str, seed: int) -> str:
    head, sig = url.rsplit(".", 1)
    pos = seed % len(sig)
    replacement = "A" if sig[pos] != "A" else "B"
    return f"{head}.{sig[:pos]}{replacement}{sig[pos + 1:]}"


def _photo(url: str, serial: str, seed: int, expiry) -> bytes:
    label = render_png(LabelData(url=url, gtin=GTIN, lot="LOT-1", serial=serial, expiry=expiry,
                                 product_name="Cà phê rang xay Buôn Ma Thuột"))
    return phone_photo(Image.open(io.BytesIO(label)).convert("RGB"), seed=seed)


def _verdict(client, photo: bytes, seed: int) -> dict:
    r = client.post("/api/v1/verify/image", data={"image": (io.BytesIO(photo), "photo.jpg"),
                                                  "client_id": f"phone-{seed}"})
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def test_phone_photos_of_labels(client, registry, world, session):
    actor = Actor(role=Role.PRODUCER, producer_id=world.producer_id)
    batch = registry.register_batch(actor, batch_data())
    issued = registry.issue_serials(actor, GTIN, "LOT-1", PHOTOS)
    units = [(serial, registry.serial_url(batch, serial, s)) for serial, s in issued]
    expiry = batch.expiry_date
    session.commit()

    genuine = 0
    misses = []
    for seed, (serial, url) in enumerate(units):
        body = _verdict(client, _photo(url, serial, seed, expiry), seed)
        if body["verdict"] == "genuine":
            genuine += 1
        else:
            misses.append((seed, body["verdict"], [c["text"][:60] for c in body["codes"]]))
    print(f"genuine on {genuine}/{PHOTOS} phone photos; misses: {misses}")
    assert genuine / PHOTOS >= 0.98, misses

    caught = 0
    for seed, (serial, url) in enumerate(units):
        tampered = _tamper(url, seed)
        body = _verdict(client, _photo(tampered, serial, seed, expiry), seed)
        seen = (seed, body["verdict"], [c["text"] for c in body["codes"]])
        assert body["verdict"] != "genuine", seen  # a changed signature never passes
        if any(c["text"] == tampered for c in body["codes"]):  # the changed code was read: caught
            assert body["verdict"] == "counterfeit", seen
            caught += 1
    assert caught / PHOTOS >= 0.98, caught
