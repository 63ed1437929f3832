"""Benchmark: a year of the tiers (`ngm`: two zones, two TSOs, a distribution region under each
zone's node) at 15-minute MTUs with 1,000 prosumers in each region (issue 20: <= 3 minutes on
2 cores). Not a timed test.

Prints the wall time (building the model, the days, the tables and summary), the time inside
solvers (environment.solver.CLOCK), wall/solver, peak memory (max RSS) and the wall per day
(mean, slowest, the transmission's part: the coupled auction and the 24 periods); with fewer
than 365 days, the year extrapolated from the days' mean. ngm's east load series covers one
week: the benchmark writes the same pattern (900 MW at night, 21:00-07:00, 1500 MW by day)
for the days it runs. To spare a shared machine, measure two fortnights and run the year once:

    python bench/ngm.py --days 14 --start 2016-01-04
    python bench/ngm.py --days 14 --start 2016-07-04
    python bench/ngm.py                                  # 365 days from 2016-01-01
    python bench/ngm.py --pass-up --days 14              # with the national place
    python bench/ngm.py --days 7 --profile ngm.prof      # cProfile of the days
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # measure this checkout's code

from environment.solver import CLOCK  # noqa: E402  (before numpy: BLAS on one thread)

TARGET_S = 180.0
YEAR = 365


def east_load(start: dt.date, days: int, folder: Path) -> Path:
    """ngm's east load pattern over the days run, as a series file."""
    t0 = dt.datetime.combine(start, dt.time())
    hours = [t0 + dt.timedelta(hours=h) for h in range(24 * (days + 1))]
    path = folder / "east_load.csv"
    path.write_text("time,east_load_mw\n" + "".join(
        f"{t:%Y-%m-%d %H:%M},{900 if t.hour >= 21 or t.hour < 7 else 1500}\n" for t in hours))
    return path


def timed(obj, names: tuple[str, ...]) -> list[float]:
    """Seconds spent in `obj`'s methods `names` (one running total)."""
    total = [0.0]

    def timer(f):
        def wrap(*args, **kw):
            t = time.perf_counter()
            try:
                return f(*args, **kw)
            finally:
                total[0] += time.perf_counter() - t
        return wrap

    for name in names:
        setattr(obj, name, timer(getattr(obj, name)))
    return total


def run(days: int, start: dt.date, prosumers: int, pass_up: bool,
        profile: str | None) -> dict:
    from environment.tiers.model import TierModel
    from experiments.plan import resolve
    from experiments.tiers_summary import tiers_summary

    with tempfile.TemporaryDirectory() as tmp:
        over = {"start": f"{start.isoformat()}T00:00",
                "data.east_load.file": str(east_load(start, days, Path(tmp)))}
        for i in range(2):
            over[f"regions.{i}.overrides.prosumers.0.count"] = prosumers
            if pass_up:
                over[f"regions.{i}.pass_up"] = True
        s = resolve("ngm", days=days, overrides=over)
        CLOCK.seconds, CLOCK.calls = 0.0, 0
        t0 = time.perf_counter()
        m = TierModel(s)
        built = time.perf_counter() - t0
        tx_s = timed(m.tx, ("step", "couple_day"))
        per_day = []
        prof = cProfile.Profile() if profile else None
        while m.running:
            t1 = time.perf_counter()
            if prof:
                prof.enable()
            m.step()
            if prof:
                prof.disable()
            per_day.append(time.perf_counter() - t1)
            if sys.stderr.isatty():
                print(f"\r  day {len(per_day)}/{days}", end="", file=sys.stderr)
        t2 = time.perf_counter()
        tiers_summary(m, m.tables())
        out = time.perf_counter() - t2
    if prof:
        prof.dump_stats(profile)
    return {"wall_s": time.perf_counter() - t0, "build_s": built, "tables_s": out,
            "solver_s": CLOCK.seconds, "solver_calls": CLOCK.calls,
            "per_day": per_day, "tx_s": tx_s[0]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--days", type=int, default=YEAR)
    ap.add_argument("--start", type=dt.date.fromisoformat, default=dt.date(2016, 1, 1))
    ap.add_argument("--prosumers", type=int, default=1000, help="per region")
    ap.add_argument("--pass-up", action="store_true",
                    help="both regions pass their flexibility up (the national place)")
    ap.add_argument("--profile", default=None, help="write a cProfile of the days here")
    a = ap.parse_args()
    r = run(a.days, a.start, a.prosumers, a.pass_up, a.profile)
    d = r["per_day"]
    mean = sum(d) / len(d)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"ngm benchmark: {a.days} days from {a.start}, 2 regions x {a.prosumers} prosumers, "
          f"15-min MTUs{', pass-up on' if a.pass_up else ''}")
    print(f"  wall            {r['wall_s']:8.2f} s   (model {r['build_s']:.2f}, days "
          f"{sum(d):.2f}, tables and summary {r['tables_s']:.2f})")
    print(f"  inside solvers  {r['solver_s']:8.2f} s   ({r['solver_calls']} LPs)")
    print(f"  wall / solver   {r['wall_s'] / max(r['solver_s'], 1e-9):8.2f}")
    print(f"  peak memory     {rss:8.0f} MB max RSS of the process")
    print(f"  per day         {mean:8.3f} s mean, {max(d):.3f} s slowest; transmission "
          f"{r['tx_s'] / len(d):.3f} s of it (coupling, 24 periods), the regions the rest")
    year = r["wall_s"] if a.days == YEAR else \
        r["build_s"] * YEAR / a.days + mean * YEAR + r["tables_s"] * YEAR / a.days
    label = "year" if a.days == YEAR else "year (extrapolated)"
    print(f"  {label:15s} {year:8.1f} s   target {TARGET_S:.0f} s: "
          f"{'met' if year <= TARGET_S else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
