"""The public list of recalled batches: what shoppers should not use, newest recall first.

A recall is already public (the trust list carries every recalled batch, the log every recall);
this is the same fact for people, searchable by product, brand, producer, GTIN or lot, with or
without Vietnamese accents."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.models import Batch, Producer, Recall
from registry.publications import SEARCH_WINDOW
from registry.rules import fold

__all__ = ["recalled_batches"]


def recalled_batches(session: Session, *, query: str = "", limit: int = 100) -> list[dict[str, Any]]:
    """Recalled batches, newest recall first; ``query``'s words must all match (accents ignored)."""
    stmt = (select(Recall.at, Recall.reason, Batch.gtin, Batch.lot, Batch.product_name, Batch.record,
                   Batch.expiry_date, Producer.name)
            .join(Batch, Batch.id == Recall.batch_id).join(Producer, Producer.id == Batch.producer_id)
            .order_by(Recall.at.desc(), Recall.id.desc()))
    words = fold(query).split()
    found: list[dict[str, Any]] = []
    for at, reason, gtin, lot, product_name, record, expiry, producer in session.execute(
            stmt.limit(SEARCH_WINDOW if words else limit)):
        brand = ((record or {}).get("product") or {}).get("brand") or ""
        if words:
            haystack = fold(" ".join([product_name or "", brand, producer or "", gtin, lot, reason or ""]))
            if not all(word in haystack for word in words):
                continue
        found.append({"recalled_at": at, "reason": reason, "gtin": gtin, "lot": lot, "product_name": product_name,
                      "brand": brand, "producer": producer, "expiry_date": expiry})
        if len(found) >= limit:
            break
    return found
