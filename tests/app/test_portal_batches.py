"""The producer's batch pages: what a batch's badge says, through the Flask test client."""

from __future__ import annotations

import re
from datetime import date, timedelta

from registry.services import SYSTEM

from tests.app.portal_support import client_login, make_user
from tests.conftest import GTIN, batch_data


def _badges(html: str, lot: str) -> list[tuple[str, str]]:
    """The badges in the batch list's row of ``lot``."""
    row = re.search(rf'<tr data-gtin="{GTIN}" data-lot="{lot}">.*?</tr>', html, re.S).group(0)
    return re.findall(r'<span class="badge badge-(\w+)">([^<]*)</span>', row)


def test_an_active_batch_past_its_expiry_is_marked_expired_and_a_recalled_one_stays_recalled(
        client, registry, session, world):
    make_user(session, "producer1", "producer", world.producer_id)
    today = date.today()
    for lot, expiry in (("FRESH", today + timedelta(days=30)), ("LAST-DAY", today),
                        ("PAST", today - timedelta(days=1)), ("PAST-RECALLED", today - timedelta(days=1))):
        registry.register_batch(SYSTEM, batch_data(lot=lot, expiry=expiry), producer_id=world.producer_id)
    registry.recall(SYSTEM, GTIN, "PAST-RECALLED", reason="bao bì lỗi")
    session.commit()
    client_login(client, "producer1")

    html = client.get("/portal/producer/").get_data(as_text=True)
    assert _badges(html, "FRESH") == [("active", "còn hiệu lực")]
    assert _badges(html, "LAST-DAY") == [("active", "còn hiệu lực")]  # usable through its expiry date
    assert _badges(html, "PAST") == [("expired", "đã hết hạn")]  # not "active" beside it
    assert _badges(html, "PAST-RECALLED") == [("recalled", "đã thu hồi")]

    heading = re.search(r"<h1>.*?</h1>", client.get(f"/portal/producer/batches/{GTIN}/PAST").get_data(as_text=True),
                        re.S).group(0)
    assert 'badge-expired">đã hết hạn<' in heading and "badge-active" not in heading
    heading = re.search(r"<h1>.*?</h1>", client.get(f"/portal/producer/batches/{GTIN}/FRESH").get_data(as_text=True),
                        re.S).group(0)
    assert "badge-expired" not in heading
