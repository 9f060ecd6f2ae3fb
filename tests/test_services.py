"""The test servers themselves: the ClickHouse cluster splits rows over its shards and PostgreSQL
answers, so a failing store test is about the store, not about its server."""

from __future__ import annotations

from typing import TYPE_CHECKING

import psycopg
from clickhouse_driver import Client  # type: ignore[import-untyped]

if TYPE_CHECKING:
    from tests.services import ClickHouseCluster, PostgresServer

# Until tests/conftest.py names it (then this line is redundant, and harmless).


def _client(cluster: ClickHouseCluster, shard: int, database: str) -> Client:
    return Client(
        host="127.0.0.1",
        port=cluster.ports[shard],
        database=database,
        connect_timeout=5,
        send_receive_timeout=30,
    )


def test_distributed_table_splits_rows_over_both_shards(
    clickhouse_cluster: ClickHouseCluster, clickhouse_database: str
) -> None:
    db = clickhouse_database
    for shard in (0, 1):
        clickhouse_cluster.execute(
            shard, "CREATE TABLE local (id UInt32, name String) ENGINE = MergeTree ORDER BY id", db
        )
    clickhouse_cluster.execute(
        0,
        f"CREATE TABLE dist AS local ENGINE = Distributed({clickhouse_cluster.cluster}, "
        f"{db}, local, id)",
        db,
    )
    client = _client(clickhouse_cluster, 0, db)
    try:
        rows = [(i, f"n{i}") for i in range(10)]
        client.execute("INSERT INTO dist VALUES", rows, settings={"insert_distributed_sync": 1})
        # Sharding key id over two equal-weight shards: even ids on the first, odd on the second.
        assert client.execute("SELECT id, name FROM dist ORDER BY id") == rows
    finally:
        client.disconnect()
    assert clickhouse_cluster.execute(
        0, "SELECT groupArray(id) FROM (SELECT id FROM local ORDER BY id)", db
    ) == [([0, 2, 4, 6, 8],)]
    assert clickhouse_cluster.execute(
        1, "SELECT groupArray(id) FROM (SELECT id FROM local ORDER BY id)", db
    ) == [([1, 3, 5, 7, 9],)]


def test_clickhouse_url_names_the_first_server_and_the_cluster(
    clickhouse_cluster: ClickHouseCluster,
) -> None:
    port = clickhouse_cluster.ports[0]
    assert clickhouse_cluster.url("db1") == f"clickhouse://127.0.0.1:{port}/db1?cluster=tally"
    assert clickhouse_cluster.url("db1", cluster=False) == f"clickhouse://127.0.0.1:{port}/db1"
    # The servers run in UTC whatever the machine's zone.
    assert clickhouse_cluster.execute(1, "SELECT toString(toDateTime(86400))") == [
        ("1970-01-02 00:00:00",)
    ]


def test_postgres_gives_each_test_its_own_database(
    postgres_server: PostgresServer, postgres_dsn: str
) -> None:
    assert postgres_dsn.startswith(f"postgresql://postgres@127.0.0.1:{postgres_server.port}/t_")
    with psycopg.connect(postgres_dsn) as conn:
        conn.execute("CREATE TABLE t (x int)")
        conn.execute("INSERT INTO t VALUES (1), (2)")
        assert conn.execute("SELECT sum(x), current_database() FROM t").fetchone() == (
            3,
            postgres_dsn.rsplit("/", 1)[1],
        )
        version = conn.execute("SHOW server_version_num").fetchone()
    assert version is not None
    assert int(version[0]) // 10000 == 15
