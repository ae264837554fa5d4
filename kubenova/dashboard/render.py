"""HTML of the dashboard: a layout and small pieces, escaped by construction.

Strings from the API are always passed through `e()`; `Html` marks what is already markup.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from html import escape


class Html(str):
    """Markup that is safe to insert as is."""


def e(value: object) -> Html:
    if isinstance(value, Html):
        return value
    return Html(escape("" if value is None else str(value), quote=True))


def join(parts: Iterable[object]) -> Html:
    return Html("".join(e(p) for p in parts))


def age(timestamp: str | None, now: datetime | None = None) -> str:
    """ "3m", "2h", "5d" like kubectl's AGE column."""
    if not timestamp:
        return ""
    then = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    seconds = int(((now or datetime.now(UTC)) - then).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{max(seconds, 0)}s"


def bar(label: str, used: float, total: float | None, unit: str = "") -> Html:
    """A labelled used/limit bar (a meter element: screen readers read the numbers)."""
    if not total:
        return Html(
            f'<div class="bar"><span>{e(label)}</span> <b>{e(_num(used))}{e(unit)}</b> '
            "<small>(no limit)</small></div>"
        )
    ratio = used / total
    level = "high" if ratio >= 0.9 else ("mid" if ratio >= 0.7 else "low")
    return Html(
        f'<div class="bar {level}"><span>{e(label)}</span> '
        f'<meter min="0" max="{total}" value="{used}" aria-label="{e(label)}"></meter> '
        f"<b>{e(_num(used))} / {e(_num(total))}{e(unit)}</b></div>"
    )


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.1f}"


def field_error(errors: dict[str | None, list[str]], name: str) -> Html:
    messages = errors.get(name) or []
    return join(
        Html(f'<p class="refusal" role="alert" id="err-{e(name)}">{e(m)}</p>') for m in messages
    )


def select(
    name: str,
    label: str,
    options: Iterable[tuple[str, str]],
    *,
    chosen: str = "",
    errors: dict[str | None, list[str]],
    blank: str | None = None,
    multiple: bool = False,
) -> Html:
    opts = [Html(f'<option value="">{e(blank)}</option>')] if blank is not None else []
    opts += [
        Html(f'<option value="{e(v)}"{" selected" if v == chosen else ""}>{e(t)}</option>')
        for v, t in options
    ]
    many = " multiple" if multiple else ""
    return Html(
        f'<label for="f-{e(name)}">{e(label)}</label>'
        f'<select id="f-{e(name)}" name="{e(name)}"{many}>{join(opts)}</select>'
        f"{field_error(errors, name)}"
    )


def text_input(
    name: str,
    label: str,
    *,
    value: str = "",
    errors: dict[str | None, list[str]],
    kind: str = "text",
) -> Html:
    return Html(
        f'<label for="f-{e(name)}">{e(label)}</label>'
        f'<input id="f-{e(name)}" name="{e(name)}" type="{kind}" value="{e(value)}">'
        f"{field_error(errors, name)}"
    )


def csrf_field(token: str) -> Html:
    return Html(f'<input type="hidden" name="_csrf" value="{e(token)}">')


def button_form(action: str, label: str, csrf: str, *, danger: bool = False) -> Html:
    css = ' class="danger"' if danger else ""
    return Html(
        f'<form method="post" action="{e(action)}" class="inline">{csrf_field(csrf)}'
        f"<button{css}>{e(label)}</button></form>"
    )


def table(
    headers: Iterable[str], rows: Iterable[Html], *, body_id: str = "", live: str = ""
) -> Html:
    """A table; `live`: the URL of the fragment stream that keeps its rows current."""
    head = join(Html(f'<th scope="col">{e(h)}</th>') for h in headers)
    ident = f' id="{e(body_id)}"' if body_id else ""
    if live:
        ident += f' data-live-src="{e(live)}"'
    return Html(f"<table><thead><tr>{head}</tr></thead><tbody{ident}>{join(rows)}</tbody></table>")


def page(
    title: str,
    body: Html,
    *,
    user: str | None = None,
    csrf: str = "",
    projects: Iterable[str] = (),
    project: str | None = None,
    admin: bool = False,
) -> Html:
    nav = Html("")
    if user:
        switcher = join(
            Html(f'<option value="{e(p)}"{" selected" if p == project else ""}>{e(p)}</option>')
            for p in projects
        )
        links = ""
        if project:
            base = f"/p/{e(project)}"
            links = (
                f'<a href="{base}/instances">Instances</a><a href="{base}/volumes">Volumes</a>'
                f'<a href="{base}/networks">Networks</a>'
                f'<a href="{base}/floating-ips">Floating IPs</a><a href="{base}/overview">Quota</a>'
            )
        if admin:
            links += (
                '<a href="/admin/hosts">Hosts</a><a href="/admin/projects">Projects</a>'
                '<a href="/admin/catalog">Flavors &amp; Images</a>'
                '<a href="/admin/placement">Placement failures</a>'
            )
        chooser = (
            '<form method="get" action="/switch" class="inline">'
            '<label for="project-switch">Project</label>'
            f'<select id="project-switch" name="project" data-autosubmit>{switcher}</select>'
            "<noscript><button>Go</button></noscript></form>"
            if switcher
            else ""
        )
        nav = Html(
            f'<nav aria-label="main">{chooser}{links}'
            f'<form method="post" action="/logout" class="inline right">{csrf_field(csrf)}'
            f"<span>{e(user)}</span> <button>Log out</button></form></nav>"
        )
    return Html(
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{e(title)} · kubenova</title>"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<link rel="stylesheet" href="/static/dashboard.css">'
        '<script src="/static/dashboard.js" defer></script></head>'
        '<body><a class="skip" href="#main">Skip to content</a>'
        f'<header><a class="brand" href="/">kubenova</a>{nav}</header>'
        f'<main id="main" tabindex="-1"><h1>{e(title)}</h1>{body}</main></body></html>'
    )
