"""Simulated cheap-phone photos of printed labels, for decoder tests and benchmarks.

``phone_photo(label, seed=...)`` places a label image on a textured background and applies what
a hand-held phone does to it: a perspective tilt of up to about 15 degrees, a rotation by any
angle, uneven light with a soft glare blob, focus blur (sigma 0-1.2 px at 1600x1200), sensor
noise and JPEG compression at quality 60-90. The same seed always gives the same bytes.

This is the one copy of the generator; ``bench/decoding.py`` imports it from here.
"""

from __future__ import annotations

import io
import math

import cv2
import numpy as np
from PIL import Image

__all__ = ["phone_photo"]


def _texture(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A table-top like background: smooth colour blotches plus fine grain, RGB uint8."""
    base = rng.uniform(60, 200, size=3)
    out = np.zeros((height, width, 3), np.float32)
    out[:] = base
    for cells, amplitude in ((6, 30.0), (40, 14.0), (200, 6.0)):
        coarse = rng.normal(0, 1, size=(cells * height // width + 2, cells + 2)).astype(np.float32)
        tint = 1.0 + rng.uniform(-0.15, 0.15, size=3).astype(np.float32)  # mostly brightness
        out += amplitude * cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)[:, :, None] * tint
    # streaks, like wood grain or a fabric weave
    streaks = rng.normal(0, 1, size=(1, width // 4 + 2)).astype(np.float32)
    streaks = cv2.resize(streaks, (width, height), interpolation=cv2.INTER_LINEAR)
    out += 10.0 * streaks[:, :, None]
    return np.clip(out, 0, 255)


def _corners(rng: np.random.Generator, w: float, h: float, focal: float) -> np.ndarray:
    """Label corners after a 3-D tilt (<= 15 degrees about x and y) and an in-plane rotation."""
    ax, ay = np.radians(rng.uniform(-15, 15, size=2))
    az = rng.uniform(0, 2 * math.pi)
    rx = np.array([[1, 0, 0], [0, math.cos(ax), -math.sin(ax)], [0, math.sin(ax), math.cos(ax)]])
    ry = np.array([[math.cos(ay), 0, math.sin(ay)], [0, 1, 0], [-math.sin(ay), 0, math.cos(ay)]])
    rz = np.array([[math.cos(az), -math.sin(az), 0], [math.sin(az), math.cos(az), 0], [0, 0, 1]])
    pts = np.array([[-w / 2, -h / 2, 0], [w / 2, -h / 2, 0], [w / 2, h / 2, 0], [-w / 2, h / 2, 0]])
    pts = pts @ (rz @ ry @ rx).T
    scale = focal / (focal + pts[:, 2])
    return np.stack([pts[:, 0] * scale, pts[:, 1] * scale], axis=1)


def phone_photo(
    img: Image.Image,
    *,
    seed: int,
    size: tuple[int, int] = (1600, 1200),
    quality: tuple[int, int] = (60, 90),
) -> bytes:
    """JPEG bytes of a simulated phone photo of ``img`` (a label) of about ``size`` pixels."""
    rng = np.random.default_rng(seed)
    width, height = size
    unit = width / 1600.0  # every length below is given for a 1600x1200 photo

    label = np.asarray(img.convert("RGB"), dtype=np.float32)
    # printed on slightly off-white paper with a margin around it
    margin = max(4, int(0.06 * max(label.shape[:2])))
    paper = rng.uniform(225, 250, size=3).astype(np.float32)
    framed = np.empty((label.shape[0] + 2 * margin, label.shape[1] + 2 * margin, 3), np.float32)
    framed[:] = paper
    framed[margin:-margin, margin:-margin] = label * (paper / 255.0)
    lh, lw = framed.shape[:2]

    # label size in the photo: its longest side 30-50 % of the photo's shorter side
    target = rng.uniform(0.30, 0.50) * min(width, height)
    k = target / max(lw, lh)
    corners = _corners(rng, lw * k, lh * k, focal=1.4 * width)
    lo = -corners.min(axis=0) + 0.03 * np.array([width, height])
    hi = np.array([width, height]) - corners.max(axis=0) - 0.03 * np.array([width, height])
    offset = rng.uniform(lo, np.maximum(hi, lo + 1))
    dst = (corners + offset).astype(np.float32)
    src = np.array([[0, 0], [lw, 0], [lw, lh], [0, lh]], np.float32)
    homography = cv2.getPerspectiveTransform(src, dst)

    canvas = _texture(rng, width, height)
    warped = cv2.warpPerspective(framed, homography, (width, height), flags=cv2.INTER_AREA
                                 if k < 1 else cv2.INTER_LINEAR)
    mask = cv2.warpPerspective(np.ones((lh, lw), np.float32), homography, (width, height),
                               flags=cv2.INTER_LINEAR)[:, :, None]
    photo = canvas * (1 - mask) + warped * mask

    # uneven light: a broad gradient and a soft glare blob
    xs = np.arange(width, dtype=np.float32)
    ys = np.arange(height, dtype=np.float32)
    gx, gy = rng.uniform(-1, 1, size=2)
    light = 1.0 + 0.18 * (gx * (xs[None, :] / width - 0.5) + gy * (ys[:, None] / height - 0.5))
    photo *= (light * rng.uniform(0.8, 1.05))[:, :, None]
    cx, cy = rng.uniform(0, width), rng.uniform(0, height)
    radius = rng.uniform(120, 320) * unit
    glare = np.outer(np.exp(-((ys - cy) ** 2) / (2 * radius**2)), np.exp(-((xs - cx) ** 2) / (2 * radius**2)))
    photo += (rng.uniform(30, 80) * glare)[:, :, None]

    sigma = rng.uniform(0.0, 1.2) * unit
    if sigma > 0.05:
        photo = cv2.GaussianBlur(photo, (0, 0), sigma)
    photo += rng.standard_normal(size=photo.shape, dtype=np.float32) * np.float32(rng.uniform(2, 6))
    photo = np.clip(photo, 0, 255).astype(np.uint8)

    out = io.BytesIO()
    Image.fromarray(photo, "RGB").save(out, "JPEG", quality=int(rng.integers(quality[0], quality[1] + 1)))
    return out.getvalue()
