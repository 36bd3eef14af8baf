"""Server-rendered pages: scan page, Digital Link verdict page, language switch."""

from flask import Blueprint

bp = Blueprint("pages", __name__, template_folder="../templates")

from app.pages import views  # noqa: E402,F401


@bp.app_context_processor
def _page_globals():
    from flask_babel import get_locale

    from app.messages import VERDICT_ADVICE, VERDICT_TITLE

    return {"current_lang": lambda: str(get_locale() or "vi"), "VERDICT_TITLE": VERDICT_TITLE,
            "VERDICT_ADVICE": VERDICT_ADVICE}
