"""Alembic environment: runs on the connection handed over in `config.attributes["connection"]`.

bookingbot runs this itself on every start (`scheduling.db.create_schema`, under the schema lock);
there is no alembic.ini. To add a revision, read README.md in this folder.
"""

from __future__ import annotations

from typing import Any

from alembic import context
from alembic.autogenerate.api import AutogenContext
from sqlalchemy.types import TypeDecorator

from scheduling.db import Base

config = context.config
connection = config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through scheduling.db.create_schema or python -m scheduling.migrations")


def render_item(kind: str, obj: Any, autogen_context: AutogenContext) -> str | bool:
    """Write our column types as the plain types they store, so a revision never imports the models."""
    if kind == "type" and isinstance(obj, TypeDecorator):
        return f"sa.{obj.impl!r}"
    return False


context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    # SQLite cannot ALTER most things: autogenerate writes batch operations (copy and move) there.
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
    render_item=render_item,
)
with context.begin_transaction():
    context.run_migrations()
