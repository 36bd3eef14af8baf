"""Text typed without spaces, as long as the registry takes it, on the producer's pages in Chromium:
no page may grow wider than the screen (a 300-character product name had made the batch page
5,700 px wide), nor a table wider than its frame."""

from __future__ import annotations

import pytest

from registry.services import SYSTEM

from tests.app.browser import DESKTOP, PHONE, launch, playwright  # noqa: F401 (fixture)
from tests.app.portal_support import make_user, page_login
from tests.conftest import GTIN, batch_data

LOT = "L" * 20


def _sideways(page, width: int) -> list[str]:
    """What scrolls sideways: the page past ``width``, each table past its frame."""
    return page.evaluate("""(width) => [
        ...(document.documentElement.scrollWidth > width ? [`page ${document.documentElement.scrollWidth}`] : []),
        ...[...document.querySelectorAll('.table-wrap')].filter(f => f.scrollWidth > f.clientWidth)
            .map(f => `${f.querySelector('table').id || 'table'} ${f.scrollWidth}`)]""", width)


@pytest.fixture
def long_texts(world, registry, session):
    """A batch whose every text is as long as the registry takes, with no space anywhere: corrected
    (the correction's reason too) and recalled."""
    make_user(session, "producer1", "producer", world.producer_id)
    data = batch_data(lot=LOT, product={"name": "A" * 200, "brand": "B" * 200, "category": "C" * 200},
                      facility={"name": "F" * 200, "address": "D" * 500, "country": "VN"},
                      certifications=[{"scheme": "S" * 100, "id": "I" * 100}])
    registry.register_batch(SYSTEM, data, producer_id=world.producer_id)
    registry.correct_batch(SYSTEM, GTIN, LOT, {**data, "quantity": 99}, reason="R" * 1000)
    registry.recall(SYSTEM, GTIN, LOT, reason="Q" * 1000)
    session.commit()
    session.close()  # release SQLite: the live server reads from its own thread
    return world


@pytest.mark.parametrize("size", ["phone", "desktop"])
def test_unbroken_text_as_long_as_the_registry_takes_stays_within_the_screen(playwright, live_server, long_texts,
                                                                            size):
    viewport = PHONE if size == "phone" else DESKTOP
    browser = launch(playwright)
    try:
        page = browser.new_context(locale="vi-VN", viewport=viewport).new_page()
        page_login(page, live_server, "producer1")
        for path in ("/portal/producer/", f"/portal/producer/batches/{GTIN}/{LOT}",
                     f"/portal/producer/batches/{GTIN}/{LOT}/correct", f"/01/{GTIN}/10/{LOT}"):
            page.goto(live_server + path)
            page.wait_for_load_state()
            assert _sideways(page, viewport["width"]) == [], path
        page.goto(live_server + "/portal/producer/batches/new")  # refused, as typed: shown again in its fields
        page.fill("#f-product-name", "A" * 201)
        page.click("#batch-form button[type=submit]")
        page.wait_for_load_state()
        assert page.locator("#f-product-name-error").is_visible()
        assert _sideways(page, viewport["width"]) == [], "new batch"
        page.goto(live_server + "/portal/producer/import")
        csv = ("gtin,lot,product_name,facility_name,production_date\r\n"
               f"{GTIN},{'N' * 20},{'A' * 200},{'F' * 200},2026-01-05\r\n").encode()
        page.set_input_files("#file", files=[{"name": "b.csv", "mimeType": "text/csv", "buffer": csv}])
        page.click("#upload-form button[type=submit]")
        page.wait_for_load_state()
        assert page.locator("#preview").get_attribute("data-rows") == "1"
        assert _sideways(page, viewport["width"]) == [], "import preview"
    finally:
        browser.close()
