"""`devices: simbench`: households take the PV, batteries, EVs and heat pumps the grid data places
at their connection points, split evenly where several share a bus; the option is refused where
it cannot act, as are the drawn-device settings it does not read."""

from __future__ import annotations

import datetime as dt
import re

import numpy as np
import pandapower as pp
import pytest
import yaml

from agents.prosumer import ProsumerFleet
from agents.prosumer_devices import connection_devices, household_connections
from environment.calendar import Calendar
from environment.errors import ScenarioError
from environment.grid.from_pandapower import grid_from_pandapower, simbench_net
from environment.inputs import household_devices, load_grid
from environment.profiles import ProfileBank, simbench_profiles
from environment.scenario import ProsumerGroup, load_scenario, parse_scenario, with_overrides
from environment.scenario_files import find_scenario
from experiments.run import run_scenario

SIMBENCH_DEVICES = {"name": "households", "count": 32, "connections": "each",
                    "devices": "simbench"}


def _street() -> pp.pandapowerNet:
    """An MV/LV substation and three LV buses: bus A with two households, a 6 kWp PV and a
    4 kW heat pump; bus B with one household, a 5 kW / 10 kWh PV-battery system, two home
    chargers (3.7 and 11 kW) and a workplace charger; bus C with a shop and a 10 kWp PV."""
    net = pp.create_empty_network()
    mv = pp.create_bus(net, 20.0, name="MV")
    lv = pp.create_bus(net, 0.4, name="LV busbar")
    a, b, c = (pp.create_bus(net, 0.4, name=n) for n in ("A", "B", "C"))
    pp.create_ext_grid(net, mv)
    pp.create_transformer(net, mv, lv, "0.63 MVA 20/0.4 kV")
    for bus in (a, b, c):
        pp.create_line(net, lv, bus, 0.1, "NAYY 4x150 SE")
    loads = [(a, 0.003, "H0-A"), (a, 0.002, "H0-B"), (a, 0.004, "Air_Parallel_1"),
             (b, 0.003, "H0-C"), (b, 0.0037, "HLS_A_3.7"), (b, 0.011, "HLS_A_11.0"),
             (b, 0.011, "APLS_A_11.0"), (c, 0.02, "G1-A")]
    for bus, p, _ in loads:
        pp.create_load(net, bus, p)
    net.load["profile"] = [p for *_, p in loads]
    pp.create_sgen(net, a, 0.006, type="PV")
    pp.create_sgen(net, c, 0.010, type="PV")
    net.sgen["profile"] = ["PV3", "PV1"]
    pp.create_storage(net, b, -0.005, 0.010, type="PV_Storage")
    net.storage["profile"] = ["Storage_PV5_H0-A"]
    return net


def test_devices_at_a_bus_are_split_evenly_among_its_households():
    net = _street()
    grid = grid_from_pandapower(net, "street")
    loads = net.load[["bus", "p_mw", "profile"]]
    owned = connection_devices(grid, loads, household_devices(net))
    # households in the grid's order: the two at bus A, then the one at bus B
    np.testing.assert_allclose(owned.pv_mw, [0.003, 0.003, 0.005])
    assert list(owned.pv_profile) == ["PV3", "PV3", "PV5"]   # the storage's PV is PV5
    np.testing.assert_allclose(owned.hp_mw, [0.002, 0.002, 0.0])
    assert list(owned.hp_profile) == ["Air_Parallel_1", "Air_Parallel_1", ""]
    np.testing.assert_allclose(owned.batt_mwh, [0.0, 0.0, 0.010])
    np.testing.assert_allclose(owned.batt_mw, [0.0, 0.0, 0.005])
    # two home chargers, one household: their ratings add up, their profiles blend by rating;
    # the workplace charger is no household's
    np.testing.assert_allclose(owned.ev_mw, [0.0, 0.0, 0.0147])
    (mix, recipe), = owned.mixes.items()
    assert owned.ev_profile[2] == mix
    assert dict(recipe) == pytest.approx({"HLS_A_3.7": 3.7 / 14.7, "HLS_A_11.0": 11 / 14.7},
                                         abs=1e-6)
    assert owned.unplaced == {"pv": 0.010, "battery": 0.0, "ev": 0.0, "heat_pump": 0.0}

    # the fleet takes them as they are; the blended profile is the chargers' sum
    group = ProsumerGroup(**{**SIMBENCH_DEVICES, "count": 3})
    calendar = Calendar(dt.date(2016, 1, 11), 1, 15, 12)
    names = [*group.load_profiles, *group.pv.profiles, *group.ev.profiles,
             *group.heat_pump.profiles, *owned.profile_names, "HLS_A_3.7", "HLS_A_11.0"]
    bank = ProfileBank(names, calendar, mixes=owned.mixes)
    fleet = ProsumerFleet([group], grid, loads, bank.names, np.random.default_rng(1),
                          np.array([1.0]), owned)
    np.testing.assert_allclose(fleet.pv_mw, owned.pv_mw)
    np.testing.assert_allclose(fleet.batt_mw, owned.batt_mw)
    assert fleet.pv_mw[:2].sum() == pytest.approx(0.006)      # the bus keeps its 6 kWp
    ev = fleet.day_profiles(bank, 0).ev[2]
    shift = fleet.shift[2]
    both = (0.0037 * bank.day(bank.index["HLS_A_3.7"], 0, shift)
            + 0.011 * bank.day(bank.index["HLS_A_11.0"], 0, shift))
    np.testing.assert_allclose(ev, both, atol=1e-9)
    assert ev.sum() > 0


def test_the_fleet_holds_the_grid_datas_devices_at_household_buses(default_data):
    """On a simbench LV grid where two buses have two households each: the fleet's totals
    are those of the pandapower tables at household buses, recomputed here from the tables."""
    code = "1-LV-semiurb4--2-sw"
    default_data["grid"]["simbench_code"] = code
    default_data["prosumers"] = [SIMBENCH_DEVICES]
    s = parse_scenario(default_data)
    from environment.model import FlexMarketModel

    fleet = FlexMarketModel(s).fleet
    net = simbench_net(code)
    profile = net.load.profile.astype(str)
    homes = set(net.load.bus[profile.str.startswith("H0")])
    at_home = {t: net[t][net[t].bus.isin(homes)] for t in ("load", "sgen", "storage")}
    load_profile = at_home["load"].profile.astype(str)
    storage = at_home["storage"][at_home["storage"].type == "PV_Storage"]
    expected = {
        "pv": at_home["sgen"].p_mw[at_home["sgen"].type == "PV"].sum() + storage.p_mw.abs().sum(),
        "batt_mwh": storage.max_e_mwh.sum(),
        "ev": at_home["load"].p_mw[load_profile.str.startswith("HLS_")].sum(),
        "hp": at_home["load"].p_mw[load_profile.str.startswith(("Air_", "Soil_"))].sum()}
    assert fleet.n == 32 and len(homes) == 30
    assert fleet.pv_mw.sum() == pytest.approx(expected["pv"])
    assert fleet.batt_mwh.sum() == pytest.approx(expected["batt_mwh"])
    assert fleet.batt_mw.sum() == pytest.approx(storage.p_mw.abs().sum())
    assert fleet.ev_mw.sum() == pytest.approx(expected["ev"])
    assert fleet.hp_mw.sum() == pytest.approx(expected["hp"])
    assert min(expected.values()) > 0
    # nothing drawn: the same fleet whatever the seed
    again = FlexMarketModel(s, seed=7).fleet
    for key in ("pv_mw", "batt_mwh", "ev_mw", "hp_mw"):
        np.testing.assert_array_equal(getattr(again, key), getattr(fleet, key))
    # and what is drawn after the devices (time shifts, suppliers, and later the forecast
    # errors) is what the same scenario with drawn devices draws
    default_data["prosumers"] = [{**SIMBENCH_DEVICES, "devices": "drawn"}]
    drawn = FlexMarketModel(parse_scenario(default_data)).fleet
    np.testing.assert_array_equal(drawn.shift, fleet.shift)
    np.testing.assert_array_equal(drawn.brp, fleet.brp)
    assert not np.array_equal(drawn.pv_mw, fleet.pv_mw)


def test_a_day_runs_on_simbench_devices(tmp_path, default_data):
    default_data["grid"]["simbench_code"] = "1-LV-semiurb4--2-sw"
    default_data["prosumers"] = [SIMBENCH_DEVICES]
    path = tmp_path / "street.yaml"
    path.write_text(yaml.safe_dump(default_data))
    r = run_scenario(str(path), days=1, overrides={"calendar.mtu_minutes": 60}, write=False,
                     figures=False)
    assert r.summary["run"]["prosumers"] == 32
    assert sum(r.summary["run"]["aggregated_devices"].values()) > 0


@pytest.mark.parametrize(("change", "field", "value"), [
    ({"connections": "weighted"}, "prosumers[0].devices", "'simbench'"),
    ({"pv": {"share": 0.5}}, "prosumers[0].pv.share", "0.5"),
    ({"battery": {"duration_h": 4.0}}, "prosumers[0].battery.duration_h", "4.0"),
    ({"ev": {"charger_kw": {"HLS_A_3.7": 7.4}}}, "prosumers[0].ev.charger_kw", "{'HLS_A_3.7'"),
    ({"heat_pump": {"profiles": ["Air_Parallel_2"]}}, "prosumers[0].heat_pump.profiles",
     "['Air_Parallel_2']"),
])
def test_simbench_devices_refuse_what_cannot_act(default_data, change, field, value):
    default_data["prosumers"] = [{**SIMBENCH_DEVICES, **change}]
    with pytest.raises(ScenarioError, match=re.escape(f"{field} = {value}")):
        parse_scenario(default_data)


def test_what_still_acts_on_simbench_devices_is_accepted(default_data):
    default_data["prosumers"] = [{**SIMBENCH_DEVICES, "battery": {"efficiency": 0.9},
                                  "ev": {"parking_hours": 4.0},
                                  "heat_pump": {"storage_hours": 1.0}}]
    assert parse_scenario(default_data).prosumers[0].devices == "simbench"


def test_the_region_takes_simbench_devices_and_refuses_a_share():
    s = load_scenario(find_scenario("region"))
    assert s.prosumers[0].devices == "simbench"
    with pytest.raises(ScenarioError, match=r"prosumers\[0\]\.ev\.share = 0\.45: cannot act"):
        with_overrides(s, {"prosumers.0.ev.share": 0.45})


def test_the_mixed_profile_is_the_weighted_sum():
    sb = simbench_profiles()
    recipe = (("HLS_A_11.0", 0.75), ("HLS_A_3.7", 0.25))
    bank = ProfileBank(["mix"], Calendar(dt.date(2016, 1, 11), 1, 15, 12),
                       mixes={"mix": recipe})
    np.testing.assert_allclose(bank.matrix[0], np.clip(
        0.75 * sb["HLS_A_11.0"] + 0.25 * sb["HLS_A_3.7"], 0, None))


def test_household_connections_are_the_h0_loads_in_grid_order(default_data):
    s = parse_scenario(default_data)
    grid, loads, devices = load_grid(s)
    buses, weights, profiles = household_connections(grid, loads)
    assert len(buses) == 92 and weights.sum() == pytest.approx(1.0)
    assert all(p.startswith("H0") for p in profiles)
    assert set(devices.kind) == {"pv", "battery", "ev", "heat_pump"}


def test_a_rollout_adds_devices_only_to_households_without_one(default_data):
    """`rollout` on simbench's devices: the households that own a kind in the grid data keep
    it as it is; of the others a share gets one, sized by the group's settings of that kind,
    by the same draws a drawn fleet makes (so the random numbers after them stay the same)."""
    from environment.model import FlexMarketModel

    default_data["grid"]["simbench_code"] = "1-LV-semiurb4--2-sw"
    default_data["prosumers"] = [SIMBENCH_DEVICES]
    plain = FlexMarketModel(parse_scenario(default_data)).fleet
    default_data["prosumers"] = [{**SIMBENCH_DEVICES, "rollout": {"heat_pump": 1.0, "ev": 0.5},
                                  "heat_pump": {"kw_mean": 9.0, "kw_sd": 0.0}}]
    fleet = FlexMarketModel(parse_scenario(default_data)).fleet
    had = {k: getattr(plain, k) > 0 for k in ("hp_mw", "ev_mw", "pv_mw", "batt_mwh")}
    assert 0 < had["hp_mw"].sum() < fleet.n and 0 < had["ev_mw"].sum() < fleet.n
    for key in ("hp_mw", "ev_mw"):      # owners keep the grid data's
        np.testing.assert_array_equal(getattr(fleet, key)[had[key]],
                                      getattr(plain, key)[had[key]])
    # every household without a heat pump gets one of 9 kW (share 1, kw_sd 0)
    np.testing.assert_allclose(fleet.hp_mw[~had["hp_mw"]], 0.009)
    # of those without a charger, the ones whose draw falls below 0.5
    new_ev = (fleet.ev_mw > 0) & ~had["ev_mw"]
    assert 0 < new_ev.sum() < (~had["ev_mw"]).sum()
    assert set(np.round(fleet.ev_mw[new_ev] * 1e3, 1)) <= {3.7, 11.0}
    # kinds without a rollout stay as the grid data has them
    np.testing.assert_array_equal(fleet.pv_mw, plain.pv_mw)
    np.testing.assert_array_equal(fleet.batt_mwh, plain.batt_mwh)
    np.testing.assert_array_equal(fleet.shift, plain.shift)
    np.testing.assert_array_equal(fleet.brp, plain.brp)


@pytest.mark.parametrize(("group", "field", "says"), [
    ({"name": "h", "count": 10, "rollout": {"ev": 0.3}}, "prosumers[0].rollout.ev = 0.3",
     "needs devices 'simbench'"),
    ({**SIMBENCH_DEVICES, "rollout": {"ev": 0.3}, "ev": {"share": 0.45}},
     "prosumers[0].ev.share = 0.45", "a rollout beyond it is rollout.ev"),
    ({**SIMBENCH_DEVICES, "rollout": {"ev": 0.3}, "heat_pump": {"kw_mean": 5.0}},
     "prosumers[0].heat_pump.kw_mean = 5.0", "cannot act"),
    ({**SIMBENCH_DEVICES, "rollout": {"ev": 1.5}}, "prosumers[0].rollout.ev", ""),
])
def test_a_rollout_refuses_what_cannot_act(default_data, group, field, says):
    default_data["prosumers"] = [group]
    with pytest.raises(ScenarioError, match=re.escape(field) + ".*" + re.escape(says)):
        parse_scenario(default_data)


def test_a_rollout_reads_the_size_settings_of_its_kinds(default_data):
    default_data["prosumers"] = [{**SIMBENCH_DEVICES, "rollout": {"heat_pump": 0.4},
                                  "heat_pump": {"kw_mean": 5.0,
                                                "profiles": ["Air_Parallel_2"]}}]
    assert parse_scenario(default_data).prosumers[0].rollout.heat_pump == 0.4
