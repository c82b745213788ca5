"""The dialog's hot statements, compiled once per dialect and run on the driver's own connection.

Every update reads its client and draft and saves the draft; the slot views read our own bookings, the
consent and specialist screens what the client agreed to and whom they saw. On SQLite each takes
microseconds, while executing it through SQLAlchemy (an execution context, a result object, greenlet
switches) costs ten to twenty times that. Compiled once, with the column types' own bind and result
processors (so values are stored and read exactly as SQLAlchemy would), they run for the statement's cost.
PostgreSQL keeps SQLAlchemy's execution: its driver keeps its own transaction state, and a round trip
to the server costs more than SQLAlchemy's work there.
"""

from __future__ import annotations

import contextlib
from collections import namedtuple
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Executable
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

Processor = Callable[[Any], Any] | None


@dataclass(frozen=True)
class Prepared:
    """One statement as the driver takes it: SQL text, its parameters' order and the values' conversions."""

    sql: str
    names: tuple[str, ...]
    binds: tuple[Processor, ...]
    results: tuple[Processor, ...]
    row: Callable[..., Any]  # a named tuple of the result columns
    fixed: dict[str, Any]  # the values the statement itself carries (`status == "confirmed"`)

    def params(self, values: dict[str, Any]) -> tuple[Any, ...]:
        values = {**self.fixed, **values} if self.fixed else values
        return tuple(
            values[name] if bind is None else bind(values[name])
            for name, bind in zip(self.names, self.binds, strict=True)
        )

    def decode(self, raw: Sequence[Any]) -> Any:
        return self.row(*(v if f is None or v is None else f(v) for v, f in zip(raw, self.results, strict=True)))


class Hot:
    """A Core statement of the hot path and its compiled form for each dialect it has met."""

    def __init__(self, stmt: Executable, columns: Sequence[ColumnElement[Any]] = ()):
        self.stmt = stmt
        self.columns = tuple(columns)
        self._prepared: dict[str, Prepared] = {}

    def prepared(self, dialect: Dialect) -> Prepared:
        done = self._prepared.get(dialect.name)
        if done is None:
            done = self._prepared[dialect.name] = _prepare(self.stmt, self.columns, dialect)
        return done


def _prepare(stmt: Executable, columns: Sequence[ColumnElement[Any]], dialect: Dialect) -> Prepared:
    compiled = stmt.compile(dialect=dialect)
    declared = compiled.binds
    # A list of constants (`status IN (...)`) is expanded here, once: the driver takes plain placeholders.
    expanded = compiled.construct_expanded_state(
        {name: None if bind.required else bind.effective_value for name, bind in declared.items()}
    )
    names = tuple(expanded.positiontup or ())

    def processor(name: str) -> Processor:
        if name in expanded.processors:
            return expanded.processors[name]
        return declared[name].type.dialect_impl(dialect).bind_processor(dialect)

    fixed = {name: expanded.parameters[name] for name in names if not (name in declared and declared[name].required)}
    results = tuple(c.type.dialect_impl(dialect).result_processor(dialect, None) for c in columns)
    row = namedtuple("Row", [c.key for c in columns], rename=True) if columns else tuple  # type: ignore[misc]
    return Prepared(expanded.statement, names, tuple(processor(n) for n in names), results, row, fixed)


class CoreStatements:
    """Hot statements through SQLAlchemy, for any dialect."""

    def __init__(self, conn: AsyncConnection):
        self.conn = conn
        self.dialect = conn.dialect

    async def first(self, hot: Hot, values: dict[str, Any]) -> Any:
        return (await self.conn.execute(hot.stmt, values)).first()

    async def all(self, hot: Hot, values: dict[str, Any]) -> list[Any]:
        return list(await self.conn.execute(hot.stmt, values))

    async def run(self, hot: Hot, values: dict[str, Any]) -> None:
        await self.conn.execute(hot.stmt, values)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        async with self.conn.begin():
            yield


class DriverStatements:
    """Hot statements straight on the connection's SQLite driver (scheduling.sqlite_inline), which ends their
    transaction too.

    Their commits do not sync the WAL to disk: what they keep is where a client is in the dialog. A process
    that crashes loses none of it; a machine that loses power may lose its last taps (until the next synced
    commit, which any booking or calendar write makes), and the client is asked to tap again. Bookings and
    everything else commit synced, through SQLAlchemy.
    """

    def __init__(self, driver: Any, dialect: Dialect):
        self.driver = driver
        self.dialect = dialect

    async def first(self, hot: Hot, values: dict[str, Any]) -> Any:
        rows = await self._execute(hot, values, "fetchone")
        return None if rows is None else hot.prepared(self.dialect).decode(rows)

    async def all(self, hot: Hot, values: dict[str, Any]) -> list[Any]:
        decode = hot.prepared(self.dialect).decode
        return [decode(raw) for raw in await self._execute(hot, values, "fetchall")]

    async def run(self, hot: Hot, values: dict[str, Any]) -> None:
        await self._execute(hot, values, None)

    async def _execute(self, hot: Hot, values: dict[str, Any], fetch: str | None) -> Any:
        p = hot.prepared(self.dialect)
        with self._as_sqlalchemy(p):
            cursor = await self.driver.execute(p.sql, p.params(values))
            try:
                return await getattr(cursor, fetch)() if fetch else None
            finally:
                await cursor.close()

    @contextlib.contextmanager
    def _as_sqlalchemy(self, p: Prepared) -> Iterator[None]:
        """The driver's errors as SQLAlchemy raises them elsewhere (OperationalError, IntegrityError...)."""
        error = self.dialect.loaded_dbapi.Error
        try:
            yield
        except error as err:
            raise DBAPIError.instance(p.sql, None, err, error, hide_parameters=True, dialect=self.dialect) from err

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        async with self.driver.unsynced():
            try:
                yield
            except BaseException:
                await self.driver.rollback()
                raise
            await self.driver.commit()


async def statements(conn: AsyncConnection) -> CoreStatements | DriverStatements:
    """The fastest way to run hot statements on this open connection."""
    if conn.dialect.name == "sqlite":
        raw = await conn.get_raw_connection()
        return DriverStatements(raw.driver_connection, conn.dialect)
    return CoreStatements(conn)
