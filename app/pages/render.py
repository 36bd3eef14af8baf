"""Rendering helpers shared by the page views."""

from __future__ import annotations

from flask import render_template

__all__ = ["render_error"]


def render_error(status: int, message: str) -> str:
    return render_template("pages/error.html", status=status, message=message)
