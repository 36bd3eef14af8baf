"""Helpers for portal tests (server-side and browser): accounts, logging in, CSRF tokens."""

from __future__ import annotations

import re

from registry.accounts import AccountService
from registry.services import SYSTEM

__all__ = ["PASSWORD", "make_user", "csrf_of", "client_login", "page_login"]

PASSWORD = "correct horse battery staple"


def make_user(session, username: str, role: str, producer_id: str | None = None) -> None:
    """Create a portal account and commit."""
    AccountService(session).create_user(SYSTEM, username=username, password=PASSWORD, role=role,
                                        producer_id=producer_id)
    session.commit()


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def client_login(client, username: str, password: str = PASSWORD, **headers):
    """Log a Flask test client in through the login form; returns the POST's response."""
    token = csrf_of(client.get("/portal/login", headers=headers).get_data(as_text=True))
    return client.post("/portal/login", data={"csrf_token": token, "username": username, "password": password},
                       headers=headers)


def page_login(page, base_url: str, username: str, password: str = PASSWORD) -> None:
    """Log a Playwright page in through the login form."""
    page.goto(base_url + "/portal/login")
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("#login-form button[type=submit]")
    page.wait_for_load_state("domcontentloaded")


def stored_checks(session, inspection_id: int) -> list:
    """The checks the registry kept for an inspection, in the order they were stored."""
    from sqlalchemy import select

    from registry.models import InspectionCheck

    return session.execute(select(InspectionCheck).where(InspectionCheck.inspection_id == inspection_id)
                           .order_by(InspectionCheck.id)).scalars().all()
