"""The dashboard's HTML: a sign-in form and one page shell per view (header, navigation, the
window form); the page's script (``static/dashboard.js``) draws the figures into the shell.
No inline script or style anywhere: the pages' policy allows ``'self'`` only."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from urllib.parse import urlencode

from tally.model.directory import Organization

#: The pages: (view, path, title, which controls the page's form shows).
PAGES: tuple[tuple[str, str, str, str], ...] = (
    ("overview", "/ui/", "Overview", "window"),
    ("departments", "/ui/departments", "Departments", "window"),
    ("department", "/ui/department", "Department", "window"),
    ("member", "/ui/member", "Member", "window"),
    ("inactive", "/ui/inactive", "Not active", "idle"),
    ("environment", "/ui/environment", "Environment", "window"),
    ("apps", "/ui/apps", "Apps", "date"),
)
#: The pages in the navigation bar (the drill-down pages are reached by links).
NAV = ("overview", "departments", "inactive", "environment", "apps")


def _head(title: str) -> str:
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)} · Tally</title>"
        '<link rel="icon" href="data:,">'
        '<link rel="stylesheet" href="/ui/static/uPlot.min.css">'
        '<link rel="stylesheet" href="/ui/static/dashboard.css">'
        '<script src="/ui/static/uPlot.iife.min.js" defer></script>'
        '<script src="/ui/static/dashboard.js" defer></script>'
        "</head>"
    )


def signin_page(message: str = "", *, error: bool = False) -> str:
    note = (
        f'<p class="{"error" if error else "note"}" role="alert" id="message">{escape(message)}</p>'
        if message
        else ""
    )
    return (
        _head("Sign in") + '<body class="signin"><main><h1>Tally</h1>'
        "<p>Paste an organization token with the <code>read</code> scope, or the environment"
        " admin's token.</p>"
        f"{note}"
        '<form method="post" action="/ui/signin">'
        '<label for="token">Token</label>'
        '<input id="token" name="token" type="password" autocomplete="off" required>'
        '<button type="submit">Sign in</button></form></main></body></html>'
    )


def error_page(message: str) -> str:
    return (
        _head("Error") + '<body class="signin"><main><h1>Tally</h1>'
        f'<p class="error" role="alert" id="message">{escape(message)}</p>'
        '<p><a href="/ui/">Back to the overview</a></p>'
        '<form method="post" action="/ui/signout"><button type="submit">Sign out</button>'
        "</form></main></body></html>"
    )


def view_page(
    view: str,
    params: Mapping[str, str],
    org: Organization,
    orgs: Sequence[Organization],
    *,
    admin: bool,
) -> str:
    """The shell of ``view``: navigation (keeping the org and window), the page's form, and an
    empty ``main`` the script fills from ``/ui/api/<view>``."""
    _, _, title, controls = next(p for p in PAGES if p[0] == view)
    keep = {k: params[k] for k in ("org", "from", "to") if params.get(k)}
    current = ' aria-current="page"'
    links = "".join(
        f'<a href="{escape(path + ("?" + urlencode(keep) if keep else ""))}"'
        f"{current if name == view else ''}>{escape(label)}</a>"
        for name, path, label, _ in PAGES
        if name in NAV
    )
    path = next(p[1] for p in PAGES if p[0] == view)
    return (
        _head(title) + f'<body data-view="{escape(view)}">'
        '<header><a class="brand" href="/ui/">Tally</a>'
        f"<nav>{links}</nav>"
        '<form class="signout" method="post" action="/ui/signout">'
        '<button type="submit" id="signout">Sign out</button></form></header>'
        f'<form class="controls" method="get" action="{escape(path)}">'
        + _org_control(org, orgs, admin=admin)
        + _controls(controls, params)
        + '<button type="submit">Show</button>'
        f'<span class="tz" id="timezone">Days and times in {escape(org.timezone)}'
        " (the organization's time zone)</span>"
        "</form>"
        f'<main id="content"><h1 id="title">{escape(title)}</h1>'
        '<p class="loading" id="status">Loading…</p></main></body></html>'
    )


def _org_control(org: Organization, orgs: Sequence[Organization], *, admin: bool) -> str:
    if not admin:
        return f'<span class="org" id="org">{escape(org.name)}</span>'
    options = "".join(
        f'<option value="{escape(o.id)}"{" selected" if o.id == org.id else ""}>'
        f"{escape(o.name)} ({escape(o.id)})</option>"
        for o in orgs
    )
    return f'<label>Organization <select name="org" id="org">{options}</select></label>'


def _controls(kind: str, params: Mapping[str, str]) -> str:
    hidden = "".join(
        f'<input type="hidden" name="{name}" value="{escape(params[name])}">'
        for name in ("id", "parent")
        if params.get(name)
    )
    if kind == "window":
        return hidden + (
            f'<label>From <input type="date" name="from" id="from"'
            f' value="{escape(params.get("from", ""))}"></label>'
            f'<label>To <input type="date" name="to" id="to"'
            f' value="{escape(params.get("to", ""))}"></label>'
        )
    if kind == "idle":
        return (
            '<label>Not active for <input type="number" min="1" max="3660" name="days"'
            f' id="days" value="{escape(params.get("days", "30"))}"> days</label>'
        )
    return (
        f'<label>Day <input type="date" name="date" id="date"'
        f' value="{escape(params.get("date", ""))}"></label>'
    )
