"""evaluation_0002 upgrades a database that 0001 filled: revisits get their due time and
``rated`` splits into the states of Art 14."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import create_engine, text

from shared.db import migration_step
from tests.conftest import at

MIGRATIONS = Path(__file__).resolve().parents[3] / "services" / "evaluation" / "migrations"


def upgrade(url: str, revision: str) -> None:
    engine = create_engine(url)
    with engine.begin() as conn:
        migration_step(conn, str(MIGRATIONS), "upgrade", revision)
    engine.dispose()


def test_revisits_of_0001_are_carried_over(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/evaluation.db"
    upgrade(url, "evaluation_0001")
    completed = at("2026-03-06 16:00").replace(tzinfo=None)  # a Friday, stored naive UTC
    engine = create_engine(url)
    with engine.begin() as conn:
        for tid, state, rating in [
            ("T1", "rated", "dissatisfied"),
            ("T2", "rated", "satisfied"),
            ("T3", "open", None),
            ("T4", "not_required", None),
        ]:
            conn.execute(
                text(
                    "INSERT INTO revisits (ticket_id, round, unit_id, type, state, completed_at,"
                    " rating, recorded_at) VALUES (:t, 1, 'u', 'help', :s, :c, :r, :c)"
                ),
                {"t": tid, "s": state, "c": completed, "r": rating},
            )
    engine.dispose()
    upgrade(url, "head")
    engine = create_engine(url)
    with engine.connect() as conn:
        rows = {
            r.ticket_id: r
            for r in conn.execute(text("SELECT ticket_id, state, due_at, closed_at FROM revisits"))
        }
        policy = conn.execute(text("SELECT count(*) FROM policy_versions")).scalar()
    engine.dispose()
    assert {t: r.state for t, r in rows.items()} == {
        "T1": "awaiting_decision",
        "T2": "closed",
        "T3": "open",
        "T4": "not_required",
    }
    # Fri 16:00 Shanghai + 2 working days = Tue 16:00 Shanghai = 08:00 UTC
    assert str(rows["T3"].due_at).startswith("2026-03-10 08:00")
    assert rows["T2"].closed_at is not None and rows["T1"].closed_at is None
    assert policy == 1
