"""PublicationService: signed, logged, never deleted; newest first; searchable; authority only."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from keys.signing import public_key_from_raw, verify
from registry.errors import Conflict, Forbidden, Invalid, NotFound
from registry.log import TransparencyLog
from registry.models import LogEntry, Publication
from registry.publications import PublicationService
from registry.rules import fold
from registry.services import SYSTEM, Actor, Role


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 3, 1, 8, 0, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        self.now += timedelta(minutes=1)
        return self.now


@pytest.fixture
def service(session, registry):
    return PublicationService(session, authority=registry.authority, clock=Clock())


def test_fold_ignores_case_and_diacritics():
    assert fold("Đắk Lắk CÀ PHÊ") == "dak lak ca phe"


def test_publish_signs_and_logs(service, session, registry):
    before = TransparencyLog(session).size()
    item = service.publish(SYSTEM, kind="warning", title="Sữa giả", product="Sữa bột X", body="Không dùng",
                           decision_ref="QĐ-12/2026", decided_on="2026-02-27")
    session.commit()
    assert item.record["t"] == "publication" and item.record["product"] == "Sữa bột X"
    verify(item.record, public_key_from_raw(registry.authority.public_raw))
    tlog = TransparencyLog(session)
    assert tlog.size() == before + 1 and item.log_index == before
    entry = session.get(LogEntry, item.log_index)
    assert entry.kind == "publication" and json.loads(entry.data) == item.record
    assert tlog.latest_checkpoint()["size"] == before + 1
    assert tlog.verify_all(registry.authority.public_raw).ok


def test_withdraw_keeps_the_publication_and_logs_a_signed_withdrawal(service, session, registry):
    item = service.publish(SYSTEM, kind="violator", title="Bán hàng giả", name="Cửa hàng A", decision_ref="QĐ 1/2026")
    service.withdraw(SYSTEM, item.id, reason="Quyết định bị hủy")
    session.commit()
    assert session.get(Publication, item.id).withdrawn_at is not None
    assert service.list("violator") == []
    withdrawal = service.withdrawal(item)
    record = withdrawal["record"]
    assert record["t"] == "publication-withdrawal" and record["log_index"] == item.log_index
    verify(record, public_key_from_raw(registry.authority.public_raw))
    assert session.get(LogEntry, withdrawal["log_index"]).kind == "publication-withdrawal"
    with pytest.raises(Conflict):
        service.withdraw(SYSTEM, item.id, reason="again")


def test_list_newest_first_and_by_kind(service):
    a = service.publish(SYSTEM, kind="warning", title="A", product="a")
    b = service.publish(SYSTEM, kind="warning", title="B", product="b")
    service.publish(SYSTEM, kind="violator", title="V", name="v", decision_ref="QĐ 2/2026")
    assert [p.id for p in service.list("warning")] == [b.id, a.id]
    assert [p.title for p in service.list("violator")] == ["V"]
    assert [p.id for p in service.list("warning", limit=1, offset=1)] == [a.id]


def test_search_by_product_or_name_without_accents(service):
    service.publish(SYSTEM, kind="warning", title="Cảnh báo", product="Nước mắm Phú Quốc giả")
    service.publish(SYSTEM, kind="warning", title="Cảnh báo", product="Mật ong rừng")
    service.publish(SYSTEM, kind="violator", title="Vi phạm", name="Công ty Đại Phát", tax_code="0312345673",
                    decision_ref="QĐ 3/2026")
    assert [p.product for p in service.list("warning", query="nuoc mam")] == ["Nước mắm Phú Quốc giả"]
    assert [p.name for p in service.list("violator", query="dai phat")] == ["Công ty Đại Phát"]
    assert [p.name for p in service.list("violator", query="0312345673")] == ["Công ty Đại Phát"]
    assert service.list("warning", query="sữa") == []


@pytest.mark.parametrize("role", [Role.PRODUCER, Role.INSPECTOR, Role.PARTNER])
def test_only_the_authority_publishes_or_withdraws(service, role):
    actor = Actor(role=role, producer_id="p" if role == Role.PRODUCER else None)
    with pytest.raises(Forbidden):
        service.publish(actor, kind="warning", title="x", product="y")
    item = service.publish(SYSTEM, kind="warning", title="x", product="y")
    with pytest.raises(Forbidden):
        service.withdraw(actor, item.id, reason="r")


def test_publish_checks_its_fields(service):
    with pytest.raises(Invalid) as err:
        service.publish(SYSTEM, kind="rumour", title="x")
    assert err.value.code == "BAD_KIND"
    with pytest.raises(Invalid) as err:
        service.publish(SYSTEM, kind="warning", title=" ")
    assert err.value.field == "title"
    with pytest.raises(Invalid) as err:
        service.publish(SYSTEM, kind="violator", title="x")
    assert err.value.field == "name"
    with pytest.raises(Invalid) as err:  # a violator's name is made public on a decision, for good
        service.publish(SYSTEM, kind="violator", title="x", name="Cửa hàng A", decided_on="2026-02-01")
    assert (err.value.code, err.value.field) == ("FIELD_REQUIRED", "decision_ref")
    assert service.list("violator") == []
    with pytest.raises(Invalid) as err:
        service.publish(SYSTEM, kind="warning", title="x", product="y", decided_on="27/02/2026")
    assert err.value.code == "BAD_DATE"
    with pytest.raises(Invalid) as err:  # the clock says 2026-03-01 08:0x UTC
        service.publish(SYSTEM, kind="warning", title="x", product="y", decided_on="2026-03-02")
    assert (err.value.code, err.value.field) == ("DATE_IN_FUTURE", "decided_on")
    assert service.publish(SYSTEM, kind="warning", title="x", product="y", decided_on="2026-03-01").id
    service.clock.now = datetime(2026, 3, 1, 11, 0, tzinfo=timezone.utc)  # 2 March already in UTC+14 (Kiribati)
    assert service.publish(SYSTEM, kind="warning", title="x", product="y", decided_on="2026-03-02").id
    with pytest.raises(Invalid):
        service.withdraw(SYSTEM, 1, reason="")
    with pytest.raises(NotFound):
        service.withdraw(SYSTEM, 999, reason="r")


def test_cli_publish_and_withdraw(app, runner):
    from app.cli_publications import register_publication_cli

    if "publish" not in app.cli.commands:
        register_publication_cli(app)
    refused = runner.invoke(args=["publish", "violator", "--title", "Bán hàng giả", "--name", "Cửa hàng B"])
    assert refused.exit_code != 0 and "decision" in refused.output  # a name made public rests on a decision
    result = runner.invoke(args=["publish", "violator", "--title", "Bán hàng giả", "--name", "Cửa hàng B",
                                 "--decision-ref", "QĐ 9/2026", "--decided-on", "2026-02-01"])
    assert result.exit_code == 0, result.output
    item = json.loads(result.stdout.strip().splitlines()[-1])
    assert item["name"] == "Cửa hàng B" and item["record"]["t"] == "publication"
    result = runner.invoke(args=["publish", "warning", "--title", "x", "--decided-on", "bad"])
    assert result.exit_code != 0 and "BAD_DATE" in result.output or "FIELD_REQUIRED" in result.output
    result = runner.invoke(args=["publish", "withdraw", str(item["id"]), "--reason", "hủy"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(args=["publish", "withdraw", str(item["id"]), "--reason", "hủy"])
    assert result.exit_code != 0 and "ALREADY_WITHDRAWN" in result.output


def test_a_violators_vietnamese_tax_code_is_checked_as_a_producers_is(service):
    """A name made public for good: a mistyped mã số thuế (its 10th digit checks the others) would
    point at another business. A foreign seller's number is taken in its own form."""
    with pytest.raises(Invalid) as err:
        service.publish(SYSTEM, kind="violator", title="Vi phạm", name="Công ty Đại Phát", tax_code="0312345678",
                        decision_ref="12/QĐ")
    assert (err.value.code, err.value.field) == ("BAD_TAX_CODE", "tax_code")
    assert service.publish(SYSTEM, kind="violator", title="Vi phạm", name="Công ty Đại Phát",
                           tax_code="0312345673-001", decision_ref="12/QĐ").tax_code == "0312345673-001"
    assert service.publish(SYSTEM, kind="violator", title="Vi phạm", name="Shenzhen Seller Co.",
                           tax_code="91440300MA5F", decision_ref="13/QĐ").tax_code == "91440300MA5F"
