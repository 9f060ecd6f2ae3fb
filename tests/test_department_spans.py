"""Who is in which department subtree, when: the facts the per-department rollups are keyed on,
and the instant from which a member PUT changes them (checked against hand-worked cases)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from tally.engine.department_usage import department_spans, subtree_spans
from tally.model.directory import (
    EARLIEST,
    Department,
    Directory,
    Member,
    MemberVersion,
    Organization,
    first_divergence,
)
from tally.stores.base import MemberSpan
from tally.timeutil import to_micros

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def _v(hours: int, *departments: str, developer: bool = False) -> MemberVersion:
    return MemberVersion(
        effective_at=T0 + timedelta(hours=hours), developer=developer, departments=departments
    )


def _departments(v: MemberVersion) -> frozenset[str]:
    return frozenset(v.departments)


def test_no_divergence_when_only_other_facts_change() -> None:
    old = (_v(0, "a"), _v(5, "b"))
    new = (_v(0, "a", developer=True), _v(5, "b"))
    assert first_divergence(old, new, _departments) is None
    assert first_divergence(old, new, lambda v: v.developer) == EARLIEST


def test_divergence_at_a_new_version() -> None:
    old = (_v(0, "a"),)
    new = (_v(0, "a"), _v(7, "b"))
    assert first_divergence(old, new, _departments) == T0 + timedelta(hours=7)


def test_divergence_when_a_version_moves_in_time() -> None:
    old = (_v(0, "a"), _v(9, "b"))
    new = (_v(0, "a"), _v(4, "b"))  # the move now happens five hours earlier
    assert first_divergence(old, new, _departments) == T0 + timedelta(hours=4)


def test_divergence_from_the_start_when_the_first_version_differs() -> None:
    # The first version also holds before its own effective_at, so the change reaches back.
    assert first_divergence((_v(3, "a"),), (_v(3, "b"),), _departments) == EARLIEST


def test_same_departments_in_another_order_do_not_diverge() -> None:
    assert first_divergence((_v(0, "a", "b"),), (_v(0, "b", "a"),), _departments) is None


def test_an_added_version_with_the_same_departments_does_not_diverge() -> None:
    old = (_v(0, "a"),)
    new = (_v(0, "a"), _v(6, "a", developer=True))
    assert first_divergence(old, new, _departments) is None


def test_department_spans_of_a_hand_worked_directory() -> None:
    #   root ── a ── a1
    #        └─ b
    directory = Directory.build(
        Organization(id="o", name="O", domain="o.example"),
        departments=[
            Department(id="root", name="root"),
            Department(id="a", name="a", parent="root"),
            Department(id="a1", name="a1", parent="a"),
            Department(id="b", name="b", parent="root"),
        ],
        members=[
            Member(
                id="m",
                name="m",
                email="",
                created_at=T0,
                deleted_at=None,
                versions=(_v(0, "a1"), _v(10, "a"), _v(20, "b")),
            )
        ],
    )
    lo, hi = to_micros(T0 - timedelta(hours=5)), to_micros(T0 + timedelta(hours=30))
    at10, at20 = to_micros(T0 + timedelta(hours=10)), to_micros(T0 + timedelta(hours=20))
    assert department_spans(directory, lo, hi) == {
        "root": [MemberSpan("m", lo, hi)],  # three versions, all under root: one merged span
        "a": [MemberSpan("m", lo, at20)],
        "a1": [MemberSpan("m", lo, at10)],
        "b": [MemberSpan("m", at20, hi)],
    }


def test_department_spans_agree_with_subtree_spans_on_random_directories() -> None:
    rng = random.Random(5)
    for _ in range(30):
        ids = [f"d{i}" for i in range(12)]
        departments = [
            Department(
                id=d, name=d, parent=ids[rng.randrange(i)] if i and rng.random() < 0.9 else None
            )
            for i, d in enumerate(ids)
        ]
        members = []
        for m in range(15):
            hours = sorted(rng.sample(range(-48, 96), k=rng.randint(1, 4)))
            versions = tuple(_v(h, *rng.sample(ids, k=rng.randint(0, 2))) for h in hours)
            members.append(
                Member(
                    id=f"m{m}", name="", email="", created_at=T0, deleted_at=None, versions=versions
                )
            )
        directory = Directory.build(
            Organization(id="o", name="O", domain="o.example"), departments, members
        )
        lo, hi = to_micros(T0), to_micros(T0 + timedelta(hours=rng.randint(1, 72)))
        every = department_spans(directory, lo, hi)
        for d in ids:
            assert sorted(every.get(d, []), key=repr) == sorted(
                subtree_spans(directory, d, lo, hi), key=repr
            ), d
