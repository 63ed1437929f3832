"""One model family: a transmission scenario is planned, run, stored, summarised and twinned
through the same path as a distribution-grid one, with `extends` and the same summary names
where the quantities are the same."""

from __future__ import annotations

import json

import pytest

from environment.transmission.scenario import TxScenario
from experiments.cli import main
from experiments.plan import kind_of, plan_run, resolve
from experiments.run import run_scenario
from experiments.twin import TransmissionTwin, run_twin

SHARED = ["system_cost_eur", "planner_system_cost_eur", "cost_efficiency",
          "system_cost.run.fuel_eur", "system_cost.run.total_eur",
          "system_cost.planner.total_eur", "da_price_eur_mwh.mean", "da_price_eur_mwh.min",
          "da_price_eur_mwh.max", "da_price_eur_mwh.std", "ledger.rows", "run.id",
          "run.scenario", "run.seed", "run.start", "run.mtu_minutes", "run.source",
          "run.overrides", "timing.wall_s", "timing.solver_s", "timing.max_rss_mb"]


def _get(d: dict, dotted: str):
    for k in dotted.split("."):
        d = d[k]
    return d


def test_a_transmission_file_extends_another(tmp_path):
    mine = tmp_path / "mine.yaml"
    mine.write_text("extends: two_node_incdec\nname: mine\nredispatch: {mechanism: cost_based}\n"
                    "producers: {remove: [south_peaker]}\n")
    assert kind_of(mine) == "transmission"
    s = resolve(mine)
    assert isinstance(s, TxScenario) and s.name == "mine"
    assert s.redispatch.mechanism == "cost_based"
    assert [p.name for p in s.producers] == ["north_wind", "north_lignite", "north_gas",
                                             "south_ccgt"]
    assert [ln.name for ln in s.lines] == ["north_south"]


def test_the_shipped_competitive_case_extends_the_incdec_case():
    s = resolve("two_node_competitive")
    parent = resolve("two_node_incdec")
    assert (s.episodes, len(s.producers)) == (40, 10)
    assert s.loads == parent.loads and s.lines == parent.lines and s.nodes == parent.nodes


def test_both_kinds_share_the_summary_names_of_the_same_quantities():
    r = run_scenario("wholesale_week", write=False)
    for key in SHARED:
        _get(r.summary, key)
    assert r.summary["system_cost_eur"] == r.summary["system_cost"]["run"]["fuel_eur"]
    assert r.summary["cost_efficiency"] == pytest.approx(1.0)    # no lines: the optimum
    assert r.summary["run"]["mtu_minutes"] == 60


def test_one_run_path_writes_a_folder_its_config_reproduces(tmp_path):
    plan = plan_run("two_node_incdec", out=tmp_path / "a")
    assert plan.kind == "transmission" and plan.headline().startswith("transmission run ")
    assert main(["run", "two_node_incdec", "--out", str(tmp_path / "a"), "-q"]) == 0
    assert main(["run", str(tmp_path / "a" / "config.yaml"), "--out", str(tmp_path / "b"),
                 "-q"]) == 0
    a, b = (json.loads((tmp_path / n / "summary.json").read_text()) for n in "ab")
    assert a["run"]["id"].split("-")[-1] == b["run"]["id"].split("-")[-1]
    assert a["twin"] == b["twin"] and a["system_cost_eur"] == b["system_cost_eur"]
    assert {p.name for p in (tmp_path / "a").iterdir()} == {
        "config.yaml", "summary.json", "periods.parquet", "producers.parquet", "ledger.parquet"}


def test_one_twin_path_for_a_transmission_scenario(tmp_path):
    rep = run_twin("two_node_incdec", out=tmp_path / "t")
    assert isinstance(rep, TransmissionTwin)
    assert set(rep.summary["gaming_profit_eur"]) == {"north_gas", "south_ccgt"}
    assert (tmp_path / "t" / "twin.json").is_file()
    assert rep.lines("two_node_incdec", tmp_path / "t")[-1] == f"  report in {tmp_path / 't'}"


def test_a_transmission_run_loads_no_distribution_grid_stack():
    import subprocess
    import sys
    from pathlib import Path

    code = ("import sys; from experiments.run import run_scenario; "
            "run_scenario('wholesale_week', write=False); "
            "print(','.join(m for m in ('pandapower', 'simbench', 'numba', 'environment.model') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).parent.parent,
                         capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""


def test_no_planner_is_refused_for_a_transmission_scenario(tmp_path, capsys):
    """Its optimum is part of every transmission run: the flag could not act, so it stops
    before any work instead of being ignored."""
    assert main(["run", "two_node_incdec", "--no-planner", "--out", str(tmp_path / "a")]) == 2
    assert "--no-planner" in capsys.readouterr().err
    assert not (tmp_path / "a").exists()
