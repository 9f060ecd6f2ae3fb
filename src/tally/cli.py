"""The ``tally`` command: each subcommand is a thin layer over the library (``tally.service``).

``tally import`` calls the same ingest function as ``POST .../events``; ``tally token create``
the same function as ``POST .../tokens``.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import click
import msgspec

from tally.engine.ingest import IngestResult
from tally.errors import TallyError
from tally.model.events import DecodedItem, decode_item
from tally.server import uvicorn_options
from tally.service import Tally, settle_heap
from tally.settings import Settings
from tally.timeutil import parse_instant
from tally.tokens import SCOPES

IMPORT_CHUNK = 50_000
PARQUET_CHUNK = 200_000
MIGRATE_CHUNK = 50_000
#: The flags that say where an environment's stores are, as Settings fields.
STORE_FLAGS = ("db_path", "store", "directory_url", "events_url")


def store_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Add the store flags to a command; it receives them as one ``where`` mapping of
    settings overrides (``None``: unset, the environment or the default decides)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        where = {name: kwargs.pop(name) for name in STORE_FLAGS}
        return func(*args, where=where, **kwargs)

    options = [
        click.option(
            "--db",
            "db_path",
            type=click.Path(dir_okay=False, path_type=Path),
            default=None,
            help="DuckDB file (default: $TALLY_DB_PATH or ./tally.duckdb).",
        ),
        click.option("--store", default=None, help="The DuckDB file as a URL: duckdb:///PATH."),
        click.option(
            "--directory",
            "directory_url",
            default=None,
            help="Scale-out: the directory and tokens in PostgreSQL (postgresql://...).",
        ),
        click.option(
            "--events",
            "events_url",
            default=None,
            help="Scale-out: the events in ClickHouse (clickhouse://HOST:9000/DB[?cluster=NAME]).",
        ),
    ]
    for option in reversed(options):
        wrapper = option(wrapper)
    return wrapper


@click.group()
@click.version_option(package_name="tally-stats")
def cli() -> None:
    """Tally: self-hosted usage statistics behind the vendor statistics APIs."""


def _settings(where: dict[str, Any], **overrides: Any) -> Settings:
    try:
        return Settings.from_env(**where, **overrides)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc


def _open(where: dict[str, Any], **overrides: Any) -> Tally:
    return _open_settings(_settings(where, **overrides))


def _open_settings(settings: Settings) -> Tally:
    try:
        return Tally(settings)
    except TallyError as exc:
        raise click.ClickException(exc.detail) from exc


@cli.command()
@store_options
@click.option("--host", default=None, help="Interface to listen on (default 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (default 8000).")
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="Worker processes (default 1; more need --directory and --events).",
)
def serve(where: dict[str, Any], host: str | None, port: int | None, workers: int | None) -> None:
    """Serve the APIs over HTTP."""
    settings = _settings(where, host=host, port=port, workers=workers)
    if settings.workers == 1:
        run_server(_open_settings(settings))
        return
    if not settings.scale_out:
        raise click.ClickException(
            "--workers above 1 needs the shared stores (--directory and --events): a DuckDB"
            " file is used by one process at a time"
        )
    run_workers(settings)


def run_workers(settings: Settings) -> None:
    """Serve with ``settings.workers`` processes over the shared stores. The admin token is
    made here, once, before the workers start; each worker opens the stores itself."""
    import os

    import uvicorn

    with _open_settings(settings) as tally:
        secret = tally.access.bootstrap_admin(settings.admin_token)
    if secret:
        click.echo(f"Environment admin token (shown once, keep it): {secret}")
    os.environ.update(settings.environment())
    if settings.metrics:
        from tally.metrics import prepare_workers

        prepare_workers()  # /metrics sums the counters of every worker
    click.echo(
        f"Tally serving {_where(settings)} with {settings.workers} workers"
        f" at http://{settings.host}:{settings.port}"
    )
    uvicorn.run(
        "tally.api.app:worker_app",
        factory=True,
        workers=settings.workers,
        host=settings.host,
        port=settings.port,
        log_level="warning",
        access_log=False,
        **uvicorn_options(settings),
    )


def _where(settings: Settings) -> str:
    if settings.scale_out:
        return f"{_redacted(settings.directory_url)} + {_redacted(settings.events_url)}"
    return str(settings.duckdb_path())


def _redacted(url: str) -> str:
    """``url`` without a password, for printing."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))


def run_server(tally: Tally) -> None:
    import uvicorn

    from tally.api.app import create_app

    secret = tally.access.bootstrap_admin(tally.settings.admin_token)
    if secret:
        click.echo(f"Environment admin token (shown once, keep it): {secret}")
    settle_heap(tally)
    settings = tally.settings
    click.echo(f"Tally serving {_where(settings)} at http://{settings.host}:{settings.port}")
    try:
        uvicorn.run(
            create_app(tally, close_on_shutdown=True),
            host=settings.host,
            port=settings.port,
            log_level="warning",
            access_log=False,
            **uvicorn_options(settings),
        )
    finally:
        tally.close()


@cli.group()
def token() -> None:
    """Manage API tokens."""


@token.command("create")
@store_options
@click.option("--org", "org_id", required=True, help="Organization id.")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    required=True,
    type=click.Choice(SCOPES),
    help="Scope to grant (repeat for several).",
)
@click.option(
    "--expires-at",
    default=None,
    help="RFC 3339 instant with an offset from which the token is refused (default: never).",
)
def token_create(
    where: dict[str, Any], org_id: str, scopes: tuple[str, ...], expires_at: str | None
) -> None:
    """Create a token for ORG and print it (it is shown only this once)."""
    expiry = _cli_instant(expires_at, "--expires-at")
    with _open(where) as tally:
        _require_org(tally, org_id)
        try:
            secret, _ = tally.access.create_token(org_id, list(scopes), expiry)
        except TallyError as exc:
            raise click.ClickException(exc.detail) from exc
        click.echo(secret)


@token.command("list")
@store_options
@click.option("--org", "org_id", required=True, help="Organization id.")
def token_list(where: dict[str, Any], org_id: str) -> None:
    """List ORG's tokens as JSON lines (ids, scopes and times; never secrets)."""
    with _open(where) as tally:
        _require_org(tally, org_id)
        for record in tally.access.tokens_of(org_id):
            fields = ("id", "scopes", "created_at", "expires_at", "revoked_at", "last_used_at")
            click.echo(msgspec.json.encode({f: getattr(record, f) for f in fields}).decode())


@token.command("revoke")
@store_options
@click.option("--org", "org_id", required=True, help="Organization id.")
@click.argument("token_id")
def token_revoke(where: dict[str, Any], org_id: str, token_id: str) -> None:
    """Revoke ORG's token TOKEN_ID (its id from `tally token list`): refused from the next
    request on, by every worker sharing the store."""
    with _open(where) as tally:
        _require_org(tally, org_id)
        try:
            tally.access.revoke_token(org_id, token_id)
        except TallyError as exc:
            raise click.ClickException(exc.detail) from exc
        click.echo(f"revoked {token_id}")


def _require_org(tally: Tally, org_id: str) -> None:
    if tally.directory.get(org_id) is None:
        raise click.ClickException(f'organization "{org_id}" does not exist')


def _cli_instant(raw: str | None, option: str) -> datetime | None:
    if raw is None:
        return None
    try:
        return parse_instant(raw)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint=option) from exc


@cli.command("import")
@store_options
@click.option("--org", "org_id", required=True, help="Organization id.")
@click.argument(
    "files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
def import_(where: dict[str, Any], org_id: str, files: tuple[Path, ...]) -> None:
    """Import events from NDJSON, JSON (an array) or Parquet FILES.

    Validation and idempotency are those of POST /api/v1/orgs/{org}/events: re-importing a file
    stores nothing twice.
    """
    with _open(where) as tally:
        if tally.directory.get(org_id) is None:
            raise click.ClickException(f'organization "{org_id}" does not exist')
        total = IngestResult(0, 0, [])
        for path in files:
            result = import_file(tally, org_id, path)
            for rejection in result.rejected[:50]:
                click.echo(f"{path}:{rejection.index}: {rejection.id}: {rejection.error}", err=True)
            if len(result.rejected) > 50:
                click.echo(f"{path}: ... {len(result.rejected) - 50} more rejected", err=True)
            total = total.merge(result)
        click.echo(
            f"accepted {total.accepted}, duplicates {total.duplicates}, "
            f"rejected {len(total.rejected)}"
        )
        _refresh(tally, org_id)
        if total.rejected:
            sys.exit(1)


def import_file(tally: Tally, org_id: str, path: Path) -> IngestResult:
    """Ingest one file in chunks, with a progress bar on stderr."""
    if path.suffix.lower() == ".parquet":
        return _import_parquet(tally, org_id, path)
    result = IngestResult(0, 0, [])
    chunks, length = _read_chunks(path)
    with click.progressbar(length=length, label=path.name, file=sys.stderr) as bar:
        for items, progress in chunks:
            result = result.merge(tally.ingestor.ingest_items(org_id, items))
            bar.update(progress)
    return result


def _read_chunks(path: Path) -> tuple[Iterator[tuple[list[DecodedItem], int]], int]:
    if path.suffix.lower() == ".json":
        return _json_chunks(path), 1
    return _ndjson_chunks(path), path.stat().st_size


def _import_parquet(tally: Tally, org_id: str, path: Path) -> IngestResult:
    """Parquet takes the columnar path: whole record batches validated and appended at once."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(path)
    result = IngestResult(0, 0, [])
    done = 0
    with click.progressbar(
        length=parquet.metadata.num_rows, label=path.name, file=sys.stderr
    ) as bar:
        for batch in parquet.iter_batches(batch_size=PARQUET_CHUNK):
            table = pa.Table.from_batches([batch])
            result = result.merge(tally.ingestor.ingest_arrow(org_id, table, first_index=done))
            done += batch.num_rows
            bar.update(batch.num_rows)
    return result


def _ndjson_chunks(path: Path) -> Iterator[tuple[list[DecodedItem], int]]:
    items: list[DecodedItem] = []
    size = 0
    with path.open("rb") as handle:
        for index, line in enumerate(handle):
            size += len(line)
            if line.strip():
                items.append(decode_item(index, line))
            if len(items) >= IMPORT_CHUNK:
                yield items, size
                items, size = [], 0
    yield items, size


def _json_chunks(path: Path) -> Iterator[tuple[list[DecodedItem], int]]:
    from tally.model.events import decode_json_array

    try:
        items = list(decode_json_array(path.read_bytes()))
    except ValueError as exc:
        raise click.ClickException(f"{path}: {exc}") from exc
    for start in range(0, len(items), IMPORT_CHUNK):
        yield items[start : start + IMPORT_CHUNK], 0
    yield [], 1


def _refresh(tally: Tally, org_id: str) -> None:
    """Bring the second-level rollups (per department, activity counts) up to date before the
    command returns, so that a server started next answers from them at once."""
    days = tally.refresh_rollups(org_id)
    if days:
        click.echo(f"refreshed the second-level rollups of {days} stale day(s)", err=True)


@cli.group()
def rollup() -> None:
    """Maintain the daily rollups the statistics APIs read."""


@rollup.command("rebuild")
@store_options
@click.option("--org", "org_ids", multiple=True, help="Organization id (default: every one).")
def rollup_rebuild(where: dict[str, Any], org_ids: tuple[str, ...]) -> None:
    """Recompute the rollups from the raw events (the source of truth)."""
    with _open(where) as tally:
        known = [o.id for o in tally.directory.orgs()]
        for org_id in org_ids or known:
            if org_id not in known:
                raise click.ClickException(f'organization "{org_id}" does not exist')
            tally.event_store.rebuild_rollups(org_id)
            _refresh(tally, org_id)
            click.echo(f"rebuilt the rollups of {org_id}")


@cli.command()
@click.option(
    "--db",
    "db_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("tally-demo.duckdb"),
    show_default=True,
    help="Demo DuckDB file.",
)
@click.option("--fresh", is_flag=True, help="Rebuild the demo file even if it exists.")
@click.option("--no-serve", is_flag=True, help="Build the demo data, then exit.")
@click.option("--seed", type=int, default=7, show_default=True)
@click.option("--members", type=int, default=500, show_default=True)
@click.option("--days", type=int, default=180, show_default=True)
@click.option("--host", default=None)
@click.option("--port", type=int, default=None)
def demo(
    db_path: Path,
    fresh: bool,
    no_serve: bool,
    seed: int,
    members: int,
    days: int,
    host: str | None,
    port: int | None,
) -> None:
    """Build a realistic demo environment into its own file, then serve it."""
    from tally.demo import build_demo, demo_instructions

    if fresh and db_path.exists():
        db_path.unlink()
        Path(f"{db_path}.wal").unlink(missing_ok=True)
    tally = _open({"db_path": db_path}, host=host, port=port)
    if not tally.directory.orgs():
        click.echo(f"Building demo data into {db_path} ...")
        summary = build_demo(tally, seed=seed, members=members, days=days)
        tally.refresh_rollups()
        click.echo(summary)
    click.echo(demo_instructions(tally))
    if no_serve:
        tally.close()
        return
    run_server(tally)


@cli.command()
@click.option(
    "--from",
    "source",
    required=True,
    help="The environment to copy: duckdb:///PATH (or a DuckDB file's path).",
)
@click.option("--directory", "directory_url", required=True, help="PostgreSQL URL to copy into.")
@click.option("--events", "events_url", required=True, help="ClickHouse URL to copy into.")
def migrate(source: str, directory_url: str, events_url: str) -> None:
    """Copy an environment (directory with its history, tokens, events) into the scale-out
    stores. Safe to run again: what is already there is replaced or skipped, never doubled."""
    from tally.migrate import copy_environment

    store = source if source.startswith("duckdb://") else None
    origin = _settings({"store": store, "db_path": None if store else Path(source)})
    target = _settings({"directory_url": directory_url, "events_url": events_url})
    if not origin.duckdb_path().exists():
        raise click.ClickException(f"{origin.duckdb_path()} does not exist")
    with _open_settings(origin) as old, _open_settings(target) as new:
        total = sum(old.event_store.count_events(o.id) for o in old.directory.orgs())
        with click.progressbar(length=total, label="events", file=sys.stderr) as bar:
            report = copy_environment(old, new, progress=bar.update, chunk=MIGRATE_CHUNK)
        new.refresh_rollups()
    click.echo(
        f"copied {report.orgs} organization(s), {report.tokens} token(s) and"
        f" {report.events:,} event(s) ({report.new_events:,} new)"
    )


@cli.command()
@store_options
@click.option(
    "--server",
    default=None,
    help="A running `tally serve` (http://HOST:PORT) to take the backup from, while it serves.",
)
@click.option(
    "--token",
    envvar="TALLY_ADMIN_TOKEN",
    default=None,
    help="With --server: the environment admin's token (default: $TALLY_ADMIN_TOKEN).",
)
@click.argument("output", type=click.Path(dir_okay=False, path_type=Path))
def backup(where: dict[str, Any], server: str | None, token: str | None, output: Path) -> None:
    """Write a consistent copy of the whole environment to the new DuckDB file OUTPUT.

    With --server, the running server writes it while it goes on serving (a DuckDB file is
    held by the process serving it); without, the store is opened here. Restore: stop the
    server, put OUTPUT in place of the store's file (or serve OUTPUT), start it.
    """
    if output.exists():
        raise click.ClickException(f"{output} exists already: a backup never overwrites a file")
    if server is None:
        with _open(where) as tally:
            try:
                tally.backup(output)
            except TallyError as exc:
                raise click.ClickException(exc.detail) from exc
    else:
        _download_backup(server, token, output)
    click.echo(f"backup written to {output} ({output.stat().st_size} bytes)")


def _download_backup(server: str, token: str | None, output: Path) -> None:
    import httpx

    if not token:
        raise click.ClickException("--server needs the environment admin's token (--token)")
    partial = output.with_name(output.name + ".partial")
    headers = {"Authorization": f"Bearer {token}"}
    try:
        with httpx.stream(
            "POST", server.rstrip("/") + "/api/v1/backup", headers=headers, timeout=None
        ) as response:
            if response.status_code != 200:
                response.read()
                raise click.ClickException(f"{response.status_code}: {_problem(response.text)}")
            with partial.open("wb") as file:
                for chunk in response.iter_bytes():
                    file.write(chunk)
        partial.rename(output)
    except httpx.TransportError as exc:
        raise click.ClickException(f"cannot reach {server}: {exc}") from exc
    finally:
        partial.unlink(missing_ok=True)


def _problem(text: str) -> str:
    """The ``detail`` of a problem-details body, else the body."""
    try:
        detail = msgspec.json.decode(text).get("detail")
    except (msgspec.DecodeError, AttributeError):
        return text
    return str(detail) if detail else text


@cli.command("export")
@store_options
@click.option("--org", "org_id", required=True, help="Organization id.")
@click.argument("dataset")
@click.option("--start", "start", required=True, help="First org day, YYYY-MM-DD.")
@click.option("--end", "end", required=True, help="Last org day (inclusive), YYYY-MM-DD.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["csv", "parquet"]),
    default=None,
    help="File format (default: from --output's suffix, else csv).",
)
@click.option(
    "--output",
    "output",
    default=None,
    help="File to write (default: the API's file name, in the current directory; - for stdout).",
)
def export_(
    where: dict[str, Any],
    org_id: str,
    dataset: str,
    start: str,
    end: str,
    fmt: str | None,
    output: str | None,
) -> None:
    """Export DATASET of ORG (events, department_days, member_days, activity_days, app_days)
    over the org days START..END: the same file as GET /api/v1/orgs/{org}/export/{dataset}."""
    from tally.export import export
    from tally.timeutil import parse_date

    try:
        first, last = parse_date(start), parse_date(end)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc
    if fmt is None:
        fmt = "parquet" if output and output.lower().endswith(".parquet") else "csv"
    with _open(where) as tally:
        try:
            found = export(tally, org_id, dataset, first, last, fmt)
        except TallyError as exc:
            raise click.ClickException(exc.detail) from exc
        if output == "-":
            for chunk in found.chunks:
                sys.stdout.buffer.write(chunk)
            sys.stdout.buffer.flush()
            return
        path = Path(output or found.filename)
        partial = path.with_name(path.name + ".partial")  # no half-written file at ``path``
        size = 0
        try:
            with partial.open("wb") as handle:
                for chunk in found.chunks:
                    handle.write(chunk)
                    size += len(chunk)
            partial.replace(path)
        finally:
            partial.unlink(missing_ok=True)
        click.echo(f"wrote {path} ({size:,} bytes)", err=True)
