"""Alembic environment of retr's index database.

retr runs the migrations itself (:meth:`retrieval.store.database.Store._check_schema`), passing its
own connection in ``config.attributes["connection"]``; no alembic.ini is needed. For
development, ``alembic -x db=URL revision --autogenerate -m ...`` with a config whose
``script_location`` is this folder works too (offline mode: ``-x db=URL upgrade head --sql``).
"""
from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from retrieval.store.database import Base

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    url = context.get_x_argument(as_dictionary=True).get("db") or config.get_main_option("sqlalchemy.url")
    if not url:
        raise SystemExit("retr migrations: give the database with `-x db=URL`")
    return url


def _configure(**kw) -> None:
    context.configure(target_metadata=target_metadata, compare_type=True, **kw)


def run_migrations_offline() -> None:
    _configure(url=_url(), literal_binds=True, dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:  # retr's own Store: its connection, inside its transaction
        _configure(connection=connection, render_as_batch=connection.dialect.name == "sqlite")
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_engine(_url())
    try:
        with engine.begin() as connection:
            _configure(connection=connection, render_as_batch=connection.dialect.name == "sqlite")
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
