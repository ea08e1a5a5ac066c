"""Rendering helpers of the console: the template environment, pages, the overview's chart
as inline SVG, and the text form of configuration modules."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from importlib import resources
from typing import Any, Final
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader
from markupsafe import Markup, escape

from acs import __version__
from acs.services.errors import Invalid

TEMPLATES: Final = Jinja2Templates(
    env=Environment(
        loader=FileSystemLoader(str(resources.files("acs.web.console") / "templates")),
        autoescape=True,  # every value is escaped unless marked safe (the chart only)
    )
)
PAGE_SIZES: Final = (25, 50, 100, 250)


def _when(value: datetime | str | None) -> str:
    if value is None:
        return "—"
    if isinstance(value, str):
        return value
    return value.strftime("%Y-%m-%d %H:%M:%S")


def _query(params: Mapping[str, Any], **changes: Any) -> str:
    """``params`` with ``changes`` (None removes), as a query string for a link."""
    merged = {k: v for k, v in {**params, **changes}.items() if v not in (None, "", [])}
    pairs: list[tuple[str, str]] = []
    for key, value in merged.items():
        if isinstance(value, list | tuple):
            pairs += [(key, str(v)) for v in value]
        else:
            pairs.append((key, str(value)))
    return "?" + urlencode(pairs) if pairs else ""


def _xsd(value: Any) -> str:
    """A parameter value as TR-069 writes it (booleans lower-case, nothing for none)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


TEMPLATES.env.filters["when"] = _when
TEMPLATES.env.filters["xsd"] = _xsd
TEMPLATES.env.globals["query"] = _query
TEMPLATES.env.globals["version"] = __version__


def page(
    request: Request, template: str, *, status_code: int = 200, **context: Any
) -> HTMLResponse:
    principal = getattr(request.state, "principal", None)
    response: HTMLResponse = TEMPLATES.TemplateResponse(
        request,
        template,
        {
            "principal": principal,
            "csrf": getattr(request.state, "csrf", ""),
            "can_operate": principal is not None and principal.can("operator"),
            "can_admin": principal is not None and principal.can("admin"),
            "notice": request.query_params.get("done"),
            **context,
        },
        status_code=status_code,
    )
    return response


def done(url: str, message: str) -> RedirectResponse:
    """After an action: back to ``url`` with a notice (303: the browser GETs it)."""
    separator = "&" if "?" in url else "?"
    return RedirectResponse(f"{url}{separator}{urlencode({'done': message})}", status_code=303)


def error_page(request: Request, status_code: int, message: str) -> HTMLResponse:
    return page(request, "error.html", status_code=status_code, message=message)


# --- the overview's chart ----------------------------------------------------------------------


def informs_chart(series: Sequence[tuple[datetime, int]], width: int = 960) -> Markup:
    """Informs per minute as an inline SVG area chart, hours marked on the axis."""
    height, top, bottom, left = 160, 10, 22, 44
    plot_w, plot_h = width - left - 6, height - top - bottom
    peak = max((n for _, n in series), default=0)
    scale = peak or 1
    step = plot_w / max(len(series) - 1, 1)
    points = [
        f"{left + i * step:.1f},{top + plot_h - n / scale * plot_h:.1f}"
        for i, (_, n) in enumerate(series)
    ]
    base = f"{left + (len(series) - 1) * step:.1f},{top + plot_h} {left},{top + plot_h}"
    marks = []
    for i, (minute, _) in enumerate(series):
        if minute.minute == 0 and minute.hour % 3 == 0:
            x = left + i * step
            marks.append(
                f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{top + plot_h}" class="grid"/>'
                f'<text x="{x:.1f}" y="{height - 6}" class="tick">{minute:%H:%M}</text>'
            )
    total = sum(n for _, n in series)
    summary = f"{total} Informs in the last 24 hours, at most {peak} in one minute"
    svg = (
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(summary)}" preserveAspectRatio="none">'
        f"<title>{escape(summary)}</title>"
        f'<text x="{left - 6}" y="{top + 8}" class="tick end">{peak}</text>'
        f'<text x="{left - 6}" y="{top + plot_h}" class="tick end">0</text>'
        f"{''.join(marks)}"
        f'<polygon class="area" points="{" ".join(points)} {base}"/>'
        f'<polyline class="line" points="{" ".join(points)}"/>'
        "</svg>"
    )
    return Markup(svg)  # noqa: S704 - built from numbers and escaped text only


# --- configuration modules as text ---------------------------------------------------------------


def modules_text(modules: Mapping[str, Mapping[str, Any]]) -> str:
    """``{module: {key: value}}`` as ``[module]`` sections of ``key = value`` lines."""
    blocks = []
    for module, values in modules.items():
        lines = [f"[{module}]"] + [f"{key} = {value}" for key, value in values.items()]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + ("\n" if blocks else "")


class ModulesSyntax(Invalid):
    """Module text the console cannot read (the message names the line)."""


def parse_modules(text: str) -> dict[str, dict[str, str]]:
    """The inverse of ``modules_text``; lines starting with ``#`` are comments."""
    modules: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            name = line[1:-1].strip()
            if not name:
                raise ModulesSyntax(f"line {number}: a module needs a name: [name]")
            current = modules.setdefault(name, {})
            continue
        key, sep, value = line.partition("=")
        if current is None:
            raise ModulesSyntax(f"line {number}: a [module] line must come first")
        if not sep or not key.strip():
            raise ModulesSyntax(f"line {number}: expected key = value")
        current[key.strip()] = value.strip()
    return modules
