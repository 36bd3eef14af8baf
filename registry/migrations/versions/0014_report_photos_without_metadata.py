"""shoppers' report photos: what was stored before is kept as its pixels alone, as new ones are

Report photos had been stored as uploaded, EXIF included: the GPS position where the photo was
taken (often the shopper's home), the phone's make and serial, XMP, comments. New photos are kept
as their pixels alone (``registry.reports.without_metadata``); this does the same to the ones stored
before, one at a time, with their hash and media type (the address a photo is served at is its
hash: a case page shows the new one). A photo that cannot be read again is left as it is, logged.
Nothing to undo: the metadata is gone, as it should be.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06 18:00:00
"""
import hashlib
import logging

from alembic import op
import sqlalchemy as sa

from registry.reports import without_metadata


revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None

log = logging.getLogger("alembic.runtime.migration")

photos = sa.table("report_photos", sa.column("id", sa.BigInteger), sa.column("media_type", sa.String),
                  sa.column("sha256", sa.String), sa.column("data", sa.LargeBinary))


def upgrade() -> None:
    connection = op.get_bind()
    ids = [row.id for row in connection.execute(sa.select(photos.c.id).order_by(photos.c.id))]
    for photo_id in ids:  # one photo in memory at a time (each up to 10 MiB)
        data = connection.execute(sa.select(photos.c.data).where(photos.c.id == photo_id)).scalar_one()
        try:
            clean, media_type = without_metadata(bytes(data))
        except Exception as exc:  # noqa: BLE001 - an unreadable photo is kept as it was, and said
            log.warning("report photo %s left as it is: %s", photo_id, exc)
            continue
        connection.execute(photos.update().where(photos.c.id == photo_id).values(
            data=clean, media_type=media_type, sha256=hashlib.sha256(clean).hexdigest()))


def downgrade() -> None:
    pass
