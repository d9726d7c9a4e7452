"""Fixtures for the backup engine: the host MariaDB, throwaway schemas, restic repositories.

Real tools throughout: restic 0.14, mariadb-dump/mariadb/mariabackup against the
MariaDB on 127.0.0.1:3306 (root, no password; tests needing it are skipped with
the reason when it does not answer), and moto's S3 server for the S3 backend.
Schemas are named ``wp_9<digits>`` (valid site identifiers) and dropped afterwards.
"""

# ruff: noqa: S608  (schema names are generated here, not taken from input)
from __future__ import annotations

import random
import secrets
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from backups import restic
from nodes.mariadb import Endpoint, connect
from tests.fakes.s3 import ACCESS_KEY, REGION, SECRET_KEY, moto_server

MARIADB = Endpoint("127.0.0.1", 3306, "root", "")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "mariadb: needs the host MariaDB on 127.0.0.1:3306 (skipped when it is down)"
    )


def sql(endpoint: Endpoint, *statements: str, params: tuple[Any, ...] = ()) -> list[tuple]:
    """Run statements on one connection; returns the last one's rows."""
    rows: list[tuple] = []
    with connect(endpoint, what="test MariaDB") as conn, conn.cursor() as cur:
        for statement in statements:
            cur.execute(statement, params or None)
            rows = list(cur.fetchall())
    return rows


def checksum_tables(endpoint: Endpoint, database: str) -> dict[str, int]:
    tables = sql(
        endpoint,
        "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA=%s "
        "AND TABLE_TYPE='BASE TABLE'",
        params=(database,),
    )
    return {
        name: int(sql(endpoint, f"CHECKSUM TABLE `{database}`.`{name}`")[0][1])
        for (name,) in tables
    }


def schema_name() -> str:
    return f"wp_9{random.randrange(10**9):09d}"


@pytest.fixture(scope="session")
def mariadb() -> Endpoint:
    try:
        socket.create_connection((MARIADB.host, MARIADB.port), timeout=2).close()
    except OSError as exc:
        pytest.skip(f"no MariaDB answers on {MARIADB.host}:{MARIADB.port}: {exc}")
    return MARIADB


@pytest.fixture
def schemas(mariadb: Endpoint) -> Iterator[Callable[[], str]]:
    """Makes empty schemas (and names for restores); drops them all afterwards."""
    made: list[str] = []

    def make(*, create: bool = True) -> str:
        name = schema_name()
        made.append(name)
        if create:
            sql(mariadb, f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
        return name

    yield make
    for name in made:
        sql(mariadb, f"DROP DATABASE IF EXISTS `{name}`")


def fill_sample(endpoint: Endpoint, database: str) -> None:
    """A small WordPress-like schema: UTF-8 text, BLOBs, NULLs, a table without a key,
    a view, a trigger and a procedure."""
    db = f"`{database}`"
    # As a site creates them: connected to its schema, names unqualified (a body
    # naming the schema would tie the dump to that name).
    sql(
        endpoint,
        f"USE {db}",
        "CREATE TABLE wp_posts (ID BIGINT UNSIGNED PRIMARY KEY AUTO_INCREMENT, "
        "post_title TEXT NOT NULL, post_content LONGTEXT, post_date DATETIME NULL, "
        "comment_count BIGINT NOT NULL DEFAULT 0, price DECIMAL(10,2) NULL) "
        "ENGINE=InnoDB CHARSET utf8mb4 COLLATE utf8mb4_unicode_ci",
        "CREATE TABLE wp_media (id INT PRIMARY KEY, data LONGBLOB NULL, "
        "mime VARCHAR(64) CHARSET latin1 NULL) ENGINE=InnoDB",
        "CREATE TABLE wp_log (message VARCHAR(255) NULL, at TIMESTAMP NULL) ENGINE=InnoDB",
        "CREATE TABLE wp_counts (n INT NOT NULL DEFAULT 0) ENGINE=InnoDB",
        "INSERT INTO wp_counts VALUES (0)",
        "CREATE TRIGGER count_posts AFTER INSERT ON wp_posts "
        "FOR EACH ROW UPDATE wp_counts SET n = n + 1",
        "CREATE VIEW titles AS SELECT ID, post_title FROM wp_posts",
        "CREATE PROCEDURE post_count() SELECT COUNT(*) FROM wp_posts",
    )
    posts = [
        ("Hello world", "Grüße aus Köln — ☃ 🎉 日本語", "2024-02-29 12:34:56", 3, "9.99"),
        ("Empty", "", None, 0, None),
        ("Nulls", None, None, 0, "0.00"),
        ('Quote\'s "and" back\\slash', "line\nbreak\ttab\x00nul", "1999-12-31 23:59:59", 1, "1"),
    ]
    with connect(endpoint, what="test MariaDB") as conn, conn.cursor() as cur:
        cur.executemany(
            f"INSERT INTO {db}.wp_posts (post_title, post_content, post_date, comment_count, "
            "price) VALUES (%s, %s, %s, %s, %s)",
            posts,
        )
        cur.executemany(
            f"INSERT INTO {db}.wp_media VALUES (%s, %s, %s)",
            [
                (1, bytes(range(256)) * 40, "image/png"),
                (2, b"", "text/plain"),
                (3, None, None),
                (4, secrets.token_bytes(5000), "application/octet-stream"),
            ],
        )
        cur.executemany(
            f"INSERT INTO {db}.wp_log VALUES (%s, %s)",
            [("same", "2024-01-01 00:00:00"), ("same", "2024-01-01 00:00:00"), (None, None)],
        )


def fill_big(endpoint: Endpoint, database: str, *, megabytes: int = 8) -> None:
    """Incompressible rows (random bytes), ``megabytes`` MB of them."""
    sql(
        endpoint,
        f"CREATE TABLE `{database}`.wp_big (id INT PRIMARY KEY, payload VARBINARY(1024)) "
        "ENGINE=InnoDB",
        f"INSERT INTO `{database}`.wp_big SELECT seq, RANDOM_BYTES(1024) "
        f"FROM `{database}`.seq_1_to_{megabytes * 1024}",
    )


@pytest.fixture
def sample_schema(mariadb: Endpoint, schemas: Callable[..., str]) -> str:
    name = schemas()
    fill_sample(mariadb, name)
    return name


@pytest.fixture(scope="session")
def big_schema(mariadb: Endpoint) -> Iterator[str]:
    """About 8 MB of random data (16 MB as a dump): for cutting dumps and filling disks."""
    name = schema_name()
    sql(mariadb, f"CREATE DATABASE `{name}`")
    try:
        fill_big(mariadb, name)
        yield name
    finally:
        sql(mariadb, f"DROP DATABASE IF EXISTS `{name}`")


def new_local_repository(path: Path) -> restic.Repository:
    return restic.Repository(
        str(path / "repo"), secrets.token_urlsafe(16), {}, path / "restic-cache"
    )


@pytest.fixture
def local_repo(tmp_path: Path) -> restic.Repository:
    repo = new_local_repository(tmp_path)
    restic.ensure_repository(repo)
    return repo


@pytest.fixture(scope="session")
def moto() -> Iterator[str]:
    with moto_server() as endpoint:
        yield endpoint


def s3_repository(endpoint: str, bucket: str, tmp_path: Path) -> restic.Repository:
    return restic.Repository(
        f"s3:{endpoint}/{bucket}/restic",
        secrets.token_urlsafe(16),
        {
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_DEFAULT_REGION": REGION,
        },
        tmp_path / "restic-cache",
    )


@pytest.fixture
def s3_repo(moto: str, tmp_path: Path) -> restic.Repository:
    repo = s3_repository(moto, f"farm-{secrets.token_hex(6)}", tmp_path)
    restic.ensure_repository(repo)
    return repo


@pytest.fixture(params=["local", "s3"])
def repo(request: pytest.FixtureRequest) -> restic.Repository:
    """Each test using it runs against a local repository and against S3 (moto)."""
    return request.getfixturevalue(f"{request.param}_repo")
