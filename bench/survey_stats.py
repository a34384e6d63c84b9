"""Survey figures over 100,000 responses (issue 10): how long `sisong survey stats` takes, per grouping.

Sets up one campaign with ``--responses`` households (in 100 villages, 6 areas,
5 teams, 400 helpers) and their responses, ~85 % completed with a spread of
answers, then times ``storage.surveys.stats`` (one GROUP BY) for each
``--by`` and the dispositions, best and median of ``--repeat`` runs. Beside
it, the naive peer: loading every response row into Python and counting there
(what an ORM-loop report does). Prints figures; asserts nothing.

    python bench/survey_stats.py [--responses 100000] [--repeat 5] [--embedded]

PostgreSQL by default (``SISONG_BENCH_POSTGRES_URL``, default
postgresql://postgres@127.0.0.1:5432/sisong_bench, its schema dropped);
``--embedded`` uses a SQLite file.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _setup(db_url: str, count: int) -> int:
    from sqlalchemy import text

    from storage.db import Database
    from storage.models.org import Area, Cadre, Hamlet, Household, Team, Township, Village
    from storage.models.surveys import SurveyCampaign, SurveyResponse

    db = Database(db_url)
    if not db.is_sqlite:
        with db.engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
    db.upgrade()
    rng = random.Random(7)
    now = datetime.now(timezone.utc)
    with db.session() as session:
        township = Township(name="本镇")
        session.add(township)
        session.flush()
        areas = [Area(township_id=township.id, name=f"片区{i}") for i in range(6)]
        session.add_all(areas)
        session.flush()
        villages = [Village(township_id=township.id, name=f"村{i:03d}", area_id=areas[i % 6].id) for i in range(100)]
        session.add_all(villages)
        session.flush()
        hamlets = [Hamlet(village_id=v.id, name="一组") for v in villages]
        session.add_all(hamlets)
        teams = list(session.scalars(select_teams()))
        cadres = [Cadre(township_id=township.id, name=f"干部{i}", phone=f"139{i:08d}") for i in range(400)]
        session.add_all(cadres)
        session.flush()
        session.execute(Household.__table__.insert(), [
            {"township_id": township.id, "number": f"H{i:06d}", "head_name": f"户主{i}",
             "village_id": villages[i % 100].id, "hamlet_id": hamlets[i % 100].id, "helper_id": cadres[i % 400].id,
             "team_id": teams[i % len(teams)].id if teams else None, "labourers": 1, "lifted": False,
             "monitored": False, "created_at": now, "updated_at": now} for i in range(count)])
        camp = SurveyCampaign(township_id=township.id, title="四问满意度调查", questionnaire="", questionnaire_key="x",
                              fingerprint="x", actor="bench", remind_after=172800)
        session.add(camp)
        session.flush()
        ids = [(hid, vid, helper, team) for hid, vid, helper, team in session.execute(
            text("SELECT id, village_id, helper_id, team_id FROM households ORDER BY id"))]
        rows = []
        for hid, vid, helper, team in ids:
            done = rng.random() < 0.85
            answers = {"know_team": [rng.choice((1, 1, 1, 2))], "know_helper": [rng.choice((1, 1, 2))],
                       "measures": [1, 3], "satisfaction": [rng.choice((1, 1, 1, 2, 3))]} if done else {}
            rows.append({"campaign_id": camp.id, "household_id": hid, "village_id": vid, "helper_id": helper,
                         "team_id": team, "status": "completed" if done else "invited", "tries": 0, "version": 3,
                         "answers": json.dumps(answers), "invited_at": now,
                         "know_team": answers["know_team"][0] if done else None,
                         "know_helper": answers["know_helper"][0] if done else None,
                         "satisfaction": answers["satisfaction"][0] if done else None})
        for start in range(0, len(rows), 5000):
            session.execute(SurveyResponse.__table__.insert(), rows[start:start + 5000])
        campaign_id = camp.id
    if not db.is_sqlite:
        with db.engine.connect() as conn:
            conn.execute(text("ANALYZE"))
            conn.commit()
    db.dispose()
    return campaign_id


def select_teams():  # type: ignore[no-untyped-def]
    from sqlalchemy import select

    from storage.models.org import Team

    return select(Team).order_by(Team.id)


def _naive(session, campaign_id: int) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """The peer: every row into Python, counted there."""
    from sqlalchemy import select

    from storage.models.surveys import SurveyResponse

    counts = {"invited": 0, "responses": 0, "satisfied": 0}
    for row in session.scalars(select(SurveyResponse).where(SurveyResponse.campaign_id == campaign_id)):
        counts["invited"] += 1
        answers = json.loads(row.answers)
        if row.status == "completed":
            counts["responses"] += 1
            counts["satisfied"] += answers.get("satisfaction") == [1]
    return counts


def _time(fn, repeat: int) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    runs = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        runs.append((time.perf_counter() - started) * 1000)
    return min(runs), statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--responses", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--embedded", action="store_true", help="SQLite instead of PostgreSQL")
    args = parser.parse_args()
    if args.embedded:
        db_url = f"sqlite:///{tempfile.mkdtemp(prefix='sisong-bench-survey-')}/bench.db"
    else:
        db_url = os.environ.get("SISONG_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/sisong_bench")
        from bench.push import _ensure_database

        _ensure_database(db_url)
    started = time.monotonic()
    campaign_id = _setup(db_url, args.responses)
    setup_s = time.monotonic() - started
    from storage import surveys
    from storage.db import Database

    db = Database(db_url)
    figures: dict[str, object] = {}
    with db.session() as session:
        for by in (None, *surveys.GROUPINGS):
            best, median = _time(lambda by=by: surveys.stats(session, campaign_id, by), args.repeat)
            figures[f"stats --by {by or '(total)'}"] = {"best_ms": round(best, 1), "median_ms": round(median, 1)}
        best, median = _time(lambda: surveys.dispositions(session, campaign_id), args.repeat)
        figures["dispositions"] = {"best_ms": round(best, 1), "median_ms": round(median, 1)}
        best, median = _time(lambda: _naive(session, campaign_id), max(1, args.repeat // 2))
        figures["peer: rows into Python"] = {"best_ms": round(best, 1), "median_ms": round(median, 1)}
        whole = surveys.total(surveys.stats(session, campaign_id))
    db.dispose()
    print(f"# {platform.system()} {platform.release()} {platform.machine()}, {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()}, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, "
          f"load {os.getloadavg()[0]:.1f}")
    print(json.dumps({"backend": "SQLite" if args.embedded else "PostgreSQL", "responses": args.responses,
                      "setup_s": round(setup_s, 1), "total": {k: whole[k] for k in ("invited", "responses")},
                      "timings": figures}, ensure_ascii=False))


if __name__ == "__main__":
    main()
