"""The operator console: server-rendered pages on the management listener (``/``).

Pages are Jinja2 templates filled from the same services as the API; a little of our own
JavaScript (``static/console.js``) makes the live parts live (the events stream) and shows
upload progress. ``mount`` adds the pages, the static files and the offline API docs.
"""

from __future__ import annotations

from importlib import resources

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from acs.web.console import fleet, manage
from acs.web.console.auth import SignInNeeded, sign_in_url
from acs.web.console.views import error_page

STATIC_PATH = "/static"


def is_console(request: Request) -> bool:
    """Whether a request is the console's (its refusals are pages, not JSON)."""
    path = request.url.path
    return not path.startswith(("/api/", "/healthz", "/metrics", STATIC_PATH + "/"))


async def _sign_in_needed(request: Request, _exc: Exception) -> Response:
    if request.method == "GET":  # a page (or a fragment: the script reloads on a redirect)
        return RedirectResponse(sign_in_url(request), status_code=303)
    return error_page(request, 401, "Your session has ended: sign in again.")


def render_refusal(request: Request, status_code: int, message: str) -> HTMLResponse:
    return error_page(request, status_code, message)


def mount(app: FastAPI) -> None:
    """Add the console to the management app (its routes after the API's)."""
    app.state.console_overview = fleet._Cached()
    app.add_exception_handler(SignInNeeded, _sign_in_needed)
    app.mount(
        STATIC_PATH,
        StaticFiles(directory=str(resources.files("acs.web.console") / "static")),
        name="console-static",
    )
    app.include_router(fleet.router)
    app.include_router(manage.router)
