"""The dashboard (issue 17) in real headless Chromium: sign-in, every page, charts that drew,
figures equal to the APIs' answers and to a plain-Python oracle over the hand-built events,
sorting, drill-down, another org's token seeing nothing, sign-out, and a CSP that holds.

One ``tally serve`` per module over a small hand-built environment, the clock pinned with
``TALLY_NOW``; one browser per session (Debian's ``chromium``: Playwright cannot fetch its own).
"""

from __future__ import annotations

import csv
import io
import shutil
from collections import defaultdict
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page
from starlette.testclient import TestClient

from tally.api.app import create_app
from tally.service import Tally
from tally.settings import Settings, fixed_clock
from tests.conftest import ADMIN, NOW, Admin
from tests.server import ServerProcess

pytestmark = pytest.mark.slow

FIRST, LAST = "2026-03-01", "2026-03-14"
WINDOW = f"from={FIRST}&to={LAST}"
SH = "+08:00"


def _completion(ide: str, language: str, lines: int, accepted: int | None) -> dict[str, Any]:
    """A completion suggesting ``lines``; ``accepted``: the lines accepted (None: refused)."""
    return {
        "ide": ide,
        "language": language,
        "lines_suggested": lines,
        "accepted": accepted is not None,
        "lines_accepted": accepted or 0,
    }


def _chat(ide: str, chat_type: str, accepted: bool) -> dict[str, Any]:
    return {"ide": ide, "chat_type": chat_type, "accepted": accepted}


# (member, time in Shanghai, type, fields): the AI assistant's events of org "alpha".
ASSISTANT: list[tuple[str, str, str, dict[str, Any]]] = [
    ("a3", "2026-03-01T00:30:00", "chat", _chat("vscode", "FREE_INPUT", True)),
    ("a1", "2026-03-02T10:00:00", "completion", _completion("vscode", "java", 10, 4)),
    ("a1", "2026-03-02T10:05:00", "completion", _completion("vscode", "java", 6, None)),
    ("a1", "2026-03-02T11:00:00", "completion", _completion("jetbrains", "python", 8, 8)),
    ("a1", "2026-03-02T15:00:00", "chat", _chat("vscode", "FREE_INPUT", True)),
    ("a2", "2026-03-03T23:30:00", "completion", _completion("vscode", "typescript", 7, 7)),
    ("a1", "2026-03-05T09:00:00", "completion", _completion("vscode", "java", 5, 5)),
    ("a3", "2026-03-09T14:00:00", "chat", _chat("jetbrains", "EXPLAIN_CODE", False)),
    ("a1", "2026-03-12T09:00:00", "completion", _completion("vscode", "java", 3, None)),
    ("a2", "2026-03-12T10:00:00", "completion", _completion("vscode", "typescript", 4, None)),
    (
        "a2",
        "2026-03-12T10:30:00",
        "code",
        {"language": "typescript", "source": "completion", "lines_accepted": 4, "lines_changed": 6},
    ),
]
#: a3 uses the platform every day of the window but 2026-03-10: the day without any event.
GAP = date(2026, 3, 10)
MEMBERS = {
    "a1": ("Ann Alpha", ["alpha-eng"], True),
    "a2": ("Bo Alpha", ["alpha-web"], True),
    "a3": ("Cy Alpha", ["alpha-ops"], True),
    "a4": ("Di Alpha", ["alpha-ops"], False),
}


def _event(n: int, member: str, time: str, kind: str, **fields: Any) -> dict[str, Any]:
    return {"id": f"e{n}", "time": time + SH, "type": kind, "member": member, **fields}


def build_environment(settings: Settings) -> dict[str, str]:
    """The environment, through the real API in-process; answers the tokens."""
    tally = Tally(settings)
    tally.access.bootstrap_admin(settings.admin_token)
    with TestClient(create_app(tally)) as client:
        admin = Admin(client)
        admin.org("alpha")
        admin.put("alpha/departments/alpha", {"name": "Alpha"})
        admin.put("alpha/departments/alpha-eng", {"name": "Engineering", "parent": "alpha"})
        admin.put("alpha/departments/alpha-web", {"name": "Web", "parent": "alpha-eng"})
        admin.put("alpha/departments/alpha-ops", {"name": "Operations", "parent": "alpha"})
        for member, (name, departments, developer) in MEMBERS.items():
            admin.put(
                f"alpha/members/{member}",
                {
                    "name": name,
                    "email": f"{member}@alpha.example",
                    "developer": developer,
                    "departments": departments,
                    "created_at": "2026-01-01T00:00:00+08:00",
                },
            )
        admin.put(
            "alpha/workspaces/ws1",
            {
                "name": "Main",
                "created_at": "2026-01-01T00:00:00+08:00",
                "members": [
                    {"member": "a1", "since": "2026-01-01T00:00:00+08:00"},
                    {"member": "a2", "since": "2026-01-01T00:00:00+08:00"},
                ],
            },
        )
        admin.put(
            "alpha/apps/app1",
            {"name": "Leave requests", "creator": "a1", "created_at": "2026-02-01T00:00:00+08:00"},
        )
        events = [_event(i, m, t, k, **f) for i, (m, t, k, f) in enumerate(ASSISTANT)]
        day = date(2026, 3, 1)
        while day <= date(2026, 3, 14):
            if day != GAP:
                events.append(_event(len(events), "a3", f"{day}T12:00:00", "activity"))
            day += timedelta(days=1)
        events += [
            _event(100, "a1", "2026-03-04T10:00:00", "workspace_activity", workspace="ws1"),
            _event(
                101,
                "a1",
                "2026-03-11T10:00:00",
                "app_resource",
                app="app1",
                resource="form_coop",
                delta=1,
            ),
            _event(
                102,
                "a1",
                "2026-03-12T08:00:00",
                "app_resource",
                app="app1",
                resource="form_coop",
                delta=1,
            ),
            _event(103, "a2", "2026-03-13T10:00:00", "app_visit", app="app1"),
            _event(104, "a2", "2026-03-13T10:05:00", "app_data", app="app1", records=500),
        ]
        assert admin.events("alpha", events)["rejected"] == []
        admin.org("beta", "America/New_York")
        admin.put("beta/departments/beta", {"name": "Beta Root"})
        admin.put(
            "beta/members/b1",
            {
                "name": "Zed Beta",
                "email": "b1@beta.example",
                "developer": True,
                "departments": ["beta"],
                "created_at": "2026-01-01T00:00:00-05:00",
            },
        )
        beta_event = {
            "id": "b-e1",
            "time": "2026-03-05T10:00:00-05:00",
            "type": "completion",
            "member": "b1",
            "ide": "vscode",
            "language": "go",
            "lines_suggested": 3,
            "accepted": True,
            "lines_accepted": 3,
        }
        assert admin.events("beta", [beta_event])["rejected"] == []
        tokens = {
            "alpha": admin.token("alpha", "read"),
            "beta": admin.token("beta", "read"),
            "alpha_ingest": admin.token("alpha", "ingest"),
        }
    tally.refresh_rollups()
    tally.close()
    return tokens


class Env:
    def __init__(self, server: ServerProcess, tokens: dict[str, str], shots: Path) -> None:
        self.server = server
        self.url = server.url
        self.tokens = tokens
        self.shots = shots

    def api(self, path: str, token: str, **params: Any) -> Any:
        response = httpx.get(
            self.url + path,
            params=params,
            headers={"Authorization": f"Bearer {token}", "x-yunxiao-token": token},
        )
        assert response.status_code == 200, response.text
        return response.json()


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    root = tmp_path_factory.mktemp("dashboard")
    db = root / "tally.duckdb"
    settings = Settings(
        db_path=db,
        admin_token=ADMIN,
        clock=fixed_clock(NOW),
        apps_rate_limit_per_second=0,
        rollup_refresh_seconds=0,
    )
    tokens = build_environment(settings)
    server = ServerProcess(
        db,
        ADMIN,
        env={"TALLY_NOW": NOW.isoformat(), "TALLY_APPS_RATE_LIMIT_PER_SECOND": "0"},
    )
    shots = root / "screenshots"
    shots.mkdir()
    try:
        yield Env(server, tokens, shots)
    finally:
        server.stop()


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    """Debian's Chromium: Playwright cannot download its own browser here."""
    executable = shutil.which("chromium")
    assert executable is not None, "Debian's chromium is missing: run scripts/test-deps.sh"
    return {**browser_type_launch_args, "executable_path": executable, "headless": True}


class Console:
    """Every console error and uncaught page error (a CSP violation is one)."""

    def __init__(self, page: Page) -> None:
        self.errors: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.errors.append(f"pageerror: {error}"))

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(message.text)


@pytest.fixture
def context(browser: Browser, env: Env) -> Iterator[BrowserContext]:
    ctx = browser.new_context(base_url=env.url, viewport={"width": 1280, "height": 900})
    yield ctx
    ctx.close()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    return context.new_page()


def sign_in(page: Page, token: str) -> Console:
    console = Console(page)
    page.goto("/ui/signin")
    page.fill("#token", token)
    page.click("button[type=submit]")
    page.wait_for_url("**/ui/")
    return console


def open_view(page: Page, path: str) -> None:
    page.goto(path)
    page.wait_for_selector("body[data-ready]", state="attached")
    assert page.get_attribute("body", "data-ready") == "true", page.inner_text("#content")


def number(text: str) -> int:
    return int(text.replace(",", ""))


def painted(page: Page, selector: str) -> int:
    """How many pixels of the canvas at ``selector`` are not transparent."""
    count: int = page.evaluate(
        """(selector) => {
            const canvas = document.querySelector(selector);
            const context = canvas.getContext("2d");
            const data = context.getImageData(0, 0, canvas.width, canvas.height).data;
            let n = 0;
            for (let i = 3; i < data.length; i += 4) if (data[i] !== 0) n++;
            return n;
        }""",
        selector,
    )
    return count


def table_rows(page: Page, name: str) -> list[list[str]]:
    rows: list[list[str]] = page.eval_on_selector_all(
        f'table[data-table="{name}"] tbody tr',
        "rows => rows.map(r => Array.from(r.cells).map(c => c.innerText.trim()))",
    )
    return rows


def card(page: Page, figure: str) -> str:
    return page.inner_text(f'.card[data-figure="{figure}"] .value')


# -- the oracle: plain Python over the hand-written events -----------------------------------


def oracle() -> dict[str, Any]:
    by_day: dict[date, set[str]] = defaultdict(set)
    suggested = accepted = chat = lines = 0
    for member, time, kind, fields in ASSISTANT:
        by_day[date.fromisoformat(time[:10])].add(member)
        if kind == "completion":
            suggested += 1
            accepted += 1 if fields["accepted"] else 0
            lines += fields["lines_accepted"]
        if kind == "chat":
            chat += 1
    first, last = date.fromisoformat(FIRST), date.fromisoformat(LAST)
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]

    def trailing(day: date, n: int) -> int:
        members: set[str] = set()
        for k in range(n):
            members |= by_day.get(day - timedelta(days=k), set())
        return len(members)

    return {
        "days": days,
        "active": [len(by_day.get(d, set())) for d in days],
        "active_7d": [trailing(d, 7) for d in days],
        "active_28d": [trailing(d, 28) for d in days],
        "suggested": suggested,
        "accepted": accepted,
        "chat_turns": chat,
        "lines_accepted": lines,
        "developers": len(set().union(*by_day.values())),
    }


# -- the tests ---------------------------------------------------------------------------------


def test_a_wrong_token_gets_a_clear_error_and_no_session(
    page: Page, context: BrowserContext
) -> None:
    page.goto("/ui/signin")
    page.fill("#token", "tly_not-a-token")
    page.click("button[type=submit]")
    assert "not valid" in page.inner_text("#message")
    assert context.cookies() == []
    page.goto("/ui/")
    assert page.url.endswith("/ui/signin")


def test_a_token_without_read_cannot_open_the_dashboard(page: Page, env: Env) -> None:
    page.goto("/ui/signin")
    page.fill("#token", env.tokens["alpha_ingest"])
    page.click("button[type=submit]")
    assert 'lacks the "read" scope' in page.inner_text("#message")


def test_overview_shows_the_oracles_and_the_apis_figures(page: Page, env: Env) -> None:
    console = sign_in(page, env.tokens["alpha"])
    cookie = page.context.cookies()[0]
    assert cookie["name"] == "tally_session"
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Strict"
    assert cookie["expires"] > 0  # a session with an expiry, not a browser-lifetime cookie
    open_view(page, f"/ui/?{WINDOW}")
    want = oracle()
    assert "Asia/Shanghai" in page.inner_text("#timezone")
    assert number(card(page, "suggested")) == want["suggested"]
    assert number(card(page, "accepted")) == want["accepted"]
    assert number(card(page, "chat_turns")) == want["chat_turns"]
    assert number(card(page, "lines_accepted")) == want["lines_accepted"]
    assert number(card(page, "active_developers")) == want["developers"]
    rate = 100 * want["accepted"] / want["suggested"]  # a ratio of totals
    assert card(page, "acceptance_rate") == f"{rate:.1f}%"
    rows = table_rows(page, "days")
    assert [r[0] for r in rows] == [d.isoformat() for d in want["days"]]
    assert [number(r[1]) for r in rows] == want["active"]
    assert [number(r[2]) for r in rows] == want["active_7d"]
    assert [number(r[3]) for r in rows] == want["active_28d"]
    # The same figures from the per-member usage API (whole org) for the same window.
    api = env.api(
        "/oapi/v1/lingma/organizations/alpha/developerUsage",
        env.tokens["alpha"],
        startTime=FIRST,
        endTime=LAST,
    )
    per_day: dict[str, int] = defaultdict(int)
    for row in api:
        day = datetime.fromtimestamp(row["date"] / 1000, ZoneInfo("Asia/Shanghai")).date()
        per_day[day.isoformat()] += 1
    assert [number(r[1]) for r in rows] == [per_day.get(r[0], 0) for r in rows]
    completions = [c for row in api for c in row["breakdown"]["completion"]]
    assert number(card(page, "suggested")) == sum(c["countSuggested"] for c in completions)
    assert number(card(page, "accepted")) == sum(c["countAccepted"] for c in completions)
    assert number(card(page, "chat_turns")) == sum(row["totalChatTurns"] for row in api)
    # The gap day is flagged; the charts drew.
    assert GAP.isoformat() in page.inner_text("#missing")
    flagged = [r[0] for r in rows if r[-1] == "possibly missing"]
    assert flagged == [GAP.isoformat()]
    canvases = page.locator("#charts canvas")
    assert canvases.count() == 3
    for i in range(3):
        assert painted(page, f"#charts figure:nth-of-type({i + 1}) canvas") > 500
    page.screenshot(path=env.shots / "overview.png", full_page=True)
    assert console.errors == []


def test_a_window_without_data_says_so_instead_of_a_blank_chart(page: Page, env: Env) -> None:
    console = sign_in(page, env.tokens["alpha"])
    open_view(page, "/ui/?from=2025-06-01&to=2025-06-10")
    assert "No usage in this window" in page.inner_text("#no-data")
    assert page.locator("#charts canvas").count() == 0
    assert page.locator("#charts .empty").count() == 3
    assert console.errors == []


def test_departments_tree_matches_the_department_usage_api_and_drills_down(
    page: Page, env: Env
) -> None:
    console = sign_in(page, env.tokens["alpha"])
    open_view(page, f"/ui/departments?{WINDOW}")
    seen = {}
    for row in table_rows(page, "departments"):
        seen[row[1]] = row
    assert list(seen) == ["alpha"]  # the roots
    page.click('table[data-table="departments"] a:text-is("Alpha")')  # its sub-departments
    page.wait_for_selector("body[data-ready]", state="attached")
    assert page.inner_text("#trail") == "All departments › Alpha"
    rows = table_rows(page, "departments")
    assert [r[1] for r in rows] == ["alpha-eng", "alpha-ops"]
    seen.update({r[1]: r for r in rows})
    page.click('table[data-table="departments"] a:text-is("Engineering")')
    page.wait_for_selector("body[data-ready]", state="attached")
    seen.update({r[1]: r for r in table_rows(page, "departments")})
    assert list(seen) == ["alpha", "alpha-eng", "alpha-ops", "alpha-web"]
    for department, row in seen.items():
        api = env.api(
            "/oapi/v1/lingma/organizations/alpha/departmentUsage",
            env.tokens["alpha"],
            departmentId=department,
            startTime=FIRST,
            endTime=LAST,
        )
        assert number(row[6]) == sum(d["totalChatTurns"] for d in api)
        assert number(row[7]) == sum(d["totalCountSuggestedCompletion"] for d in api)
        assert number(row[8]) == sum(d["totalCountAcceptedCompletion"] for d in api)
        assert number(row[4]) == max((d["activeDeveloper"] for d in api), default=0)
    # members now in each subtree
    assert {d: number(r[3]) for d, r in seen.items()} == {
        "alpha": 4,
        "alpha-eng": 2,
        "alpha-ops": 2,
        "alpha-web": 1,
    }
    assert painted(page, 'table[data-table="departments"] tbody tr:nth-child(1) canvas') > 20
    # Sorting, on Alpha's level: by completions suggested, descending on the second click.
    page.click('#trail a:text-is("Alpha")')
    page.wait_for_selector("body[data-ready]", state="attached")
    header = page.locator(
        'table[data-table="departments"] th button', has_text="Completions suggested"
    )
    header.click()
    assert [r[1] for r in table_rows(page, "departments")] == ["alpha-ops", "alpha-eng"]
    header.click()
    assert [r[1] for r in table_rows(page, "departments")] == ["alpha-eng", "alpha-ops"]
    assert page.get_attribute('th:has(button:text-is("Completions suggested"))', "aria-sort") == (
        "descending"
    )
    page.screenshot(path=env.shots / "departments.png", full_page=True)
    # Drill-down: Engineering's members (its whole subtree), then one member's page.
    page.click('table[data-table="departments"] tr:has-text("alpha-eng") a:text-is("members")')
    page.wait_for_selector("body[data-ready]", state="attached")
    members = table_rows(page, "members")
    assert [r[1] for r in members] == ["a1", "a2"]
    page.screenshot(path=env.shots / "department.png", full_page=True)
    page.click('table[data-table="members"] a:text-is("Ann Alpha")')
    page.wait_for_selector("body[data-ready]", state="attached")
    assert page.inner_text("#title") == "Ann Alpha"
    api = env.api(
        "/oapi/v1/lingma/organizations/alpha/developerUsage",
        env.tokens["alpha"],
        startTime=FIRST,
        endTime=LAST,
        userId="a1",
    )
    completions = [c for row in api for c in row["breakdown"]["completion"]]
    assert number(card(page, "suggested")) == sum(c["countSuggested"] for c in completions)
    assert number(card(page, "chat_turns")) == sum(row["totalChatTurns"] for row in api)
    ides = {r[0]: number(r[2]) for r in table_rows(page, "ides")}
    assert ides == {"jetbrains": 1, "vscode": 4}  # completions suggested per IDE
    assert "2026-03-12T09:00:00+08:00" in page.inner_text("#who")  # last active
    assert painted(page, "#charts canvas") > 200
    page.screenshot(path=env.shots / "member.png", full_page=True)
    assert console.errors == []


def test_not_active_for_n_days_lists_idle_and_never_active_members(page: Page, env: Env) -> None:
    console = sign_in(page, env.tokens["alpha"])
    open_view(page, "/ui/inactive?days=3")
    # Now is 2026-03-15 12:00 in Shanghai: a1's latest event (03-12 09:00) lies more than 3
    # days back; a2 visited an app on 03-13, a3 used the platform on 03-14; a4 never did.
    rows = table_rows(page, "inactive")
    assert [r[1] for r in rows] == ["a1", "a4"]
    assert rows[0][5] == "2026-03-12T09:00:00+08:00"
    assert rows[1][5] == "never"
    members = env.api("/oapi/v1/platform/organizations/alpha/members", env.tokens["alpha"])
    visited = {m["id"]: m.get("visited") for m in members}
    assert visited["a4"] is None
    assert visited["a3"] is not None
    page.screenshot(path=env.shots / "inactive.png", full_page=True)
    assert console.errors == []


def test_environment_page_matches_the_environment_statistics_api(page: Page, env: Env) -> None:
    console = sign_in(page, env.tokens["alpha"])
    open_view(page, f"/ui/environment?{WINDOW}")
    answer = env.api(
        "/api/statistics/",
        env.tokens["alpha"],
        stats_type="users",
        start=FIRST,
        end=LAST,
        org_domain="alpha.example",
    )["users"]
    rows = table_rows(page, "days")
    days = [f"{d['year']:04d}-{d['month']:02d}-{d['day']:02d}" for d in answer["total_users"]]
    assert [r[0] for r in rows] == days
    assert [number(r[1]) for r in rows] == [d["count"] for d in answer["total_users"]]
    per_day = answer["daily_active_users"]["per_day"]
    assert [number(r[2]) for r in rows] == [d["count"] for d in per_day]
    months = table_rows(page, "months")
    assert [number(r[1]) for r in months] == [m["count"] for m in answer["monthly_active_users"]]
    # a3 every day but the gap day, a1 and a2 on some: every member but a4 in March
    assert [number(r[1]) for r in months] == [3]
    assert number(card(page, "users")) == 4
    spaces = env.api(
        "/api/statistics/",
        env.tokens["alpha"],
        stats_type="workspaces",
        start=FIRST,
        end=LAST,
        org_domain="alpha.example",
    )["workspaces"]
    (row,) = table_rows(page, "workspaces")
    assert row[:3] == ["2026-03", "ws1", "Main"]
    assert number(row[3]) == spaces["total_users"][-1]["ws1"] == 2
    assert number(row[4]) == spaces["monthly_active_users"][0]["ws1"] == 1  # a1 on 03-04
    assert painted(page, "#charts figure:nth-of-type(1) canvas") > 200
    page.screenshot(path=env.shots / "environment.png", full_page=True)
    assert console.errors == []


def test_apps_page_matches_the_app_usage_api(page: Page, env: Env) -> None:
    console = sign_in(page, env.tokens["alpha"])
    open_view(page, "/ui/apps")
    response = httpx.post(
        env.url + "/api/v1/app/usage_stats",
        json={"date": "2026-03-14"},
        headers={"Authorization": f"Bearer {env.tokens['alpha']}"},
    )
    assert response.status_code == 200, response.text
    (item,) = response.json()["items"]
    rows = table_rows(page, "apps")
    assert [r[0] for r in rows] == [item["app_id"]] == ["app1"]
    assert rows[0][4] == item["last_visit_at"] == "2026-03-13T10:00:00+08:00"
    assert number(rows[0][6]) == item["metrics"]["form_coop"] == 2  # two +1
    assert number(rows[0][-1]) == item["metrics"]["data"] == 500
    page.screenshot(path=env.shots / "apps.png", full_page=True)
    assert console.errors == []


def test_csv_download_holds_the_tables_rows(page: Page, env: Env) -> None:
    sign_in(page, env.tokens["alpha"])
    open_view(page, f"/ui/?{WINDOW}")
    with page.expect_download() as info:
        page.click('a.csv[data-table="days"]')
    content = Path(info.value.path()).read_bytes().decode()
    assert "\r\n" in content  # RFC 4180 line ends
    parsed = list(csv.reader(io.StringIO(content)))
    want = oracle()
    assert parsed[0][:4] == ["Day", "Active developers", "7-day actives", "28-day actives"]
    assert [r[0] for r in parsed[1:]] == [d.isoformat() for d in want["days"]]
    assert [int(r[1]) for r in parsed[1:]] == want["active"]


def test_another_orgs_token_sees_nothing_of_it(page: Page, env: Env) -> None:
    console = sign_in(page, env.tokens["beta"])
    open_view(page, "/ui/")
    assert "Beta" in page.inner_text("#org")
    assert "America/New_York" in page.inner_text("#timezone")
    response = page.goto("/ui/?org=alpha")
    assert response is not None
    assert response.status == 403
    assert "Alpha" not in page.content()
    for path in ("/ui/api/overview?org=alpha", "/ui/csv/overview/days?org=alpha"):
        answer = page.request.get(path)
        assert answer.status == 403
        assert "alpha" not in answer.text().lower().replace("org=alpha", "")
    answer = page.request.get("/ui/api/member?id=a1")  # alpha's member, asked in beta
    assert answer.status == 404
    open_view(page, "/ui/departments")
    assert [r[1] for r in table_rows(page, "departments")] == ["beta"]
    assert page.request.get("/ui/api/departments?parent=alpha").status == 404
    console.errors = [e for e in console.errors if "403" not in e]  # the refused page itself
    assert console.errors == []


def test_the_environment_admin_can_switch_organizations(page: Page) -> None:
    console = sign_in(page, ADMIN)
    open_view(page, "/ui/")
    options = page.eval_on_selector_all("#org option", "os => os.map(o => o.value)")
    assert options == ["alpha", "beta"]
    page.select_option("#org", "beta")
    page.click("form.controls button[type=submit]")
    page.wait_for_selector("body[data-ready]", state="attached")
    assert "Beta" in page.inner_text("#window")
    assert console.errors == []


def test_sign_out_clears_the_session(page: Page, context: BrowserContext, env: Env) -> None:
    sign_in(page, env.tokens["alpha"])
    open_view(page, "/ui/")
    page.click("#signout")
    page.wait_for_url("**/ui/signin?reason=signedout")
    assert "signed out" in page.inner_text("#message")
    assert context.cookies() == []
    assert page.request.get("/ui/api/overview").status == 401
    page.goto("/ui/")
    assert page.url.endswith("/ui/signin")


def test_a_tampered_or_expired_session_asks_to_sign_in_again(
    page: Page, context: BrowserContext, env: Env
) -> None:
    sign_in(page, env.tokens["alpha"])
    cookie = context.cookies()[0]
    expires, token_part, signature = cookie["value"].split(".")
    later = str(int(expires) + 86_400)  # stretching the expiry breaks the signature
    context.clear_cookies()
    stretched = f"{later}.{token_part}.{signature}"
    context.add_cookies([{"name": cookie["name"], "value": stretched, "url": env.url + "/ui/"}])
    page.goto("/ui/")
    assert page.url.endswith("/ui/signin?reason=expired")
    assert "expired" in page.inner_text("#message")


def test_pages_carry_the_security_headers(page: Page, env: Env) -> None:
    sign_in(page, env.tokens["alpha"])
    for path in ("/ui/", "/ui/signin", "/ui/api/overview", "/ui/static/dashboard.js"):
        response = page.request.get(path)
        policy = response.headers["content-security-policy"]
        assert "script-src 'self'" in policy
        assert "unsafe-inline" not in policy
        assert "frame-ancestors 'none'" in policy
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "same-origin"
    html = page.request.get("/ui/").text()
    assert "<script>" not in html  # no inline script
    assert " style=" not in html  # nor inline style


def test_every_page_fits_a_phone_width(browser: Browser, env: Env) -> None:
    ctx = browser.new_context(base_url=env.url, viewport={"width": 390, "height": 844})
    page = ctx.new_page()
    console = sign_in(page, env.tokens["alpha"])
    for path in (
        f"/ui/?{WINDOW}",
        f"/ui/departments?{WINDOW}",
        f"/ui/department?id=alpha-eng&{WINDOW}",
        f"/ui/member?id=a1&{WINDOW}",
        "/ui/inactive?days=3",
        f"/ui/environment?{WINDOW}",
        "/ui/apps",
    ):
        open_view(page, path)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, path
    page.goto(f"/ui/?{WINDOW}")
    page.wait_for_selector("body[data-ready]", state="attached")
    page.screenshot(path=env.shots / "overview-phone.png", full_page=True)
    assert console.errors == []
    ctx.close()
