"""Real PostgreSQL and ClickHouse servers for the tests, as a pytest plugin (session fixtures).

Each server starts on free loopback ports in a temp dir the first time a test asks for it, and
stops by its PID at the end of the session. ``scripts/test-deps.sh`` installs the binaries.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

PG_BIN = Path("/usr/lib/postgresql/15/bin")
CLICKHOUSE_BIN = "clickhouse-server"
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 20.0
INSTALL_HINT = "run `bash scripts/test-deps.sh` as root (or `make test`) to install it"


def free_ports(n: int) -> list[int]:
    """``n`` distinct loopback ports that were free a moment ago."""
    socks = []
    try:
        for _ in range(n):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            socks.append(sock)
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for sock in socks:
            sock.close()


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no log at {path})"


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting for its reaper counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status


def _terminate(pid: int, timeout: float = STOP_TIMEOUT_S) -> None:
    """SIGTERM ``pid``, then SIGKILL if it is still there after ``timeout`` seconds."""
    if not _alive(pid):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)


# -- PostgreSQL ----------------------------------------------------------------------------


class PostgresServer:
    """A PostgreSQL 15 cluster in a temp dir, run as user ``postgres`` when we are root."""

    def __init__(self) -> None:
        initdb = PG_BIN / "initdb"
        if not initdb.exists():
            pytest.fail(
                f"PostgreSQL 15 is not installed ({initdb} missing): {INSTALL_HINT}", pytrace=False
            )
        self.base = Path(tempfile.mkdtemp(prefix="tally-pg-"))
        self.data = self.base / "data"
        self.log = self.base / "postgres.log"
        self.port = 0
        self.pid: int | None = None
        self._as_root = os.geteuid() == 0
        if self._as_root:
            shutil.chown(self.base, "postgres", "postgres")
        atexit.register(self.stop)
        try:
            self._run(
                "initdb",
                "-D",
                str(self.data),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-locale",
                "--no-sync",
            )
            self._start()
        except BaseException:
            self.stop()
            raise

    def _run(self, program: str, *args: str) -> subprocess.CompletedProcess[str]:
        cmd = [str(PG_BIN / program), *args]
        if self._as_root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        result = subprocess.run(
            cmd, capture_output=True, text=True, timeout=START_TIMEOUT_S, cwd=self.base, check=False
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"{program} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}\n"
                f"log tail:\n{_tail(self.log)}"
            )
        return result

    def _start(self) -> None:
        # A free port may be taken between our probe and the server's bind: retry on another.
        for attempt in range(3):
            self.port = free_ports(1)[0]
            options = (
                f"-c port={self.port} -c listen_addresses=127.0.0.1 "
                f"-c unix_socket_directories={self.base} -c max_connections=200 "
                # Only an OS crash loses what fsync would have kept; killing the server does
                # not (synchronous_commit stays on). Halves the time of CREATE DATABASE.
                "-c fsync=off"
            )
            try:
                self._run(
                    "pg_ctl",
                    "-D",
                    str(self.data),
                    "-l",
                    str(self.log),
                    "-w",
                    "-t",
                    str(int(START_TIMEOUT_S)),
                    "-o",
                    options,
                    "start",
                )
            except RuntimeError:
                if attempt == 2:
                    raise
                continue
            break
        self.pid = int((self.data / "postmaster.pid").read_text().split()[0])

    def dsn(self, dbname: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def create_database(self) -> str:
        """A new empty database; returns its name."""
        import psycopg
        from psycopg import sql

        name = f"t_{uuid.uuid4().hex}"
        with psycopg.connect(self.dsn(), autocommit=True, connect_timeout=10) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return name

    def drop_database(self, name: str) -> None:
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.dsn(), autocommit=True, connect_timeout=10) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )

    def stop(self) -> None:
        if self.pid is not None:
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                self._run(
                    "pg_ctl",
                    "-D",
                    str(self.data),
                    "-m",
                    "fast",
                    "-w",
                    "-t",
                    str(int(STOP_TIMEOUT_S)),
                    "stop",
                )
            _terminate(self.pid)
            self.pid = None
        shutil.rmtree(self.base, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One PostgreSQL cluster for the session; ``.dsn(dbname)`` names a database on it."""
    server = PostgresServer()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_dsn(postgres_server: PostgresServer) -> Iterator[str]:
    """A fresh empty database for this test: ``postgresql://postgres@127.0.0.1:PORT/t_...``."""
    name = postgres_server.create_database()
    yield postgres_server.dsn(name)
    postgres_server.drop_database(name)


# -- ClickHouse ----------------------------------------------------------------------------

CLUSTER = "tally"

_USERS_XML = """<?xml version="1.0"?>
<yandex>
    <profiles><default>
        <max_memory_usage>2000000000</max_memory_usage>
        <load_balancing>in_order</load_balancing>
    </default></profiles>
    <users><default>
        <password></password>
        <networks><ip>::/0</ip></networks>
        <profile>default</profile>
        <quota>default</quota>
    </default></users>
    <quotas><default><interval>
        <duration>3600</duration>
        <queries>0</queries><errors>0</errors><result_rows>0</result_rows>
        <read_rows>0</read_rows><execution_time>0</execution_time>
    </interval></default></quotas>
</yandex>
"""

_CONFIG_XML = """<?xml version="1.0"?>
<yandex>
    <logger>
        <level>warning</level>
        <log>{dir}/server.log</log>
        <errorlog>{dir}/server.err.log</errorlog>
        <size>10M</size>
        <count>1</count>
    </logger>
    <listen_host>127.0.0.1</listen_host>
    <tcp_port>{tcp}</tcp_port>
    <http_port>{http}</http_port>
    <interserver_http_port>{interserver}</interserver_http_port>
    <interserver_http_host>127.0.0.1</interserver_http_host>
    <path>{dir}/data/</path>
    <tmp_path>{dir}/tmp/</tmp_path>
    <user_files_path>{dir}/user_files/</user_files_path>
    <format_schema_path>{dir}/format_schemas/</format_schema_path>
    <users_config>{dir}/users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <timezone>UTC</timezone>
    <max_connections>256</max_connections>
    <max_concurrent_queries>100</max_concurrent_queries>
    <uncompressed_cache_size>268435456</uncompressed_cache_size>
    <mark_cache_size>268435456</mark_cache_size>
    <mlock_executable>false</mlock_executable>
    <remote_servers>
        <{cluster}>
{shards}
        </{cluster}>
    </remote_servers>
</yandex>
"""

_SHARD_XML = """\
            <shard><replica><host>127.0.0.1</host><port>{port}</port></replica></shard>"""


class ClickHouseServer:
    """One ``clickhouse-server`` daemon in ``dir``."""

    def __init__(self, dir: Path, tcp: int, http: int, interserver: int) -> None:
        self.dir = dir
        self.tcp_port = tcp
        self.http_port = http
        self.interserver_port = interserver
        self.pid_file = dir / "server.pid"
        self.log = dir / "server.err.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.pid: int | None = None

    def write_config(self, shard_ports: list[int]) -> None:
        for sub in ("data", "tmp", "user_files", "format_schemas"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        shards = "\n".join(_SHARD_XML.format(port=p) for p in shard_ports)
        (self.dir / "users.xml").write_text(_USERS_XML)
        (self.dir / "config.xml").write_text(
            _CONFIG_XML.format(
                dir=self.dir,
                tcp=self.tcp_port,
                http=self.http_port,
                interserver=self.interserver_port,
                cluster=CLUSTER,
                shards=shards,
            )
        )

    def launch(self) -> None:
        """Start the server (returns before it answers: see :meth:`wait_ready`).

        In the foreground, as our child in its own session, rather than ``--daemon``: the PID is
        known at once, an early exit is seen at once, and errors before its logger starts (a bad
        path, a port in use) land in ``server.out`` instead of /dev/null."""
        with open(self.dir / "server.out", "wb") as out:
            self.process = subprocess.Popen(
                [
                    CLICKHOUSE_BIN,
                    f"--config-file={self.dir / 'config.xml'}",
                    f"--pid-file={self.pid_file}",
                ],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.dir,
                start_new_session=True,  # a Ctrl-C of pytest reaches the teardown, not the server
            )
        self.pid = self.process.pid

    def wait_ready(self, deadline: float) -> None:
        url = f"http://127.0.0.1:{self.http_port}/ping"
        while True:
            try:
                with urllib.request.urlopen(url, timeout=1) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            code = self.process.poll() if self.process is not None else None
            if code is not None or time.monotonic() > deadline:
                what = (
                    f"exited with {code}"
                    if code is not None
                    else f"did not answer /ping in {START_TIMEOUT_S:.0f} s"
                )
                raise RuntimeError(
                    f"clickhouse-server on http port {self.http_port} {what}; output and log "
                    f"tail ({self.dir}):\n{_tail(self.dir / 'server.out')}\n{_tail(self.log)}"
                )
            time.sleep(0.05)

    def stop(self, wait: float = STOP_TIMEOUT_S) -> None:
        """SIGTERM, then SIGKILL after a bounded wait; by PID."""
        if self.process is None:
            return
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.terminate()
            try:
                self.process.wait(wait)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    self.process.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.process.wait(5)
        self.process = None
        self.pid = None


class ClickHouseCluster:
    """Two ClickHouse servers on loopback, forming the cluster ``tally`` of two shards."""

    cluster = CLUSTER

    def __init__(self, shards: int = 2) -> None:
        if shutil.which(CLICKHOUSE_BIN) is None:
            pytest.fail(f"{CLICKHOUSE_BIN} is not installed: {INSTALL_HINT}", pytrace=False)
        self.base = Path(tempfile.mkdtemp(prefix="tally-ch-"))
        ports = free_ports(3 * shards)
        self.servers = [
            ClickHouseServer(self.base / f"s{i}", *ports[3 * i : 3 * i + 3]) for i in range(shards)
        ]
        atexit.register(self.stop)
        try:
            for server in self.servers:
                server.write_config(self.ports)
                server.launch()
            deadline = time.monotonic() + START_TIMEOUT_S
            for server in self.servers:
                server.wait_ready(deadline)
        except BaseException:
            self.stop()
            raise

    @property
    def ports(self) -> list[int]:
        """The native (TCP) port of each server, shard order."""
        return [s.tcp_port for s in self.servers]

    @property
    def http_ports(self) -> list[int]:
        return [s.http_port for s in self.servers]

    def url(self, database: str, cluster: bool = True) -> str:
        """``clickhouse://127.0.0.1:PORT1/DATABASE`` (first server), ``?cluster=tally`` unless
        ``cluster=False``."""
        url = f"clickhouse://127.0.0.1:{self.ports[0]}/{database}"
        return f"{url}?cluster={self.cluster}" if cluster else url

    def execute(self, shard: int, query: str, database: str = "default") -> object:
        """Run one statement on one server (clickhouse-driver, native protocol)."""
        from clickhouse_driver import Client  # type: ignore[import-untyped]

        client = Client(
            host="127.0.0.1",
            port=self.ports[shard],
            database=database,
            connect_timeout=5,
            send_receive_timeout=60,
        )
        try:
            return client.execute(query)
        finally:
            client.disconnect()

    def create_database(self) -> str:
        """A new database, created on every server (ON CLUSTER would need ZooKeeper)."""
        name = f"t_{uuid.uuid4().hex}"
        for shard in range(len(self.servers)):
            self.execute(shard, f"CREATE DATABASE {name}")
        return name

    def drop_database(self, name: str) -> None:
        for shard in range(len(self.servers)):
            self.execute(shard, f"DROP DATABASE IF EXISTS {name}")

    def stop(self) -> None:
        """Both servers at once. ClickHouse 18.16 takes longer than its SIGTERM wait to exit
        (the session's teardown spent 2 x 20 s there); its data is thrown away, so after a
        short grace each is killed."""
        for server in self.servers:
            if server.process is not None and server.process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    server.process.terminate()
        for server in self.servers:
            server.stop(wait=3.0)
        shutil.rmtree(self.base, ignore_errors=True)


@pytest.fixture(scope="session")
def clickhouse_cluster() -> Iterator[ClickHouseCluster]:
    """Two ClickHouse 18.16 servers forming the cluster ``tally`` (two shards), for the session."""
    cluster = ClickHouseCluster()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def clickhouse_database(clickhouse_cluster: ClickHouseCluster) -> Iterator[str]:
    """A fresh database of that name on both servers, dropped after the test."""
    name = clickhouse_cluster.create_database()
    yield name
    clickhouse_cluster.drop_database(name)


# -- both scale-out stores at once, for the API suites ----------------------------------------


@dataclasses.dataclass(frozen=True)
class ScaleOutURLs:
    """Where a test's scale-out stores are: PostgreSQL, and the 2-shard ClickHouse cluster."""

    directory: str
    events: str


#: Directory-store tables that hold no environment data (schema version, the write counter).
KEPT_TABLES = ("tally_meta", "directory_version")


@pytest.fixture(scope="session")
def scale_out_databases(
    postgres_server: PostgresServer, clickhouse_cluster: ClickHouseCluster
) -> Iterator[ScaleOutURLs]:
    """One PostgreSQL database and one ClickHouse database (on both shards) for the session:
    creating them per test would cost a second each; ``scale_out_urls`` empties them instead."""
    pg_name = postgres_server.create_database()
    ch_name = clickhouse_cluster.create_database()
    try:
        yield ScaleOutURLs(postgres_server.dsn(pg_name), clickhouse_cluster.url(ch_name))
    finally:
        clickhouse_cluster.drop_database(ch_name)
        postgres_server.drop_database(pg_name)


@pytest.fixture
def scale_out_urls(
    scale_out_databases: ScaleOutURLs, clickhouse_cluster: ClickHouseCluster
) -> ScaleOutURLs:
    """The session's scale-out databases, emptied of every row a previous test left."""
    _empty_postgres(scale_out_databases.directory)
    database = scale_out_databases.events.rsplit("/", 1)[1].split("?", 1)[0]
    for shard in range(len(clickhouse_cluster.servers)):
        tables = clickhouse_cluster.execute(
            shard,
            "SELECT name FROM system.tables WHERE database = currentDatabase()"
            " AND engine LIKE '%MergeTree'",
            database,
        )
        for (table,) in tables:  # type: ignore[attr-defined]
            clickhouse_cluster.execute(shard, f"TRUNCATE TABLE {database}.{table}", database)
    return scale_out_databases


def _empty_postgres(dsn: str) -> None:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        tables = [
            row[0]
            for row in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            ).fetchall()
            if row[0] not in KEPT_TABLES
        ]
        if tables:
            conn.execute("TRUNCATE " + ", ".join(f'"{t}"' for t in tables))
