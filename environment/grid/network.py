"""Radial distribution grids from simbench benchmark networks, in the form LinDistFlow needs.

A grid is a tree rooted at the slack (ext_grid) bus. Internal buses are numbered in
depth-first preorder, so every subtree is a contiguous index range and branch ``l`` always
feeds bus ``l + 1``; the downstream matrix (built on first use) and the DSO locations follow
from that tree. `environment.grid.from_pandapower` builds it from a pandapower net.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property

import numpy as np

DEFAULT_V_MIN_PU = 0.9
DEFAULT_V_MAX_PU = 1.1
TRAFO_LOCATION = "trafo"



@dataclass(frozen=True, eq=False)
class Grid:
    """Immutable radial grid; internal bus 0 is the slack, branch ``l`` ends at bus ``l + 1``.

    Arrays are read-only because grids are cached and shared between agents.
    Impedances are per unit on a 1 MVA base so that flows in MW/Mvar are flows in pu.

    Less obvious fields: ``v0_pu`` is the no-load voltage per bus (slack voltage divided by the
    off-nominal ``tap_ratio`` of the trafos on its path), the base LinDistFlow starts from;
    ``branch_pp_reversed`` marks branches whose pandapower from/hv end is downstream;
    ``branch_pp_members`` lists the pandapower indices folded into one branch (twin trafos);
    ``pp_bus_map`` maps every kept pandapower bus, merged ones included, to its internal bus.
    """

    code: str
    bus_names: tuple[str, ...]
    bus_pp_index: np.ndarray
    vn_kv: np.ndarray
    v_min_pu: np.ndarray
    v_max_pu: np.ndarray
    depth: np.ndarray
    parent_bus: np.ndarray
    branch_from: np.ndarray
    branch_to: np.ndarray
    branch_names: tuple[str, ...]
    branch_kind: np.ndarray
    branch_pp_index: np.ndarray
    branch_pp_members: tuple[tuple[int, ...], ...]
    branch_pp_reversed: np.ndarray
    r_pu: np.ndarray
    x_pu: np.ndarray
    s_max_mva: np.ndarray
    tap_ratio: np.ndarray
    v_slack_pu: float
    v0_pu: np.ndarray
    locations: tuple[str, ...]
    branch_location: np.ndarray
    bus_location: np.ndarray
    xy: np.ndarray
    bus_index: Mapping[str, int]
    pp_bus_map: Mapping[int, int]

    @cached_property
    def downstream(self) -> np.ndarray:
        """(L, B) 0/1: branch ``l`` carries the consumption of bus ``b``. Built on first use
        (B x L floats: 660 MB on a 9,102-bus MV+LV grid); tree sweeps need only ``parent_bus``
        (``environment.grid.radial``)."""
        n = self.n_bus
        size = np.ones(n, dtype=np.int64)
        for j in range(n - 1, 0, -1):
            size[self.parent_bus[j]] += size[j]
        down = np.zeros((n - 1, n))
        for j in range(1, n):
            down[j - 1, j : j + size[j]] = 1.0
        return readonly(down)

    @property
    def n_bus(self) -> int:
        return len(self.bus_names)

    @property
    def n_branch(self) -> int:
        return len(self.branch_names)

    @property
    def n_locations(self) -> int:
        return len(self.locations)

    def load_bus(self, pp_bus_index):
        """Internal bus of a pandapower bus index (scalar or array); merged buses map together."""
        if np.ndim(pp_bus_index) == 0:
            key = int(pp_bus_index)
            if key not in self.pp_bus_map:
                raise KeyError(f"{self.code}: pandapower bus {key} is not part of the grid")
            return self.pp_bus_map[key]
        buses = np.asarray(pp_bus_index).ravel()
        return np.array([self.load_bus(b) for b in buses], dtype=np.int64)

    def incidence(self, pp_bus_indices) -> np.ndarray:
        """(E, B) 0/1 matrix so that element powers ``(T, E) @ M`` sum to per-bus powers."""
        buses = self.load_bus(np.asarray(pp_bus_indices).ravel())
        m = np.zeros((len(buses), self.n_bus))
        m[np.arange(len(buses)), buses] = 1.0
        return m

    def location_buses(self, location: int | str) -> np.ndarray:
        """Internal bus indices that belong to a location (by index or name)."""
        k = self.locations.index(location) if isinstance(location, str) else location
        return np.flatnonzero(self.bus_location == k)

    def location_branches(self, location: int | str) -> np.ndarray:
        """Branch indices that belong to a location (by index or name)."""
        k = self.locations.index(location) if isinstance(location, str) else location
        return np.flatnonzero(self.branch_location == k)


def readonly(a: np.ndarray) -> np.ndarray:
    """A read-only contiguous copy (or view) of `a`: grids are cached and shared."""
    a = np.ascontiguousarray(a)
    a.setflags(write=False)
    return a
