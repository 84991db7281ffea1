"""The run store on SQL: one SQLAlchemy 2 async implementation for SQLite and PostgreSQL.

`sqlite:///PATH` (aiosqlite, WAL) is the embedded default; `postgresql://…` (asyncpg,
a connection pool) is for production. Every statement is built with SQLAlchemy's
expression language, never from strings. The schema is Alembic's (`migrations/`, run by
`migrate` at start); the tables below mirror it for the queries, and a test holds the two
equal.

- `flowruns`: one row per run uid, the searchable fields as indexed columns and the whole
  record as JSON text. The upsert is one `INSERT … ON CONFLICT (uid) DO UPDATE … WHERE`
  the stored record is not later (`history_len`, then `resource_version`), so replays and
  races never move a run back.
- `task_logs`: one row per (uid, task, attempt), capped by the store.
- Lists are keyset pages over (sort_time, uid), newest first: a deep page costs what the
  first one does. A row whose JSON does not read is skipped with a logged reason.
- `workflow_colors`: one row per Workflow color transition, keyed by (uid, time,
  to_color) and inserted with `ON CONFLICT DO NOTHING`, so a replay stores nothing twice;
  read by (namespace, name, time).
- `audit_log`: one row per audited API action, keyed by the id the API made for it
  (`ON CONFLICT DO NOTHING`), listed newest first by (time, id) in keyset pages, filtered
  by user, namespace and action.
- Prune deletes in batches of `batchSize` rows, each its own short transaction: first
  the runs past `keepPerFlowStatus` (a window over namespace, flow and status), then those
  older than `maxAge`, then the color transitions older than `maxAge` but each Workflow's
  newest (by namespace and name), then the audit records older than `maxAge`; a dry run
  counts the same four sets.

Connection failures surface as `StoreUnavailable`; nothing above this module sees a
driver's exception.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable, Collection, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from pydantic import ValidationError
from sqlalchemy import (
    URL,
    BigInteger,
    Boolean,
    Column,
    ColumnElement,
    DateTime,
    Dialect,
    Index,
    Integer,
    MetaData,
    Select,
    String,
    Table,
    Text,
    TypeDecorator,
    and_,
    bindparam,
    delete,
    event,
    exists,
    false,
    func,
    literal,
    literal_column,
    make_url,
    not_,
    or_,
    select,
    true,
    tuple_,
    union_all,
)
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from flow_operator.history.store import (
    DEFAULT_LOG_CAP,
    EXAMPLES,
    MAX_COLOR_TRANSITIONS,
    AuditPage,
    AuditQuery,
    AuditRecord,
    ColorHistory,
    ColorTransition,
    Cursor,
    HistoryError,
    LogRecord,
    Page,
    PrunePolicy,
    PruneReport,
    RunQuery,
    RunRecord,
    StoreUnavailable,
    cap_log,
    counts_total,
    page_limit,
)

log = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).with_name("migrations")
# Any constant: two replicas starting together migrate one after the other (PostgreSQL).
MIGRATION_LOCK = 0x666C6F77
Clock = Callable[[], datetime]
# The columns with a trigram index on PostgreSQL; SQLite has none (its searches scan).
TRIGRAM = ("name", "flow_name", "configuration")
# uids per statement of `statuses` (SQLite allows 32,766 bound parameters)
STATUS_BATCH = 500


def _now() -> datetime:
    return datetime.now(UTC)


class UTCTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC out, on both backends (SQLite keeps naive text)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"a naive datetime cannot be stored: {value}")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


metadata = MetaData()
runs = Table(
    "flowruns",
    metadata,
    Column("uid", String, primary_key=True),
    Column("namespace", String, nullable=False),
    Column("name", String, nullable=False),
    Column("flow_name", String, nullable=False),
    Column("version", String),
    Column("level", String),
    Column("run_type", String),
    Column("configuration", String),
    Column("flow_type", String),
    Column("status", String, nullable=False),
    Column("sort_time", UTCTime, nullable=False),
    Column("start_time", UTCTime),
    Column("end_time", UTCTime),
    Column("history_len", Integer, nullable=False),
    Column("resource_version", BigInteger, nullable=False),
    Column("record", Text, nullable=False),
    Column("updated_at", UTCTime, nullable=False),
    Index("ix_flowruns_sort", "sort_time", "uid"),
    Index("ix_flowruns_status", "status", "sort_time", "uid"),
    Index("ix_flowruns_flow", "flow_name", "status", "sort_time", "uid"),
    Index("ix_flowruns_namespace", "namespace", "name"),
    # a configuration's runs newest first (migration 0007): the configuration search's arms
    Index("ix_flowruns_configuration_sort", "configuration", "sort_time", "uid"),
    Index("ix_flowruns_run_type", "run_type"),
    Index("ix_flowruns_level", "level"),
    Index("ix_flowruns_end", "end_time"),
    # PostgreSQL only (migration 0002): trigram indexes for the ILIKE '%…%' searches.
    *(
        Index(
            f"ix_flowruns_{column}_trgm",
            column,
            postgresql_using="gin",
            postgresql_ops={column: "gin_trgm_ops"},
            info={"postgresql_only": True},
        )
        for column in TRIGRAM
    ),
)
# Runs per (namespace, flow, configuration or '', status), kept by triggers on flowruns
# (migration 0002).
run_counts = Table(
    "flowrun_counts",
    metadata,
    Column("namespace", String, primary_key=True),
    Column("flow_name", String, primary_key=True),
    Column("configuration", String, primary_key=True),
    Column("status", String, primary_key=True),
    Column("n", BigInteger, nullable=False),
)
logs = Table(
    "task_logs",
    metadata,
    Column("uid", String, primary_key=True),
    Column("task", String, primary_key=True),
    Column("attempt", Integer, primary_key=True),
    Column("text", Text, nullable=False),
    Column("truncated", Boolean, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("lost_reason", Text),
    Column("captured_at", UTCTime, nullable=False),
    # PostgreSQL only (migration 0006): the trigram index of logContains' ILIKE '%…%'.
    Index(
        "ix_task_logs_text_trgm",
        "text",
        postgresql_using="gin",
        postgresql_ops={"text": "gin_trgm_ops"},
        info={"postgresql_only": True},
    ),
)

# Workflow color transitions (migration 0003), keyed by (uid, time, to_color).
colors = Table(
    "workflow_colors",
    metadata,
    Column("uid", String, primary_key=True),
    Column("time", UTCTime, primary_key=True),
    Column("to_color", String, primary_key=True),
    Column("namespace", String, nullable=False),
    Column("name", String, nullable=False),
    Column("from_color", String),
    Column("reason", Text, nullable=False),
    Index("ix_workflow_colors_name", "namespace", "name", "time"),
    Index("ix_workflow_colors_time", "time"),  # prune's age delete (migration 0005)
)

# The API's audited actions (migration 0004), newest first by (time, id).
audit = Table(
    "audit_log",
    metadata,
    Column("id", String, primary_key=True),
    Column("time", UTCTime, nullable=False),
    Column("user", String, nullable=False),
    Column("groups", Text, nullable=False),  # a JSON list
    Column("action", String, nullable=False),
    Column("namespace", String, nullable=False),
    Column("kind", String, nullable=False),
    Column("name", String, nullable=False),
    Column("result", String, nullable=False),
    Column("status", Integer, nullable=False),
    Column("created", String),
    Column("detail", Text, nullable=False),
    Index("ix_audit_log_time", "time", "id"),
    Index("ix_audit_log_user", "user", "time", "id"),
    Index("ix_audit_log_namespace", "namespace", "time", "id"),
    Index("ix_audit_log_action", "action", "time", "id"),
)


# SQLite's trigram index of the task logs (migration 0006): an FTS5 table over task_logs'
# rowids. Not in `metadata`: Alembic cannot reflect a virtual table, and PostgreSQL has none.
log_search = Table("task_logs_fts", MetaData(), Column("rowid", Integer), Column("text", Text))
LOG_ROWID: ColumnElement[int] = literal_column("task_logs.rowid", Integer)
TRIGRAM_LENGTH = 3  # the shortest substring a trigram index can find
# A configuration search lists each matching configuration's newest runs and merges them
# (`_by_configuration`); past this many configurations it filters the whole list instead.
MAX_CONFIGURATION_ARMS = 300


def async_url(dsn: str) -> URL:
    """The DSN with its async driver: sqlite:///PATH or postgresql://USER@HOST/DB."""
    try:
        url = make_url(dsn)
    except sa_exc.ArgumentError as exc:
        raise HistoryError(f"not a database URL: {dsn!r}") from exc
    backend = url.get_backend_name()
    if backend == "sqlite":
        if not url.database or url.database == ":memory:":
            raise HistoryError("SQLite history needs a file: sqlite:///PATH")
        return url.set(drivername="sqlite+aiosqlite")
    if backend in ("postgresql", "postgres"):
        return url.set(drivername="postgresql+asyncpg")
    raise HistoryError(f"unsupported history database {backend!r}: use sqlite or postgresql")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets the API read while the recorder writes; NORMAL is durable across a crash of
    # the operator (not of the machine), which the live objects cover.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def create_engine(dsn: str, *, pool_size: int = 5, timeout: float = 10.0) -> AsyncEngine:
    """An engine for the DSN: SQLite with WAL, or PostgreSQL with a pool of `pool_size`."""
    url = async_url(dsn)
    if url.get_backend_name() == "sqlite":
        # No overflow: SQLite writes one at a time anyway, and a connection closed at
        # check-in (an overflow's fate) stops aiosqlite's thread without waiting for it.
        engine = create_async_engine(
            url,
            pool_size=pool_size,
            max_overflow=0,
            pool_timeout=max(timeout, 30.0),
            connect_args={"timeout": timeout},
        )
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_timeout=timeout,
        pool_pre_ping=True,
        connect_args={"timeout": timeout, "command_timeout": 60},
    )


def _unavailable(exc: BaseException) -> bool:
    if isinstance(exc, sa_exc.DBAPIError):
        return exc.connection_invalidated or isinstance(
            exc, sa_exc.OperationalError | sa_exc.InterfaceError
        )
    return isinstance(exc, sa_exc.DisconnectionError | sa_exc.TimeoutError | OSError)


@asynccontextmanager
async def _translated(what: str) -> AsyncIterator[None]:
    try:
        yield
    except Exception as exc:
        if _unavailable(exc):
            raise StoreUnavailable(f"history database: cannot {what}: {exc}") from exc
        raise


def _alembic(connection: Connection, step: Callable[[Config, str], None], revision: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    step(config, revision)


async def _migrate(dsn: str, step: Callable[[Config, str], None], revision: str) -> None:
    engine = create_engine(dsn, pool_size=1)
    try:
        async with _translated("migrate"), engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                await conn.execute(select(func.pg_advisory_xact_lock(MIGRATION_LOCK)))
            await conn.run_sync(_alembic, step, revision)
    finally:
        await engine.dispose()


async def migrate(dsn: str, revision: str = "head") -> None:
    """Bring the database's schema up to `revision` (the newest by default); idempotent."""
    await _migrate(dsn, command.upgrade, revision)


async def downgrade(dsn: str, revision: str) -> None:
    """Take the schema back down to `revision` ("base": nothing), losing what it drops."""
    await _migrate(dsn, command.downgrade, revision)


async def schema_revision(dsn: str) -> str | None:
    """The revision the database is at (None before the first migration)."""
    engine = create_engine(dsn, pool_size=1)
    try:
        async with _translated("read the schema revision"), engine.connect() as conn:
            return await conn.run_sync(
                lambda sync: MigrationContext.configure(sync).get_current_revision()
            )
    finally:
        await engine.dispose()


async def open_store(
    dsn: str, *, log_cap: int = DEFAULT_LOG_CAP, pool_size: int = 5, clock: Clock = _now
) -> SqlRunStore:
    """Migrate the database, then a store on it: what the operator does at start."""
    await migrate(dsn)
    return SqlRunStore(create_engine(dsn, pool_size=pool_size), log_cap=log_cap, clock=clock)


def _conditions(
    query: RunQuery, backend: str, *, status: bool = True, configuration: bool = True
) -> list[ColumnElement[bool]]:
    c = runs.c
    out: list[ColumnElement[bool]] = []
    has = _has

    if query.text:
        fields = (c.name, c.flow_name, c.configuration, c.run_type, c.status)
        out.append(or_(*(has(f, query.text) for f in fields)))
    if query.name:
        out.append(or_(has(c.name, query.name), has(c.flow_name, query.name)))
    if query.configuration and configuration:
        out.append(has(c.configuration, query.configuration))
    exact = (
        (c.run_type, query.run_type),
        (c.status, query.status if status else None),
        (c.flow_name, query.flow),
        (c.namespace, query.namespace),
        (c.level, query.level),
    )
    out += [col == value for col, value in exact if value is not None]
    if query.namespaces is not None:
        out.append(c.namespace.in_(query.namespaces))
    if query.since is not None:
        out.append(c.sort_time >= query.since)
    if query.until is not None:
        out.append(c.sort_time < query.until)
    if query.log_contains:
        out.append(c.uid.in_(_logs_containing(query.log_contains, backend)))
    return out


def _logs_containing(text: str, backend: str) -> Select[Any]:
    """The uids of runs with a task log holding `text` (any case). PostgreSQL's ILIKE uses
    the trigram index of task_logs.text (migration 0006); SQLite's LIKE with ESCAPE cannot
    use its FTS5 trigram table, so the table's phrase MATCH picks the candidate rows
    (3 characters or more: a trigram) and the LIKE checks each, the same answer."""
    chosen = select(logs.c.uid).where(_has(logs.c.text, text))
    if backend == "sqlite" and len(text) >= TRIGRAM_LENGTH:
        phrase = '"' + text.replace('"', '""') + '"'  # one FTS5 string: the whole substring
        candidates = select(log_search.c.rowid).where(log_search.c.text.match(phrase))
        chosen = chosen.where(LOG_ROWID.in_(candidates))
    return chosen.distinct()


def _has(col: Any, text: str) -> ColumnElement[bool]:
    """A case-insensitive substring, `%` and `_` literal (ILIKE on PostgreSQL)."""
    matched: ColumnElement[bool] = col.icontains(text, autoescape=True)
    return matched


def _tally(query: RunQuery, backend: str) -> Select[Any]:
    """Runs per status over the query without its status filter: from `flowrun_counts` when
    the query filters on namespace, flow and configuration alone (a few thousand rows at
    most), else counted over the runs."""
    searched = query.text or query.name or query.log_contains
    other = (query.run_type, query.level, query.since, query.until)
    if searched or any(v is not None for v in other):
        return (
            select(runs.c.status, func.count())
            .where(*_conditions(query, backend, status=False))
            .group_by(runs.c.status)
        )
    c = run_counts.c
    stmt = select(c.status, func.sum(c.n))
    if query.namespace is not None:
        stmt = stmt.where(c.namespace == query.namespace)
    if query.namespaces is not None:
        stmt = stmt.where(c.namespace.in_(query.namespaces))
    if query.flow is not None:
        stmt = stmt.where(c.flow_name == query.flow)
    if query.configuration:
        stmt = stmt.where(_has(c.configuration, query.configuration))
    return stmt.group_by(c.status)


def _read(uid: str, raw: object) -> RunRecord | None:
    """The stored record, or None (logged) when the row is corrupt or partial."""
    if not isinstance(raw, str):
        log.warning("history: skipping run %s: its record is missing", uid)
        return None
    try:
        record = RunRecord.model_validate_json(raw)
    except (ValidationError, ValueError) as exc:
        reason = str(exc).splitlines()[0]
        log.warning("history: skipping run %s: its record does not read: %s", uid, reason)
        return None
    if record.uid != uid:
        log.warning("history: skipping run %s: its record is of run %s", uid, record.uid)
        return None
    return record


def _log_of(row: Any) -> LogRecord:
    return LogRecord(
        uid=row.uid,
        task=row.task,
        attempt=row.attempt,
        text=row.text,
        truncated=row.truncated,
        size=row.size,
        lost_reason=row.lost_reason,
        captured_at=row.captured_at,
    )


class SqlRunStore:
    """The `RunStore` on one SQLAlchemy async engine (SQLite or PostgreSQL)."""

    def __init__(
        self, engine: AsyncEngine, *, log_cap: int = DEFAULT_LOG_CAP, clock: Clock = _now
    ) -> None:
        if log_cap < 1:
            raise ValueError(f"log cap must be at least 1 byte, got {log_cap}")
        self.engine, self.log_cap, self.clock = engine, log_cap, clock

    @property
    def backend(self) -> str:
        return self.engine.dialect.name

    @asynccontextmanager
    async def _connection(self, what: str, *, write: bool) -> AsyncIterator[AsyncConnection]:
        async with _translated(what):
            begin = self.engine.begin() if write else self.engine.connect()
            async with begin as conn:
                yield conn

    def _upsert(
        self,
        table: Table,
        values: Mapping[str, Any],
        newer: Callable[[Any], ColumnElement[bool]],
    ) -> Any:
        keys = [col.name for col in table.primary_key.columns]
        if self.backend == "sqlite":
            lite = sqlite.insert(table).values(dict(values))
            return lite.on_conflict_do_update(
                index_elements=keys,
                set_={k: lite.excluded[k] for k in values if k not in keys},
                where=newer(lite.excluded),
            )
        pg = postgresql.insert(table).values(dict(values))
        return pg.on_conflict_do_update(
            index_elements=keys,
            set_={k: pg.excluded[k] for k in values if k not in keys},
            where=newer(pg.excluded),
        )

    async def upsert_run(self, record: RunRecord) -> bool:
        values = {
            "uid": record.uid,
            "namespace": record.namespace,
            "name": record.name,
            "flow_name": record.flow_name,
            "version": record.version,
            "level": record.level,
            "run_type": record.run_type,
            "configuration": record.configuration,
            "flow_type": record.flow_type,
            "status": record.status,
            "sort_time": record.sort_time,
            "start_time": record.start_time,
            "end_time": record.end_time,
            "history_len": len(record.history),
            "resource_version": record.resource_version,
            "record": record.model_dump_json(by_alias=True),
            "updated_at": self.clock(),
        }

        def newer(new: Any) -> ColumnElement[bool]:
            return or_(
                new.history_len > runs.c.history_len,
                and_(
                    new.history_len == runs.c.history_len,
                    new.resource_version >= runs.c.resource_version,
                ),
            )

        stmt = self._upsert(runs, values, newer).returning(runs.c.uid)
        async with self._connection("record a run", write=True) as conn:
            return (await conn.execute(stmt)).first() is not None

    async def get_run(self, ref: str) -> RunRecord | None:
        stmt = select(runs.c.uid, runs.c.record)
        if "/" in ref:
            namespace, name = ref.split("/", 1)
            stmt = stmt.where(runs.c.namespace == namespace, runs.c.name == name)
        else:
            stmt = stmt.where(runs.c.uid == ref)
        stmt = stmt.order_by(runs.c.sort_time.desc(), runs.c.uid.desc()).limit(1)
        async with self._connection("read a run", write=False) as conn:
            row = (await conn.execute(stmt)).first()
        return None if row is None else _read(row.uid, row.record)

    async def list_runs(
        self,
        query: RunQuery,
        limit: int | None = None,
        cursor: str | None = None,
        *,
        counts: bool = True,
    ) -> Page:
        size = page_limit(limit)
        keyset: list[ColumnElement[bool]] = []
        if cursor is not None:
            after = Cursor.decode(cursor)
            key = tuple_(literal(after.sort_time, UTCTime()), literal(after.uid, String()))
            keyset.append(tuple_(runs.c.sort_time, runs.c.uid) < key)
        newest = (runs.c.sort_time.desc(), runs.c.uid.desc())
        by_status: dict[str, int] = {}
        async with self._connection("list runs", write=False) as conn:
            stmt = None
            if query.configuration and not (query.text or query.name):
                stmt = await self._by_configuration(conn, query, keyset, size + 1)
            if stmt is None:
                stmt = (
                    select(runs.c.uid, runs.c.sort_time, runs.c.record)
                    .where(*_conditions(query, self.backend), *keyset)
                    .order_by(*newest)
                    .limit(size + 1)
                )
            rows = (await conn.execute(stmt)).all()
            if counts:
                tally = _tally(query, self.backend)
                by_status = {s: int(n) for s, n in (await conn.execute(tally)).all() if n}
        shown = rows[:size]
        items = [r for r in (_read(row.uid, row.record) for row in shown) if r is not None]
        last = shown[-1] if len(rows) > size else None
        return Page(
            items=tuple(items),
            next_cursor=Cursor(last.sort_time, last.uid).encode() if last else None,
            counts=by_status,
            total=counts_total(by_status, query.status),
            skipped=len(shown) - len(items),
        )

    async def _by_configuration(
        self,
        conn: AsyncConnection,
        query: RunQuery,
        keyset: Sequence[ColumnElement[bool]],
        limit: int,
    ) -> Select[Any] | None:
        """A configuration substring's page as a merge: the configurations that match
        (from `flowrun_counts`, a few thousand rows at most), each one's newest `limit`
        runs by ix_flowruns_configuration_sort, merged newest first, then the records of
        the page alone. A trigram index finds the matching runs but not the newest of them
        (a rare substring made the planner sort thousands; a common one, scan the list).
        None (filter the list instead) when more than MAX_CONFIGURATION_ARMS match."""
        assert query.configuration
        c = run_counts.c
        found = select(c.configuration).where(_has(c.configuration, query.configuration), c.n > 0)
        exact = (
            (c.namespace, query.namespace),
            (c.flow_name, query.flow),
            (c.status, query.status),
        )
        found = found.where(*(col == value for col, value in exact if value is not None))
        if query.namespaces is not None:
            found = found.where(c.namespace.in_(query.namespaces))
        found = found.distinct().limit(MAX_CONFIGURATION_ARMS + 1)
        configurations = sorted(str(r[0]) for r in (await conn.execute(found)).all())
        if len(configurations) > MAX_CONFIGURATION_ARMS:
            return None
        newest = (runs.c.sort_time.desc(), runs.c.uid.desc())
        if not configurations:
            return select(runs.c.uid, runs.c.sort_time, runs.c.record).where(false())
        others = _conditions(query, self.backend, configuration=False)
        if self.backend == "postgresql":
            # One statement of one shape whatever the number of configurations (an array
            # parameter, a LATERAL arm per element): compiled and prepared once.
            wanted = bindparam("configurations", configurations, type_=postgresql.ARRAY(String))
            names = select(func.unnest(wanted).label("configuration")).subquery("wanted")
            arm = (
                select(runs.c.uid, runs.c.sort_time)
                .where(runs.c.configuration == names.c.configuration, *others, *keyset)
                .order_by(*newest)
                .limit(limit)
                .lateral("arm")
            )
            top = (
                select(arm.c.uid, arm.c.sort_time)
                .select_from(names)
                .join(arm, true())
                .order_by(arm.c.sort_time.desc(), arm.c.uid.desc())
                .limit(limit)
                .subquery("top")
            )
            return (
                select(runs.c.uid, runs.c.sort_time, runs.c.record)
                .join(top, top.c.uid == runs.c.uid)
                .order_by(top.c.sort_time.desc(), top.c.uid.desc())
            )
        # SQLite has no LATERAL: one arm per configuration, merged by a UNION ALL.
        arms = [
            select(runs.c.uid, runs.c.sort_time)
            .where(runs.c.configuration == name, *others, *keyset)
            .order_by(*newest)
            .limit(limit)
            .subquery()
            for name in configurations
        ]
        merged = union_all(*(select(a.c.uid, a.c.sort_time) for a in arms)).subquery()
        top = (
            select(merged.c.uid, merged.c.sort_time)
            .order_by(merged.c.sort_time.desc(), merged.c.uid.desc())
            .limit(limit)
            .subquery()
        )
        return (
            select(runs.c.uid, runs.c.sort_time, runs.c.record)
            .join(top, top.c.uid == runs.c.uid)
            .order_by(top.c.sort_time.desc(), top.c.uid.desc())
        )

    async def put_log(
        self,
        uid: str,
        task: str,
        attempt: int,
        text: str,
        *,
        truncated: bool = False,
        lost_reason: str | None = None,
    ) -> LogRecord:
        kept, cut, size = cap_log(text, self.log_cap)
        values = {
            "uid": uid,
            "task": task,
            "attempt": attempt,
            "text": kept,
            "truncated": truncated or cut,
            "size": size,
            "lost_reason": lost_reason,
            "captured_at": self.clock(),
        }

        def replaces(new: Any) -> ColumnElement[bool]:
            # A loss never overwrites a captured log; a capture replaces a loss.
            return or_(new.lost_reason.is_(None), logs.c.lost_reason.is_not(None))

        stmt = self._upsert(logs, values, replaces).returning(*logs.c)
        key = (logs.c.uid == uid, logs.c.task == task, logs.c.attempt == attempt)
        async with self._connection("record a log", write=True) as conn:
            row = (await conn.execute(stmt)).first()
            if row is None:
                row = (await conn.execute(select(*logs.c).where(*key))).one()
        return _log_of(row)

    async def get_log(self, uid: str, task: str, attempt: int | None = None) -> LogRecord | None:
        stmt = select(*logs.c).where(logs.c.uid == uid, logs.c.task == task)
        if attempt is not None:
            stmt = stmt.where(logs.c.attempt == attempt)
        stmt = stmt.order_by(logs.c.attempt.desc()).limit(1)
        async with self._connection("read a log", write=False) as conn:
            row = (await conn.execute(stmt)).first()
        return None if row is None else _log_of(row)

    async def statuses(self, uids: Collection[str]) -> dict[str, str]:
        wanted = sorted(set(uids))
        found: dict[str, str] = {}
        async with self._connection("read statuses", write=False) as conn:
            for at in range(0, len(wanted), STATUS_BATCH):
                stmt = select(runs.c.uid, runs.c.status).where(
                    runs.c.uid.in_(wanted[at : at + STATUS_BATCH])
                )
                found.update((row.uid, row.status) for row in (await conn.execute(stmt)).all())
        return found

    async def namespaces(self) -> list[str]:
        c = run_counts.c
        stmt = select(c.namespace).where(c.n > 0).distinct().order_by(c.namespace)
        async with self._connection("read namespaces", write=False) as conn:
            return [str(row.namespace) for row in (await conn.execute(stmt)).all()]

    def _over_count(self, policy: PrunePolicy) -> Select[Any] | None:
        """The runs past the newest `keepPerFlowStatus` of their namespace, flow and status."""
        if policy.keep_per_flow_status is None:
            return None
        c = runs.c
        rank = (
            func.row_number()
            .over(
                partition_by=(c.namespace, c.flow_name, c.status),
                order_by=(c.sort_time.desc(), c.uid.desc()),
            )
            .label("rank")
        )
        ranked = select(c.uid, c.namespace, c.name, rank).subquery()
        return select(ranked.c.uid, ranked.c.namespace, ranked.c.name).where(
            ranked.c.rank > policy.keep_per_flow_status
        )

    def _over_age(self, policy: PrunePolicy) -> Select[Any] | None:
        """The runs that ended (or, unfinished, started) before `maxAge` ago."""
        if policy.max_age is None:
            return None
        c = runs.c
        cutoff = self.clock() - policy.max_age
        return select(c.uid, c.namespace, c.name).where(
            func.coalesce(c.end_time, c.sort_time) < cutoff
        )

    def _old_colors(self, policy: PrunePolicy) -> Select[Any] | None:
        """The color transitions before `maxAge` ago that are not their Workflow's newest
        (by namespace and name, as the color reads go): the newest always stays, so the
        color a window starts in is still known."""
        if policy.max_age is None:
            return None
        c, newer = colors.c, colors.alias("newer").c
        later = exists().where(
            newer.namespace == c.namespace,
            newer.name == c.name,
            tuple_(newer.time, newer.uid, newer.to_color) > tuple_(c.time, c.uid, c.to_color),
        )
        return select(c.uid, c.time, c.to_color).where(
            c.time < self.clock() - policy.max_age, later
        )

    def _old_audit(self, policy: PrunePolicy) -> Select[Any] | None:
        """The audit records before `maxAge` ago."""
        if policy.max_age is None:
            return None
        return select(audit.c.id).where(audit.c.time < self.clock() - policy.max_age)

    async def prune(self, policy: PrunePolicy, *, dry_run: bool = False) -> PruneReport:
        # Count first: deleting runs past the limit changes no kept run's rank (a rank counts
        # newer runs only), so the age set left afterwards is the dry run's "old, not over".
        # Likewise a Workflow's newest transition is never chosen, so every chosen one keeps
        # a newer one whatever the batches before it deleted.
        over, old = self._over_count(policy), self._over_age(policy)
        old_colors, old_audit = self._old_colors(policy), self._old_audit(policy)
        if dry_run:
            if over is not None and old is not None:
                old = old.where(not_(runs.c.uid.in_(select(over.subquery().c.uid))))
            return await self._count(over, old, old_colors, old_audit)
        examples: list[str] = []
        by_count = by_age = n_colors = n_audit = batches = 0
        if over is not None:
            by_count, n = await self._delete(over, policy.batch_size, examples)
            batches += n
        if old is not None:
            by_age, n = await self._delete(old, policy.batch_size, examples)
            batches += n
        if old_colors is not None:
            n_colors, n = await self._delete_rows(
                old_colors, colors, ("uid", "time", "to_color"), policy.batch_size
            )
            batches += n
        if old_audit is not None:
            n_audit, n = await self._delete_rows(old_audit, audit, ("id",), policy.batch_size)
            batches += n
        report = PruneReport(
            dry_run=False,
            by_age=by_age,
            by_count=by_count,
            color_transitions=n_colors,
            audit_records=n_audit,
            batches=batches,
            examples=tuple(examples),
        )
        if report.total or n_colors or n_audit:
            log.info(
                "history: pruned %d runs (%d by count, %d by age), %d color transitions and "
                "%d audit records in %d batches",
                report.total,
                by_count,
                by_age,
                n_colors,
                n_audit,
                batches,
            )
        return report

    async def _count(
        self,
        over: Select[Any] | None,
        old: Select[Any] | None,
        old_colors: Select[Any] | None = None,
        old_audit: Select[Any] | None = None,
    ) -> PruneReport:
        totals: list[int] = []
        examples: list[str] = []
        async with self._connection("count what to prune", write=False) as conn:
            for i, chosen in enumerate((over, old, old_colors, old_audit)):
                if chosen is None:
                    totals.append(0)
                    continue
                counted = select(func.count()).select_from(chosen.subquery())
                totals.append(int((await conn.execute(counted)).scalar_one()))
                need = EXAMPLES - len(examples)
                if need > 0 and i < 2:  # examples are runs
                    rows = (await conn.execute(chosen.limit(need))).all()
                    examples += _examples(rows)
        return PruneReport(
            dry_run=True,
            by_count=totals[0],
            by_age=totals[1],
            color_transitions=totals[2],
            audit_records=totals[3],
            examples=tuple(examples),
        )

    async def _delete(
        self, chosen: Select[Any], batch: int, examples: list[str]
    ) -> tuple[int, int]:
        deleted = batches = 0
        while True:
            async with self._connection("prune", write=True) as conn:
                rows = (await conn.execute(chosen.limit(batch))).all()
                if not rows:
                    break
                uids = [row.uid for row in rows]
                await conn.execute(delete(logs).where(logs.c.uid.in_(uids)))
                await conn.execute(delete(runs).where(runs.c.uid.in_(uids)))
            deleted, batches = deleted + len(rows), batches + 1
            examples += _examples(rows)[: max(0, EXAMPLES - len(examples))]
            await asyncio.sleep(0)  # one batch at a time, the loop's other work in between
            if len(rows) < batch:
                break
        return deleted, batches

    async def _delete_rows(
        self, chosen: Select[Any], table: Table, key: tuple[str, ...], batch: int
    ) -> tuple[int, int]:
        """Delete what `chosen` selects (the columns of `key`) from `table`, `batch` rows per
        short transaction, as `_delete` does runs."""
        deleted = batches = 0
        columns = tuple_(*(table.c[k] for k in key))
        while True:
            async with self._connection("prune", write=True) as conn:
                rows = (await conn.execute(chosen.limit(batch))).all()
                if not rows:
                    break
                await conn.execute(delete(table).where(columns.in_([tuple(r) for r in rows])))
            deleted, batches = deleted + len(rows), batches + 1
            await asyncio.sleep(0)
            if len(rows) < batch:
                break
        return deleted, batches

    async def record_colors(self, transitions: Sequence[ColorTransition]) -> int:
        stored = 0
        async with self._connection("record color transitions", write=True) as conn:
            for t in transitions:
                values = {
                    "uid": t.uid,
                    "time": t.time,
                    "to_color": t.to_color,
                    "namespace": t.namespace,
                    "name": t.name,
                    "from_color": t.from_color,
                    "reason": t.reason,
                }
                stmt: Any
                if self.backend == "sqlite":
                    stmt = sqlite.insert(colors).values(values).on_conflict_do_nothing()
                else:
                    stmt = postgresql.insert(colors).values(values).on_conflict_do_nothing()
                if (await conn.execute(stmt.returning(colors.c.uid))).first() is not None:
                    stored += 1
        return stored

    async def color_history(
        self, namespace: str, name: str, since: datetime, until: datetime
    ) -> ColorHistory:
        c = colors.c
        mine = (c.namespace == namespace, c.name == name)
        order = (c.time.desc(), c.uid.desc(), c.to_color.desc())
        inside = (
            select(*colors.c)
            .where(*mine, c.time >= since, c.time < until)
            .order_by(*order)
            .limit(MAX_COLOR_TRANSITIONS)
        )
        before = select(*colors.c).where(*mine, c.time < since).order_by(*order).limit(1)
        async with self._connection("read color transitions", write=False) as conn:
            rows = (await conn.execute(inside)).all()
            first = (await conn.execute(before)).first()
        return ColorHistory(
            before=None if first is None else _color_of(first),
            transitions=tuple(_color_of(row) for row in reversed(rows)),
        )

    async def record_audit(self, records: Sequence[AuditRecord]) -> int:
        stored = 0
        async with self._connection("record audit entries", write=True) as conn:
            for r in records:
                values = {
                    **r.model_dump(exclude={"groups"}),
                    "groups": json.dumps(list(r.groups)),
                }
                stmt: Any
                if self.backend == "sqlite":
                    stmt = sqlite.insert(audit).values(values).on_conflict_do_nothing()
                else:
                    stmt = postgresql.insert(audit).values(values).on_conflict_do_nothing()
                if (await conn.execute(stmt.returning(audit.c.id))).first() is not None:
                    stored += 1
        return stored

    async def list_audit(
        self, query: AuditQuery, limit: int | None = None, cursor: str | None = None
    ) -> AuditPage:
        size = page_limit(limit)
        c = audit.c
        exact = ((c.user, query.user), (c.namespace, query.namespace), (c.action, query.action))
        stmt = select(*audit.c).where(*(col == v for col, v in exact if v is not None))
        if cursor is not None:
            after = Cursor.decode(cursor)
            key = tuple_(literal(after.sort_time, UTCTime()), literal(after.uid, String()))
            stmt = stmt.where(tuple_(c.time, c.id) < key)
        stmt = stmt.order_by(c.time.desc(), c.id.desc()).limit(size + 1)
        async with self._connection("list audit entries", write=False) as conn:
            rows = (await conn.execute(stmt)).all()
        shown = rows[:size]
        last = shown[-1] if len(rows) > size else None
        return AuditPage(
            items=tuple(_audit_of(row) for row in shown),
            next_cursor=Cursor(last.time, last.id).encode() if last else None,
        )

    async def close(self) -> None:
        await self.engine.dispose()


def _audit_of(row: Any) -> AuditRecord:
    try:
        groups = tuple(str(g) for g in json.loads(row.groups))
    except (ValueError, TypeError):
        groups = ()
    return AuditRecord(
        id=row.id,
        time=row.time,
        user=row.user,
        groups=groups,
        action=row.action,
        namespace=row.namespace,
        kind=row.kind,
        name=row.name,
        result=row.result,
        status=row.status,
        created=row.created,
        detail=row.detail,
    )


def _color_of(row: Any) -> ColorTransition:
    return ColorTransition(
        uid=row.uid,
        namespace=row.namespace,
        name=row.name,
        time=row.time,
        from_color=row.from_color,
        to_color=row.to_color,
        reason=row.reason,
    )


def _examples(rows: Sequence[Any]) -> list[str]:
    return [f"{row.namespace}/{row.name} ({row.uid})" for row in rows]
