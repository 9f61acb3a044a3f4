"""A real STAC API on loopback: an archive's items in pgstac (PostgreSQL + PostGIS), served
by stac-fastapi-pgstac under uvicorn, with asset hrefs pointing at the loopback COG range
server, so the STAC API code path (search, paging, HTTP reads) runs for real.

``serve_archive`` creates a dedicated database (``clm_stac_<port>``), migrates it with
pypgstac, loads the collections and items, starts the API, and on exit stops the API and
the COG server and drops the database. PostgreSQL must be running (libpq variables
``PGHOST``/``PGPORT``/``PGUSER``/``PGPASSWORD``; default 127.0.0.1:5432, user postgres) with
the PostGIS extension available: ``make stac-server-setup`` installs it.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from pipeline.archive.serve import serve_directory
from pipeline.errors import SourceError

SETUP_HINT = "run `make stac-server-setup` (installs the Debian package postgresql-15-postgis-3)"


@dataclass(frozen=True)
class Postgres:
    """Where PostgreSQL runs; the password (if any) only ever comes from ``PGPASSWORD``."""

    host: str = field(default_factory=lambda: os.environ.get("PGHOST", "127.0.0.1"))
    port: int = field(default_factory=lambda: int(os.environ.get("PGPORT", "5432")))
    user: str = field(default_factory=lambda: os.environ.get("PGUSER", "postgres"))

    def dsn(self, database: str) -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{database}"

    def env(self, database: str) -> dict[str, str]:
        return {
            "PGHOST": self.host,
            "PGPORT": str(self.port),
            "PGUSER": self.user,
            "PGPASSWORD": os.environ.get("PGPASSWORD", ""),
            "PGDATABASE": database,
        }


@dataclass(frozen=True)
class StacServer:
    url: str  # STAC API root
    cog_url: str  # base URL of the archive's files
    database: str


@contextlib.contextmanager
def serve_archive(
    archive: Path,
    host: str = "127.0.0.1",
    port: int = 0,
    items: Path | None = None,
    pg: Postgres | None = None,
) -> Iterator[StacServer]:
    """Serve ``archive`` (its ``items.parquet``, or ``items``) through stac-fastapi-pgstac."""
    pg = pg or Postgres()
    archive = Path(archive).resolve()
    # The listening socket is bound here and handed to uvicorn (``--fd``): a port picked by
    # number and bound later by the child can be taken by anything in between.
    with _listening_socket(host, port) as sock:
        port = int(sock.getsockname()[1])
        database = f"clm_stac_{port}"
        with serve_directory(archive) as cogs, _database(pg, database):
            load_archive(pg.dsn(database), archive, cogs.url, items)
            with _api_process(pg, database, sock) as url:
                yield StacServer(url, cogs.url, database)


@contextlib.contextmanager
def _listening_socket(host: str, port: int) -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise SourceError(
            f"cannot listen on {host}:{port} for the STAC API: {exc}; choose another --port "
            "(0 picks a free one)"
        ) from exc
    with sock:
        sock.listen(128)
        yield sock


@contextlib.contextmanager
def _database(pg: Postgres, database: str) -> Iterator[None]:
    check_postgis(pg)
    _admin(pg, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    _admin(pg, f'CREATE DATABASE "{database}"')
    try:
        migrate(pg.dsn(database))
        yield
    finally:
        _admin(pg, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def _admin(pg: Postgres, sql: str) -> list[tuple[Any, ...]]:
    import psycopg

    try:
        with psycopg.connect(pg.dsn("postgres"), autocommit=True) as conn:
            cur = conn.execute(sql)
            return list(cur.fetchall()) if cur.description else []
    except psycopg.OperationalError as exc:
        raise SourceError(
            f"cannot reach PostgreSQL at {pg.host}:{pg.port} as {pg.user}: {exc}; start it or "
            "set PGHOST/PGPORT/PGUSER (PGPASSWORD)"
        ) from exc


def check_postgis(pg: Postgres) -> None:
    rows = _admin(pg, "SELECT 1 FROM pg_available_extensions WHERE name = 'postgis'")
    if not rows:
        raise SourceError(
            f"PostgreSQL at {pg.host}:{pg.port} has no PostGIS extension; {SETUP_HINT}"
        )


def migrate(dsn: str) -> str:
    """Install the pgstac schema (``pypgstac migrate``)."""
    from pypgstac.db import PgstacDB
    from pypgstac.migrate import Migrate

    with PgstacDB(dsn=dsn) as db:
        return str(Migrate(db).run_migration())


def load_archive(dsn: str, archive: Path, asset_base_url: str, items: Path | None = None) -> int:
    """Load the archive's collections and items (hrefs made absolute under ``asset_base_url``)."""
    from pypgstac.db import PgstacDB
    from pypgstac.load import Loader, Methods

    records = [
        absolute_hrefs(i, asset_base_url) for i in read_items(items or archive / "items.parquet")
    ]
    collections = archive_collections(archive, records)
    with PgstacDB(dsn=dsn) as db:
        loader = Loader(db)
        loader.load_collections(iter(collections), insert_mode=Methods.upsert)
        loader.load_items(iter(records), insert_mode=Methods.upsert)
    return len(records)


def read_items(path: Path) -> list[dict[str, Any]]:
    """STAC items from a stac-geoparquet file, an ndjson file or a FeatureCollection."""
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq
        import stac_geoparquet.arrow

        return list(stac_geoparquet.arrow.stac_table_to_items(pq.read_table(path)))
    text = path.read_text()
    if path.suffix == ".ndjson":
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    doc = json.loads(text)
    return list(doc["features"]) if doc.get("type") == "FeatureCollection" else [doc]


def absolute_hrefs(item: dict[str, Any], base_url: str) -> dict[str, Any]:
    out = dict(item)
    out["assets"] = {
        key: {**asset, "href": _join(base_url, asset["href"])}
        for key, asset in (item.get("assets") or {}).items()
    }
    out["links"] = []
    return out


def _join(base_url: str, href: str) -> str:
    return href if "://" in href else f"{base_url.rstrip('/')}/{href.lstrip('/')}"


def archive_collections(archive: Path, items: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The archive's collection documents (links dropped), or minimal ones for bare items."""
    out = []
    for cid in sorted({str(i["collection"]) for i in items}):
        path = archive / "stac" / cid / "collection.json"
        doc = json.loads(path.read_text()) if path.is_file() else _minimal_collection(cid)
        doc["links"] = []
        out.append(doc)
    return out


def _minimal_collection(cid: str) -> dict[str, Any]:
    return {
        "type": "Collection",
        "stac_version": "1.0.0",
        "id": cid,
        "description": f"{cid} (loaded by clm archive serve)",
        "license": "proprietary",
        "extent": {
            "spatial": {"bbox": [[-180, -90, 180, 90]]},
            "temporal": {"interval": [[None, None]]},
        },
        "links": [],
    }


@contextlib.contextmanager
def _api_process(pg: Postgres, database: str, sock: socket.socket) -> Iterator[str]:
    env = {**os.environ, **pg.env(database), "ENABLE_TRANSACTIONS_EXTENSIONS": "false"}
    fd = sock.fileno()
    cmd = [sys.executable, "-m", "uvicorn", "stac_fastapi.pgstac.app:app",
           "--fd", str(fd), "--log-level", "warning"]  # fmt: skip
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, pass_fds=(fd,)
    )
    host, port = sock.getsockname()[:2]
    url = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
    try:
        _wait_ready(proc, url)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wait_ready(proc: subprocess.Popen[bytes], url: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read().decode(errors="replace")[-2000:] if proc.stderr else ""
            raise SourceError(f"stac-fastapi-pgstac exited with {proc.returncode}: {err}")
        with contextlib.suppress(requests.RequestException):
            if requests.get(f"{url}/_mgmt/ping", timeout=2).ok:
                return
        time.sleep(0.3)
    raise SourceError(f"stac-fastapi-pgstac did not answer at {url} within {timeout_s:.0f} s")
