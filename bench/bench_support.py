"""Helpers shared by the bench scripts: progress lines, the dedicated bench database, percentiles."""

from __future__ import annotations

import sys


def progress(msg: str) -> None:
    sys.stderr.write(f"\r{msg}\033[K" if sys.stderr.isatty() else msg + "\n")
    sys.stderr.flush()


def ensure_database(url: str, *, script: str) -> str:
    """Create the PostgreSQL database named in ``url`` if missing; returns its name.

    Benches empty and fill their tables, so the name must contain "bench".
    """
    import dj_database_url
    import psycopg

    cfg = dj_database_url.parse(url)
    if "postgresql" not in cfg["ENGINE"]:
        sys.exit(f"bench/{script} measures PostgreSQL: set DATABASE_URL=postgres://.../curation_bench")
    name = cfg["NAME"]
    if "bench" not in name:
        sys.exit(f"refusing to empty or fill the tables of database {name!r}: its name must contain 'bench'")
    conninfo = {k: v for k, v in dict(host=cfg["HOST"], port=cfg["PORT"], user=cfg["USER"], password=cfg["PASSWORD"]).items() if v}
    with psycopg.connect(dbname="postgres", autocommit=True, **conninfo) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
    return name


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile, q in [0, 1]; NaN for no values."""
    values = sorted(values)
    if not values:
        return float("nan")
    k = (len(values) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)
