"""Actions that cannot be undone ask first: the form comes back as a page saying what it will do.

Splitting a merge, removing an identifier, retiring and revoking a device change nothing unless the
form carries ``confirm=yes``. Without it the view answers with a page that names what the action
will do and holds the same form, fields and CSRF token included, with ``confirm=yes`` added, and a
link back. No script is needed, and a form sent without the confirmation (an old page, a double
click, a hand-made request) still asks first.
"""

from __future__ import annotations

from flask import render_template, request
from flask.typing import ResponseReturnValue

CONFIRM_FIELD = "confirm"


def confirmed() -> bool:
    """Whether this form was sent from the page asking to confirm it."""
    return request.form.get(CONFIRM_FIELD) == "yes"


def ask(page: str, title: str, what: str, back: str, fields: dict[str, str]) -> ResponseReturnValue:
    """The page asking to confirm the form just sent: ``what`` it will do (in the page's words), its
    ``fields`` to send again, and a link ``back`` to leave it undone. ``page`` is the navigation entry."""
    return render_template(
        "confirm.html", page=page, title=title, what=what, back=back, fields=fields, action=request.path
    )
