"""The Alembic migrations build exactly the schema the models describe."""

from __future__ import annotations

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from app.migrations import alembic_config
from registry.db import Base
from tests.conftest import schema_restored_on_failure


def test_migrations_match_the_models(app):
    engine = app.extensions["engine"]
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert diff == [], diff


def test_a_migration_test_failing_midway_leaves_the_schema_at_head(app):
    """``schema_restored_on_failure`` (tests/conftest.py): when a test fails after moving the
    schema off head, PostgreSQL's schema (one database for the session) is rebuilt at head before
    the failure is raised, so the tests after it find their tables; an SQLite test's own copy is
    left as the failure left it."""
    engine = app.extensions["engine"]
    cfg = alembic_config()
    head = ScriptDirectory.from_config(cfg).get_current_head()
    with pytest.raises(RuntimeError, match="midway"):
        with schema_restored_on_failure(engine), engine.connect() as connection:
            cfg.attributes["connection"] = connection
            command.downgrade(cfg, "0011")
            connection.commit()
            raise RuntimeError("failed midway")
    with engine.connect() as connection:
        context = MigrationContext.configure(connection)
        current, diff = context.get_current_revision(), compare_metadata(context, Base.metadata)
    if engine.dialect.name == "postgresql":
        assert current == head and diff == []
    else:
        assert current == "0011" and head != "0011"


def test_report_photos_stored_before_lose_their_metadata(app):
    """Migration 0014: a photo stored as uploaded, with the GPS position and the phone's make in its
    EXIF, is kept as its pixels alone (upright), hashed anew; one that cannot be read is left."""
    import hashlib
    import io
    from datetime import datetime, timezone

    import sqlalchemy as sa
    from PIL import Image

    engine = app.extensions["engine"]
    cfg = alembic_config()
    exif = Image.Exif()
    exif[0x0110] = "iPhone 15 Pro"
    exif[0x0112] = 6  # to be turned 90° clockwise
    exif[0x8825] = {1: "N", 2: (21.0, 1.0, 42.5), 3: "E", 4: (105.0, 50.0, 12.3)}
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (10, 120, 40)).save(out, "JPEG", exif=exif)
    stored, broken = out.getvalue(), b"\xff\xd8\xff not a whole JPEG"
    reports = sa.table("reports", *(sa.column(name) for name in (
        "id", "case_number", "code", "where_kind", "where_text", "seller", "link", "price", "contact", "description",
        "status")), sa.column("created_at", sa.DateTime(timezone=True)))
    photos = sa.table("report_photos", sa.column("id"), sa.column("report_id"), sa.column("media_type"),
                      sa.column("sha256"), sa.column("data", sa.LargeBinary))
    with schema_restored_on_failure(engine), engine.connect() as connection:
        cfg.attributes["connection"] = connection
        command.downgrade(cfg, "0013")
        connection.execute(reports.insert().values(id=1, case_number="VN-2026-000001", code="", where_kind="shop",
                                                   where_text="Chợ Lớn", seller="", link="", price="", contact="",
                                                   description="", status="new",
                                                   created_at=datetime(2026, 12, 1, tzinfo=timezone.utc)))
        connection.execute(photos.insert(), [
            {"id": 1, "report_id": 1, "media_type": "image/jpeg", "sha256": hashlib.sha256(stored).hexdigest(),
             "data": stored},
            {"id": 2, "report_id": 1, "media_type": "image/jpeg", "sha256": hashlib.sha256(broken).hexdigest(),
             "data": broken}])
        connection.commit()
        command.upgrade(cfg, "head")
        connection.commit()
        rows = {r.id: r for r in connection.execute(sa.select(photos))}
    clean = rows[1].data
    assert b"iPhone" not in clean and rows[1].sha256 == hashlib.sha256(clean).hexdigest() != hashlib.sha256(stored).hexdigest()
    with Image.open(io.BytesIO(clean)) as kept:
        assert (kept.format, kept.size) == ("JPEG", (48, 64)) and not kept.getexif()
    assert rows[2].data == broken  # unreadable: left as it was


def test_a_command_run_before_the_migrations_says_to_apply_them(app, runner, tmp_path):
    """A cron job run between deploying a version and `alembic upgrade head`: the command had met a
    column the database lacked ("busy or unreachable, retry" on SQLite, a traceback on
    PostgreSQL). A backup first is still allowed: it is what one takes before an upgrade."""
    engine = app.extensions["engine"]
    cfg = alembic_config()
    with schema_restored_on_failure(engine), engine.connect() as connection:
        cfg.attributes["connection"] = connection
        command.downgrade(cfg, "0016")
        connection.commit()
        refused = runner.invoke(args=["reports", "forget-contacts", "--closed-days", "30"])
        assert refused.exit_code != 0 and "Traceback" not in refused.output
        assert ("Error: MIGRATIONS_PENDING: the database's schema is at revision 0016, older than this version's: "
                "apply the migrations first") in refused.output, refused.output
        if engine.dialect.name == "sqlite":  # (PostgreSQL's needs pg_dump: tests/app/test_backup.py)
            backed_up = runner.invoke(args=["backup", str(tmp_path / "before-upgrade")])
            assert backed_up.exit_code == 0, backed_up.output
        command.upgrade(cfg, "head")
        connection.commit()
    done = runner.invoke(args=["reports", "forget-contacts", "--closed-days", "30"])
    assert done.exit_code == 0, done.output


def test_reports_filed_before_get_their_search_text(app):
    """Migration 0019: a case filed before the folded search text is found without its accents."""
    from datetime import datetime, timezone

    import sqlalchemy as sa

    engine = app.extensions["engine"]
    cfg = alembic_config()
    reports = sa.table("reports", *(sa.column(name) for name in (
        "id", "case_number", "code", "where_kind", "where_text", "seller", "link", "price", "contact", "description",
        "status", "lot", "serial", "search_text")), sa.column("created_at", sa.DateTime(timezone=True)))
    with schema_restored_on_failure(engine), engine.connect() as connection:
        cfg.attributes["connection"] = connection
        command.downgrade(cfg, "0018")
        connection.execute(reports.insert().values(id=1, case_number="VN-2026-000001", code="", where_kind="shop",
                                                   where_text="Phường Bến Nghé", seller="Shop Cà Phê Đậm",
                                                   link="https://shopee.vn/CaPhe", price="", contact="",
                                                   description="", status="new", lot="L-1", serial=None,
                                                   created_at=datetime(2026, 12, 1, tzinfo=timezone.utc)))
        connection.commit()
        command.upgrade(cfg, "head")
        connection.commit()
        folded = connection.execute(sa.select(reports.c.search_text)).scalar_one()
    assert folded == "shop ca phe dam phuong ben nghe https://shopee.vn/caphe l-1"
