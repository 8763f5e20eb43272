"""intake: on PostgreSQL a ticket's search words are one row of ``ticket_words`` (issue 12):
the words one ``text[]`` (COLLATE "C", compared byte by byte as in intake_0008) under a GIN
index, instead of a row and a primary-key entry per word in ``ticket_terms`` (about 37 a
ticket), the registration batch's most expensive part. A search is
``terms @> ARRAY[the query's words]``: the same tickets as before. The words stay out of
the tickets' rows, which status updates rewrite, and the narrow rows count matches fast.
Existing tickets' words are carried over; the downgrade writes them back as rows. SQLite
keeps ``ticket_terms`` (it has no index on a list).

Revision ID: intake_0009
"""

from alembic import op

revision = "intake_0009"
down_revision = "intake_0008"


def upgrade() -> None:
    _rewrite(
        [
            'CREATE TABLE ticket_words (ticket_pk integer PRIMARY KEY, terms text[] COLLATE "C"'
            " NOT NULL)",
            "INSERT INTO ticket_words (ticket_pk, terms) SELECT ticket_pk,"
            " array_agg(term ORDER BY term) FROM ticket_terms GROUP BY ticket_pk",
            "CREATE INDEX ix_ticket_words_terms ON ticket_words USING gin (terms)",
        ],
        "ticket_terms",
    )


def downgrade() -> None:
    _rewrite(
        [
            'CREATE TABLE ticket_terms (term varchar(32) COLLATE "C", ticket_pk integer,'
            " PRIMARY KEY (term, ticket_pk))",
            "INSERT INTO ticket_terms (term, ticket_pk)"
            " SELECT DISTINCT unnest(terms), ticket_pk FROM ticket_words",
        ],
        "ticket_words",
    )


def _rewrite(statements: list[str], old: str) -> None:
    """PostgreSQL: the words' new table, filled from the ``old`` one, which goes."""
    if op.get_bind().dialect.name != "postgresql":
        return
    for statement in statements:
        op.execute(statement)
    op.drop_table(old)
