"""Seeded, vectorised event generator: Parquet files in the format ``tally import`` reads.

The model (no per-event Python loop; numpy for the draws, pyarrow for the columns):

* a member-day is *active* with probability ``c · activity(member) · rhythm(day)`` (weekends at
  12% of a weekday; nothing outside the member's lifetime), where ``c`` is solved so that the
  number of active member-days is ``A(N) = 2,000,000 · (N / 100M) ** 0.35``;
* each active member-day gets ``1 + multinomial(N - A)`` events weighted by the member's
  intensity, so events per active member-day grow with the total ``N`` (about 2.5 at 1M, 11 at
  10M, 50 at 100M: an active developer then makes tens of completions a day);
* a developer's events are mostly completions (in one or two IDEs and two or three languages of
  their own), then code, chat, workspace and app events; other members mostly use the platform
  and apps. Times cluster around a per-day working session in the org's timezone.

Columns: id, time (timestamp[us, UTC]), type, member, and the type fields of the contract's
section 2 (null where a type has none). Files hold whole days, in time order.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from plan import DAYS, IDES, LANGUAGES, MEMBERS, OrgPlan

TYPES = (
    "completion",
    "chat",
    "code",
    "activity",
    "workspace_activity",
    "app_visit",
    "app_edit",
    "app_resource",
    "app_data",
)
DEV_MIX = (0.62, 0.10, 0.14, 0.04, 0.05, 0.03, 0.005, 0.003, 0.002)
OTHER_MIX = (0.0, 0.0, 0.0, 0.35, 0.15, 0.30, 0.10, 0.06, 0.04)
CHAT_TYPES = (
    "FREE_INPUT",
    "EXPLAIN_CODE",
    "CODE_GENERATE_COMMENT",
    "OPTIMIZE_CODE",
    "GENERATE_TESTCASE",
    "refactor",
    "fix_lint",
)
CHAT_WEIGHTS = (0.45, 0.18, 0.12, 0.1, 0.09, 0.04, 0.02)
RESOURCES = (
    "form_coop",
    "form_workflow",
    "dash",
    "etl",
    "aggregate",
    "public_link",
    "data_trigger",
    "automation",
    "bpa",
)
RESOURCE_WEIGHTS = (0.25, 0.2, 0.15, 0.08, 0.08, 0.08, 0.06, 0.06, 0.04)
WEEKEND_RHYTHM = 0.12
CHUNK_EVENTS = 4_000_000
SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("time", pa.timestamp("us", tz="UTC")),
        ("type", pa.string()),
        ("member", pa.string()),
        ("ide", pa.string()),
        ("language", pa.string()),
        ("lines_suggested", pa.int64()),
        ("accepted", pa.bool_()),
        ("lines_accepted", pa.int64()),
        ("chat_type", pa.string()),
        ("source", pa.string()),
        ("lines_changed", pa.int64()),
        ("workspace", pa.string()),
        ("app", pa.string()),
        ("resource", pa.string()),
        ("delta", pa.int64()),
        ("records", pa.int64()),
    ]
)


@dataclass(frozen=True)
class Generated:
    files: list[Path]
    events: int
    active_member_days: int
    seconds: float

    @property
    def events_per_active_day(self) -> float:
        return self.events / max(1, self.active_member_days)


def active_member_days_target(total: int) -> int:
    return max(1, min(total, int(2_000_000 * (total / 100_000_000) ** 0.35)))


def _active_member_days(
    plan: OrgPlan, target: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """(member, day) of the active member-days, sorted by day: about ``target`` of them."""
    start = plan.start_day
    weekday = np.array([(start.toordinal() + d) % 7 for d in range(DAYS)])  # 0 = Sunday
    rhythm = np.where((weekday == 0) | (weekday == 6), WEEKEND_RHYTHM, 1.0)
    days = np.arange(DAYS)
    alive = (days[None, :] >= plan.member_created_day[:, None]) & (
        days[None, :] < plan.member_deleted_day[:, None]
    )
    weight = plan.member_activity[:, None] * rhythm[None, :] * alive
    low, high = 0.0, 1e3
    for _ in range(60):  # bisection on c: sum(min(1, c * weight)) = target
        mid = (low + high) / 2
        if np.minimum(1.0, mid * weight).sum() < target:
            low = mid
        else:
            high = mid
    chosen = rng.random(weight.shape) < np.minimum(1.0, high * weight)
    day_of, member_of = np.nonzero(chosen.T)  # day-major order
    return member_of.astype(np.int32), day_of.astype(np.int32)


def _strings(codes: np.ndarray, vocab: list[str] | tuple[str, ...], mask: np.ndarray) -> pa.Array:
    indices = pa.array(codes.astype(np.int32), mask=mask)
    return pa.DictionaryArray.from_arrays(indices, pa.array(vocab)).dictionary_decode()


def _ints(values: np.ndarray, mask: np.ndarray) -> pa.Array:
    return pa.array(values.astype(np.int64), mask=mask)


def _chunk_table(
    plan: OrgPlan,
    members: np.ndarray,
    days: np.ndarray,
    counts: np.ndarray,
    day_start: np.ndarray,
    first_id: int,
    rng: np.random.Generator,
) -> pa.Table:
    """The events of some active member-days, as one Arrow table in time order."""
    n = int(counts.sum())
    session = np.clip(rng.normal(14.0, 2.5, len(members)), 7.0, 22.0)
    mem = np.repeat(members, counts)
    day = np.repeat(days, counts)
    hour = np.clip(np.repeat(session, counts) + rng.normal(0.0, 1.6, n), 0.0, 23.999)
    ts = day_start[day] + (hour * 3_600_000_000).astype(np.int64) + rng.integers(0, 10**6, n)
    order = np.argsort(ts, kind="stable")
    mem, day, ts = mem[order], day[order], ts[order]

    dev = plan.member_dev[mem]
    u = rng.random(n)
    dev_cdf = np.cumsum(DEV_MIX) / sum(DEV_MIX)
    other_cdf = np.cumsum(OTHER_MIX) / sum(OTHER_MIX)
    kind = np.where(
        dev, np.searchsorted(dev_cdf, u, side="right"), np.searchsorted(other_cdf, u, side="right")
    ).clip(0, len(TYPES) - 1)
    is_completion, is_chat, is_code = kind == 0, kind == 1, kind == 2
    is_ws = kind == 4
    is_app = kind >= 5
    is_resource, is_data = kind == 7, kind == 8

    ide = plan.member_ides[mem, (rng.random(n) < 0.2).astype(np.int8)]
    language = plan.member_languages[mem, np.searchsorted([0.6, 0.9], rng.random(n))]
    suggested = rng.geometric(0.3, n)
    accepted_completion = rng.random(n) < plan.member_accept_rate[mem]
    accepted = np.where(is_chat, rng.random(n) < 0.4, accepted_completion)
    completion_lines = np.where(accepted, 1 + (rng.random(n) * suggested).astype(np.int64), 0).clip(
        0, suggested
    )
    code_lines = rng.geometric(0.2, n)
    lines_accepted = np.where(is_code, code_lines, completion_lines)
    lines_changed = code_lines + rng.geometric(0.3, n) - 1
    chat_p = np.cumsum(CHAT_WEIGHTS) / sum(CHAT_WEIGHTS)
    chat_type = np.searchsorted(chat_p, rng.random(n), side="right").clip(0, len(CHAT_TYPES) - 1)
    source = (rng.random(n) < 0.25).astype(np.int8)  # 0 completion, 1 chat
    workspace = plan.member_workspaces[mem, rng.integers(0, 2, n)]
    app = plan.member_apps[mem, np.searchsorted([0.6, 0.9], rng.random(n))]
    res_p = np.cumsum(RESOURCE_WEIGHTS) / sum(RESOURCE_WEIGHTS)
    resource = np.searchsorted(res_p, rng.random(n), side="right").clip(0, len(RESOURCES) - 1)
    r = rng.random(n)
    delta = np.where(r < 0.7, 1, np.where(r < 0.8, 2, -1))
    records = (
        plan.app_records_base[app] + plan.app_records_slope[app] * day + rng.integers(0, 50, n)
    )

    ids = pc.binary_join_element_wise(
        "e", pc.cast(pa.array(np.arange(first_id, first_id + n)), pa.string()), ""
    )
    columns = {
        "id": ids,
        "time": pa.array(ts, type=pa.timestamp("us", tz="UTC")),
        "type": _strings(kind, TYPES, np.zeros(n, dtype=bool)),
        "member": _strings(mem, plan.member_ids, np.zeros(n, dtype=bool)),
        "ide": _strings(ide, IDES, ~(is_completion | is_chat)),
        "language": _strings(language, LANGUAGES, ~(is_completion | is_code)),
        "lines_suggested": _ints(suggested, ~is_completion),
        "accepted": pa.array(accepted, mask=~(is_completion | is_chat)),
        "lines_accepted": _ints(lines_accepted, ~(is_completion | is_code)),
        "chat_type": _strings(chat_type, CHAT_TYPES, ~is_chat),
        "source": _strings(source, ("completion", "chat"), ~is_code),
        "lines_changed": _ints(lines_changed, ~is_code),
        "workspace": _strings(workspace, plan.ws_ids, ~is_ws),
        "app": _strings(app, plan.app_ids, ~is_app),
        "resource": _strings(resource, RESOURCES, ~is_resource),
        "delta": _ints(delta, ~is_resource),
        "records": _ints(records, ~is_data),
    }
    return pa.table(columns, schema=SCHEMA)


def generate(plan: OrgPlan, total: int, out_dir: Path, seed: int) -> Generated:
    """Write ``total`` events for ``plan`` into ``out_dir`` (Parquet files of whole days)."""
    started = time.perf_counter()
    rng = np.random.default_rng([seed, total])
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob("events-*.parquet"):
        old.unlink()
    members, days = _active_member_days(plan, active_member_days_target(total), rng)
    active = len(members)
    if active > total:  # only for tiny totals: keep the first `total` member-days
        members, days, active = members[:total], days[:total], total
    weight = plan.member_intensity[members] * rng.gamma(4.0, 0.25, active)
    counts = 1 + rng.multinomial(total - active, weight / weight.sum())
    day_start = plan.day_start_us()
    files: list[Path] = []
    cumulative = np.cumsum(counts)
    first = 0
    while first < active:
        base = int(cumulative[first - 1]) if first else 0
        last = int(np.searchsorted(cumulative, base + CHUNK_EVENTS, side="right"))
        last = max(last, first + 1)
        # whole days per file: extend to the end of the last day
        last_day = days[last - 1]
        last = int(np.searchsorted(days, last_day, side="right"))
        table = _chunk_table(
            plan, members[first:last], days[first:last], counts[first:last], day_start, base, rng
        )
        path = out_dir / f"events-{len(files):04d}.parquet"
        pq.write_table(table, path, row_group_size=500_000, compression="zstd")
        files.append(path)
        first = last
    assert int(counts.sum()) == total
    return Generated(files, total, active, time.perf_counter() - started)


def cached_events(plan: OrgPlan, total: int, cache_dir: Path) -> Generated:
    """The Parquet files for ``total`` events, generated when missing (keyed by seed and day)."""
    out_dir = cache_dir / f"events-s{plan.seed}-{plan.end_day.isoformat()}-{total}"
    done = out_dir / "DONE"
    if done.exists():
        files = sorted(out_dir.glob("events-*.parquet"))
        active = int(done.read_text().split()[0])
        return Generated(files, total, active, 0.0)
    generated = generate(plan, total, out_dir, plan.seed)
    done.write_text(f"{generated.active_member_days} active member-days\n")
    return generated


if __name__ == "__main__":  # a quick look: python bench/generate.py 1000000
    import sys
    from datetime import date, timedelta

    from plan import make_plan

    plan = make_plan(7, date.today() - timedelta(days=1))
    size = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    result = generate(plan, size, Path("bench/work/gen-check"), 7)
    print(
        f"{result.events} events, {result.active_member_days} active member-days "
        f"({result.events_per_active_day:.1f}/day), {len(result.files)} files, "
        f"{result.seconds:.1f} s; members {MEMBERS}"
    )
