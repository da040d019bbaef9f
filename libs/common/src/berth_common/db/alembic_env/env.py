"""Alembic environment shared by every service: the connection and schema come from the caller."""

from alembic import context

config = context.config
connection = config.attributes["connection"]
schema = config.attributes["schema"]

context.configure(
    connection=connection,
    version_table_schema=schema,
    version_table="alembic_version",
    transactional_ddl=True,
)
with context.begin_transaction():
    context.run_migrations()
