"""The PostgreSQL backend's tables (state/postgres.py describes them), created on first use
and migrated by later versions.

Tables are created (later: migrated) in one transaction under an advisory lock, so two runners
starting at once on an empty database do not trip over each other. A plain read (plan, show)
never creates them: a missing table is an empty state."""

from __future__ import annotations

from mailgitops.errors import StateError
from mailgitops.state.postgres_connection import Connection, Database
from mailgitops.state.postgres_lock import advisory_key

SCHEMA_VERSION = 1

# Every statement of a migration runs in one transaction; index i holds version i + 1.
_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE IF NOT EXISTS mailgitops_schema_version (
            version integer PRIMARY KEY,
            applied_at timestamptz NOT NULL DEFAULT now()
        )""",
        # COLLATE "C": keys sort by code point, as Python sorts them, whatever the database's
        # locale; and equality stays byte equality, as in the JSON file.
        """CREATE TABLE mailgitops_workspace (
            workspace text COLLATE "C" PRIMARY KEY,
            lineage text NOT NULL,
            serial bigint NOT NULL CHECK (serial >= 0),
            format_version integer NOT NULL,
            revision bigint NOT NULL DEFAULT 0,
            updated_at timestamptz NOT NULL DEFAULT now()
        )""",
        """CREATE TABLE mailgitops_provider (
            workspace text COLLATE "C" NOT NULL
                REFERENCES mailgitops_workspace (workspace) ON DELETE CASCADE,
            name text COLLATE "C" NOT NULL,
            entry jsonb NOT NULL,
            PRIMARY KEY (workspace, name)
        )""",
        """CREATE TABLE mailgitops_mailbox (
            workspace text COLLATE "C" NOT NULL
                REFERENCES mailgitops_workspace (workspace) ON DELETE CASCADE,
            address text COLLATE "C" NOT NULL,
            entry jsonb NOT NULL,
            PRIMARY KEY (workspace, address)
        )""",
        # Statement-level with transition tables: one bump per statement, not per row, so a
        # bulk load of 100,000 mailboxes does not update the workspace row 100,000 times.
        """CREATE OR REPLACE FUNCTION mailgitops_bump_revision() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            UPDATE mailgitops_workspace AS w SET revision = w.revision + 1
             WHERE w.workspace IN (SELECT DISTINCT c.workspace FROM changed_rows AS c);
            RETURN NULL;
        END
        $$""",
        *(
            f"""CREATE TRIGGER mailgitops_{table}_{event.lower()}_revision
                AFTER {event} ON mailgitops_{table}
                REFERENCING {side} TABLE AS changed_rows
                FOR EACH STATEMENT EXECUTE FUNCTION mailgitops_bump_revision()"""
            for table in ("provider", "mailbox")
            for event, side in (("INSERT", "NEW"), ("UPDATE", "NEW"), ("DELETE", "OLD"))
        ),
    ),
)
assert len(_MIGRATIONS) == SCHEMA_VERSION

_MIGRATION_KEY = advisory_key("schema-migration")


def version(conn: Connection, db: Database) -> int:
    """The version of the tables in the database; 0 when there are none."""
    with db.errors("read"):
        row = conn.execute("SELECT to_regclass('mailgitops_schema_version')").fetchone()
        if row is None or row[0] is None:
            return 0
        row = conn.execute("SELECT max(version) FROM mailgitops_schema_version").fetchone()
    return int(row[0]) if row is not None and row[0] is not None else 0


def ensure(conn: Connection, db: Database) -> None:
    """The tables of this version, created or migrated when they are not."""
    if version(conn, db) == SCHEMA_VERSION:
        return
    with db.errors("create the tables of"):
        # Serializes the migration: the second runner waits, then finds it done. A session
        # lock taken *before* the transaction: a transaction that began before the first
        # runner committed would still see the old catalog after waiting, and try to
        # create the tables again.
        conn.execute("SELECT pg_advisory_lock(%s)", (_MIGRATION_KEY,))
        try:
            with conn.transaction():
                _migrate(conn, db)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_MIGRATION_KEY,))


def _migrate(conn: Connection, db: Database) -> None:
    current = version(conn, db)
    if current > SCHEMA_VERSION:
        raise StateError(
            f"the tables of {db.where} have schema version {current}, newer "
            f"than this mailgitops knows ({SCHEMA_VERSION}): use a newer mailgitops"
        )
    for number in range(current + 1, SCHEMA_VERSION + 1):
        for statement in _MIGRATIONS[number - 1]:
            conn.execute(statement)
        conn.execute("INSERT INTO mailgitops_schema_version (version) VALUES (%s)", (number,))
