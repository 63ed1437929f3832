"""What the command line prints of a run: the one place that reads summary keys for it.

Numbers are printed as they are, to two decimals at most (4.5 MWh stays 4.5, 85.5 EUR stays
85.5, a residual of -1.7e-14 is 0), with an explicit sign where a change is meant."""

from __future__ import annotations

import math


def num(x: float | None, digits: int = 2) -> str:
    """x with thousands separators and at most `digits` decimals, trailing zeros dropped."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    if abs(x) >= 1e5:
        return f"{x:,.0f}"
    text = f"{x:,.{digits}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def signed(x: float | None, digits: int = 2) -> str:
    """num(x) with a + for a positive change."""
    text = num(x, digits)
    return text if text in ("0", "n/a") or text.startswith("-") else "+" + text


def _overrides(run: dict) -> list[str]:
    changes = run.get("overrides") or {}
    if not changes:
        return []
    return ["  overrides: " + ", ".join(f"{k}={v}" for k, v in changes.items())]


def run_lines(s: dict, out_dir=None) -> list[str]:
    """The summary of a run of either kind (a transmission run's names its periods)."""
    return (tx_lines if "periods" in s["run"] else distribution_lines)(s, out_dir)


def distribution_lines(s: dict, out_dir=None) -> list[str]:
    """The summary of a distribution-grid run: efficiency first when the planner ran."""
    run = s["run"]
    lines = [f"run {run.get('id', run['scenario'])}: {run['days']} days from {run['start']}, "
             f"{run['prosumers']} prosumers on {run['grid']}"]
    lines += _overrides(run)
    if s.get("cost_efficiency") is not None:
        lines.append(f"  efficiency {s['cost_efficiency']:.4f} (planner's system cost over the "
                     f"run's): system cost {num(s['system_cost_eur'])} EUR, planner "
                     f"{num(s['planner_system_cost_eur'])} EUR")
    elif "system_cost_eur" in s:
        lines.append(f"  system cost {num(s['system_cost_eur'])} EUR (planner off: no "
                     "efficiency)")
    lines += _region_lines(s)
    w = s["welfare_eur"]
    lines += [
        f"  welfare {num(w['total'])} EUR",
        f"  DA price mean {num(s['da_price_eur_mwh']['mean'])} EUR/MWh "
        f"(min {num(s['da_price_eur_mwh']['min'])}, max {num(s['da_price_eur_mwh']['max'])})",
        f"  imbalance {num(s['imbalance']['system_abs_mwh'])} MWh, traffic light "
        f"GREEN/YELLOW/RED {s['congestion']['green']}/{s['congestion']['yellow']}/"
        f"{s['congestion']['red']} MTU-locations",
    ]
    if run.get("profile_year"):
        lines.append(f"  {run['profile_year']}")
    lines.append(f"  wall {s['timing']['wall_s']:.1f} s, solver {s['timing']['solver_s']:.1f} s")
    if out_dir is not None:
        lines.append(f"  results in {out_dir}")
    return lines


def _region_lines(s: dict) -> list[str]:
    """A price-taking region's own figures, so that the nation's fuel and forecast errors in
    the system-wide lines below do not hide them."""
    if "region" not in s:
        return []
    r, n = s["region"], s["national"]
    return [f"  region: cost of supply {num(r['cost_of_supply_eur'])} EUR for "
            f"{num(r['net_import_mwh'])} MWh imported, imbalance "
            f"{num(r['imbalance_abs_mwh'])} MWh, DSO cost {num(r['dso_cost_eur'])} EUR",
            f"  the national system it takes its price from (counted in the system-wide figures): "
            f"fuel {num(n['fuel_eur'])} EUR, load {num(n['load_mwh'])} MWh, imbalance "
            f"{num(n['imbalance_abs_mwh'])} MWh"]


def tx_lines(s: dict, out_dir=None) -> list[str]:
    """The summary of a transmission (or wholesale-only) run and its truthful twin."""
    run = s["run"]
    lines = [f"transmission run {run.get('id', run['scenario'])}: {run['episodes']} "
             f"episode{'s' if run['episodes'] != 1 else ''} x {run['periods']} hourly periods"
             + (f" from {str(run['start'])[:16]}" if run.get("start") else "")
             + f", nodes {', '.join(run['nodes'])}"]
    lines += _overrides(run)
    p = s["da_price_eur_mwh"]
    planner = (f", planner {num(s['planner_system_cost_eur'])} EUR"
               if "planner_system_cost_eur" in s else " (no planner of all tiers yet)")
    lines.append(f"  DA price mean {num(p['mean'])} EUR/MWh (min {num(p['min'])}, max "
                 f"{num(p['max'])}); fuel {num(s['system_cost_eur'])} EUR{planner}")
    rd = s["redispatch"]
    lines.append(f"  redispatch {num(rd['mwh'])} MWh costing {num(rd['cost_eur'])} EUR"
                 if run.get("lines") else "  no lines: no redispatch")
    lines += regional_lines(s.get("regional"))
    if "local" in s:
        lines += tier_lines(s)
    else:
        lines += twin_lines(s.get("twin"))
    if out_dir is not None:
        lines.append(f"  results in {out_dir}")
    return lines


def regional_lines(r: dict | None) -> list[str]:
    """Zones, interconnectors and the regional balance place (scenarios with zones)."""
    if not r:
        return []
    zones = ", ".join(f"{z} {num(v['da_price_eur_mwh']['mean'])}" for z, v in r["zones"].items())
    lines = [f"  zones (mean DA price, EUR/MWh): {zones}"]
    lines += [f"  interconnector {name}: {num(ic['flow_mwh'])} MWh {ic['from']} -> {ic['to']}, "
              f"at its limit {ic['hours_at_limit']} h, congestion rent "
              f"{num(ic['congestion_rent_eur'])} EUR" for name, ic in r["interconnectors"].items()]
    b = r["balancing"]
    lines.append(f"  balancing {num(r['imbalance_mwh'])} MWh of imbalance: alone "
                 f"{num(b['alone_eur'])} EUR, shared ({r['sharing']}) {num(b['shared_eur'])} "
                 f"EUR, value of sharing {num(b['value_eur'])} EUR ("
                 + ", ".join(f"{t} {num(v['value_eur'])}" for t, v in b["by_tso"].items())
                 + ")")
    return lines


def tier_lines(s: dict) -> list[str]:
    """The national places (a zone's TSO) and the local places (a region's DSO) of a run with
    distribution regions under transmission nodes."""
    n = s["national"]
    lines = [f"  national: fuel {num(n['fuel_eur'])} EUR, load {num(n['load_mwh'])} MWh, "
             f"imbalance {num(n['imbalance_abs_mwh'])} MWh"]
    lines += [f"    {z} ({v['tso']}): DA price {num(v['da_price_eur_mwh'])} EUR/MWh, "
              f"redispatch {num(v['redispatch_cost_eur'])} EUR, balancing "
              f"{num(v['balancing_cost_eur'])} EUR, regions' DA import "
              f"{num(v['regions_da_import_mwh'])} MWh and deviation "
              f"{num(v['regions_deviation_abs_mwh'])} MWh" + passed_up_text(v.get("passed_up"))
              for z, v in n["zones"].items()]
    lines.append("  local:")
    lines += [f"    {r} ({v['dso']}, {v['coupling']}, {v['prosumers']} prosumers at "
              f"{v['node']}): LFM {num(v['lfm_mwh'])} MWh, DSO cost {num(v['dso_cost_eur'])} "
              f"EUR, YELLOW/RED {v['congestion']['yellow']}/{v['congestion']['red']} "
              f"MTU-locations, DA import {num(v['da_import_mwh'])} MWh at "
              f"{num(v['da_price_eur_mwh'])} EUR/MWh, deviation {num(v['deviation_abs_mwh'])} "
              "MWh" for r, v in s["local"].items()]
    return lines


def passed_up_text(p: dict | None) -> str:
    """The national place's figures of a zone (regions with pass_up), or nothing."""
    if not p:
        return ""
    return (f"; passed up by {', '.join(p['regions'])}: {num(p['offered_mwh'])} MWh offered "
            f"({num(p['cut_by_dso_mwh'])} cut by the DSOs), "
            f"{num(p['activated_up_mwh'] + p['activated_down_mwh'])} MWh activated for "
            f"{num(p['cost_eur'])} EUR, value {num(p['value_eur'])} EUR")


def twin_lines(t: dict | None) -> list[str]:
    if t is None:
        return ["  no strategic producer: no truthful twin to compare with"]
    gaming = t["gaming_profit_eur"]
    lines = [f"  against the truthful twin (same seed; truthful: "
             f"{', '.join(t['truthful_in_twin'])}):"]
    lines += [f"    gaming profit of {name}: {signed(eur)} EUR" for name, eur in gaming.items()]
    others = t.get("other_producers_profit_change_eur", {})
    if any(abs(v) > 0.005 for v in others.values()):
        lines.append("    profit change of the other producers: "
                     + ", ".join(f"{k} {signed(v)}" for k, v in others.items()) + " EUR")
    lines += [f"    grid operator's redispatch cost: {signed(t['grid_operator_extra_cost_eur'])} "
              "EUR",
              f"    consumers' bill: {signed(t['consumer_bill_change_eur'])} EUR",
              f"    welfare lost (extra fuel): {num(t['welfare_lost_eur'])} EUR"]
    return lines
