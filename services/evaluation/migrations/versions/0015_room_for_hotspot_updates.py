"""evaluation: room on ``hotspot_tracks``' pages for HOT updates (fillfactor 25 on
PostgreSQL, see shared.migrations; issue 12). Every registration updates its matter and
district's track (the recent times, the tally), which no index names, but on full pages
~40 % of those updates found no room for the new version: each then wrote a lock record,
the new version on another page and an entry into the primary key (e2e, WAL by relation
through pg_waldump: 0.40 of 1.0 update a ticket not HOT; the other services' batches hold
snapshots that keep the page's last versions from being pruned). With pages a quarter
full, 0.90-0.96 are HOT. The table holds one row a matter and district (about a thousand):
its pages cost nothing worth counting. Rows already written keep their pages until an
update moves them; SQLite is unchanged.

Revision ID: evaluation_0015
"""

from shared.migrations import room_for_hot_updates

revision = "evaluation_0015"
down_revision = "evaluation_0014"


def upgrade() -> None:
    room_for_hot_updates("hotspot_tracks", 25)


def downgrade() -> None:
    room_for_hot_updates("hotspot_tracks", None)
