"""Tree sweeps on a radial grid: LinDistFlow in time and memory linear in the number of buses.

Buses are numbered in depth-first preorder (``environment.grid.network``): bus 0 is the slack,
branch ``l`` feeds bus ``l + 1``, every parent has a lower number than its children and every
subtree is the contiguous range ``[j, end[j])``. Then

* a branch flow is the sum of the consumption below it: a backward sweep, deepest level first,
  adds each bus's subtree sum to its parent's (``down_sum``);
* a squared voltage falls along the path from the slack: a forward sweep, shallowest level
  first, adds each branch's drop to its parent bus's value (``path_sum``);
* an entry of the common-path resistance ``R[a, b]`` (``R = D' diag(r) D`` with ``D`` the
  dense branch-by-bus downstream matrix) is the path resistance of the buses' deepest common
  ancestor (``common``), and a row of ``R`` is one forward sweep (``path_rows``).

Each sweep is one compiled pass over the buses per column (an MTU), in either layout: bus-major
(B, N) (``down_sum``, ``path_sum``) or MTU-major (N, B) (``flows``, ``drops``), which the power
flow reads without transposing; no (B, L) matrix is ever formed. A parent adds its children's
sums in the order numpy's level-by-level ``add.reduceat`` did (the first child, plus the
others' pairwise sum), so the numbers are those of the vectorised sweeps bit for bit."""

from __future__ import annotations

import numpy as np
from numba import njit


class RadialSweeps:
    """Levels of a preorder-numbered tree given by ``parent`` (``parent[0] = -1``)."""

    def __init__(self, parent: np.ndarray):
        parent = np.asarray(parent, dtype=np.int64)
        n = len(parent)
        if n < 1 or parent[0] != -1 or (n > 1 and not (parent[1:] < np.arange(1, n)).all()):
            raise ValueError("parent must describe a tree numbered in depth-first preorder")
        depth = np.zeros(n, dtype=np.int64)
        size = np.ones(n, dtype=np.int64)
        for j in range(1, n):
            depth[j] = depth[parent[j]] + 1
        for j in range(n - 1, 0, -1):
            size[parent[j]] += size[j]
        self.parent = parent
        self.depth = depth
        self.end = np.arange(n) + size
        # per depth level: its buses (in preorder, so grouped by parent, parents increasing),
        # their parents, the distinct parents and where each parent's children start
        self.levels = []
        order = np.argsort(depth, kind="stable")
        bounds = np.searchsorted(depth[order], np.arange(1, depth.max() + 2))
        for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
            buses = order[lo:hi]
            up = parent[buses]
            starts = np.flatnonzero(np.r_[True, up[1:] != up[:-1]])
            self.levels.append((buses, up, up[starts], starts))
        # children of each bus in preorder (CSR), and the buses with children, deepest last
        # in preorder: a reverse pass over them meets every child's subtree summed
        self.child_ptr = np.r_[0, np.cumsum(np.bincount(parent[1:], minlength=n))]
        self.children = np.arange(1, n)[np.argsort(parent[1:], kind="stable")]
        self.parents_rev = np.flatnonzero(np.diff(self.child_ptr))[::-1].copy()

    @property
    def n_bus(self) -> int:
        return len(self.parent)

    def down_sum(self, y: np.ndarray) -> np.ndarray:
        """(L, N) sum over each branch's downstream buses of ``y`` (B, N)."""
        y = np.asarray(y, dtype=float)
        flat = y.reshape(self.n_bus, -1)
        out = np.empty((flat.shape[1], self.n_bus - 1))
        _down_rows(np.ascontiguousarray(flat.T), self.parents_rev, self.child_ptr,
                   self.children, out)
        return np.ascontiguousarray(out.T).reshape(self.n_bus - 1, *y.shape[1:])

    def path_sum(self, z: np.ndarray) -> np.ndarray:
        """(B, N) sum of ``z`` (L, N) over the branches on each bus's path from the slack."""
        z = np.asarray(z, dtype=float)
        flat = z.reshape(self.n_bus - 1, -1)
        out = np.empty((flat.shape[1], self.n_bus))
        _path_rows(np.ascontiguousarray(flat.T), self.parent, out)
        return np.ascontiguousarray(out.T).reshape(self.n_bus, *z.shape[1:])

    def flows(self, y: np.ndarray) -> np.ndarray:
        """``down_sum`` in MTU-major layout: (N, L) from ``y`` (N, B)."""
        out = np.empty((y.shape[0], self.n_bus - 1))
        _down_rows(np.ascontiguousarray(y, dtype=float), self.parents_rev, self.child_ptr,
                   self.children, out)
        return out

    def drops(self, z: np.ndarray) -> np.ndarray:
        """``path_sum`` in MTU-major layout: (N, B) from ``z`` (N, L)."""
        out = np.empty((z.shape[0], self.n_bus))
        _path_rows(np.ascontiguousarray(z, dtype=float), self.parent, out)
        return out

    def power_flow(self, p: np.ndarray, q: np.ndarray, r: np.ndarray, x: np.ndarray,
                   inv_s_max: np.ndarray, w0: np.ndarray):
        """LinDistFlow of (N, B) consumption `p`, `q` in one compiled pass: branch flows
        (N, L), loadings (flow magnitude x `inv_s_max`) and voltages (N, B) from the squared
        no-load voltages `w0` less 2 (r P + x Q) along each path, clipped at zero. The
        operations are `LinDistFlow.solve`'s, in its order."""
        n, n_br = p.shape[0], self.n_bus - 1
        fp, fq, loading = np.empty((n, n_br)), np.empty((n, n_br)), np.empty((n, n_br))
        v = np.empty((n, self.n_bus))
        # either memory layout: the DSO's nodal tables are transposed (column-major) views
        _flow_rows(np.asarray(p, dtype=float), np.asarray(q, dtype=float), self.parent,
                   self.parents_rev, self.child_ptr, self.children, r, x, inv_s_max, w0, fp, fq,
                   loading, v)
        return fp, fq, loading, v

    def span(self, buses: np.ndarray) -> Span:
        """The subtree made of the paths from the slack to ``buses``."""
        return Span(self, buses)

    def path_mask(self, buses: np.ndarray) -> np.ndarray:
        """(n, L) True on the branches of each bus's path from the slack."""
        buses = np.asarray(buses, dtype=np.int64).ravel()
        mask = np.zeros((len(buses), self.n_bus - 1), dtype=bool)
        row, u = np.arange(len(buses)), buses.copy()
        while (live := u > 0).any():
            mask[row[live], u[live] - 1] = True
            u[live] = self.parent[u[live]]
        return mask

    def path_rows(self, weights: np.ndarray, buses: np.ndarray) -> np.ndarray:
        """(n, B) rows ``buses`` of ``D' diag(weights) D``: entry b of row a sums ``weights``
        (L,) over the branches common to the paths of a and b."""
        z = self.path_mask(buses) * np.asarray(weights, dtype=float)[None, :]
        return np.ascontiguousarray(self.path_sum(z.T).T)

    def ancestor(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Deepest common ancestor of buses ``a`` and ``b`` (elementwise)."""
        a, b = np.broadcast_arrays(np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64))
        u, b = a.ravel().copy(), b.ravel()
        while (out := ~((u <= b) & (b < self.end[u]))).any():
            u[out] = self.parent[u[out]]
        return u.reshape(a.shape)

    def subtree_rows(self, branches: np.ndarray) -> np.ndarray:
        """(n, B) rows ``branches`` of the downstream matrix: 1 on the buses the branch feeds."""
        branches = np.asarray(branches, dtype=np.int64).ravel()
        cols = np.arange(self.n_bus)
        first = branches + 1
        return ((cols >= first[:, None]) & (cols < self.end[first][:, None])).astype(float)


class CommonPath:
    """``R[a, b]`` of ``D' diag(weights) D`` read elementwise (``R[rows, cols]``) or by rows
    (``R[rows]``) without forming the (B, B) matrix."""

    def __init__(self, sweeps: RadialSweeps, weights: np.ndarray):
        self.sweeps = sweeps
        self.weights = np.asarray(weights, dtype=float)
        self.to_bus = sweeps.path_sum(self.weights)   # path weight from the slack per bus

    @property
    def shape(self) -> tuple[int, int]:
        return (self.sweeps.n_bus, self.sweeps.n_bus)

    def __getitem__(self, key):
        if isinstance(key, tuple):
            a, b = key
            return self.to_bus[self.sweeps.ancestor(a, b)]
        rows = np.asarray(key, dtype=np.int64)
        out = self.sweeps.path_rows(self.weights, rows.ravel())
        return out.reshape(*rows.shape, self.sweeps.n_bus)


class Span:
    """The buses on the paths from the slack to some buses (a location's): what one MW there
    flows through. Consumption at those buses moves only the flows of the span's branches
    (``branches``), and the squared voltage of any other bus as much as that of its nearest
    ancestor in the span (``nearest``): the sweeps run over the span alone."""

    def __init__(self, tree: RadialSweeps, buses: np.ndarray):
        buses = np.asarray(buses, dtype=np.int64)
        inside = np.zeros(tree.n_bus, dtype=bool)
        inside[0] = True
        cur = np.unique(buses)
        while len(cur):
            inside[cur] = True
            up = tree.parent[cur]
            cur = np.unique(up[(up >= 0) & ~inside[np.maximum(up, 0)]])
        nodes = np.flatnonzero(inside)
        pos = np.cumsum(inside) - 1
        sub_parent = np.where(nodes > 0, pos[tree.parent[nodes]], -1)
        nearest = np.zeros(tree.n_bus, dtype=np.int64)
        for level, up, _, _ in tree.levels:
            nearest[level] = np.where(inside[level], level, nearest[up])
        self.nodes = nodes
        self.sweeps = RadialSweeps(sub_parent)
        self.at = pos[buses]                 # the buses' rows in the span
        self.branches = nodes[1:] - 1        # the span's branches (global index)
        self.nearest = pos[nearest]          # per bus: its nearest ancestor's row in the span


ROWS = 8   # rows (MTUs) swept together: a node's values for them side by side


@njit(cache=True)
def _down_rows(y, parents_rev, child_ptr, children, out):
    """Per row of ``y`` (N, B): each branch's downstream sum into ``out`` (N, L)."""
    n_bus = y.shape[1]
    acc = np.empty((n_bus, ROWS))
    for i0 in range(0, y.shape[0], ROWS):
        nb = min(ROWS, y.shape[0] - i0)
        for j in range(n_bus):
            for q in range(nb):
                acc[j, q] = y[i0 + q, j]
        down_pass(acc, nb, parents_rev, child_ptr, children)
        for q in range(nb):
            for j in range(1, n_bus):
                out[i0 + q, j - 1] = acc[j, q]


@njit(cache=True)
def _flow_rows(p, q, parent, parents_rev, child_ptr, children, r, x, inv_s, w0, fp, fq,
               loading, v):
    # rows are swept ROWS at a time and written out one after the other (a handful of
    # sequential output streams, not one per row and array)
    n_bus = p.shape[1]
    acc_p = np.empty((n_bus, ROWS))
    acc_q = np.empty((n_bus, ROWS))
    path = np.empty(n_bus)
    for i0 in range(0, p.shape[0], ROWS):
        nb = min(ROWS, p.shape[0] - i0)
        for j in range(n_bus):
            for c in range(nb):
                acc_p[j, c] = p[i0 + c, j]
                acc_q[j, c] = q[i0 + c, j]
        down_pass(acc_p, nb, parents_rev, child_ptr, children)
        down_pass(acc_q, nb, parents_rev, child_ptr, children)
        for c in range(nb):
            i = i0 + c
            path[0] = 0.0
            v[i, 0] = np.sqrt(max(path[0] * -2.0 + w0[0], 0.0))
            for j in range(1, n_bus):
                br = j - 1
                a, b = acc_p[j, c], acc_q[j, c]
                fp[i, br] = a
                fq[i, br] = b
                loading[i, br] = np.sqrt(a * a + b * b) * inv_s[br]
                path[j] = path[parent[j]] + (a * r[br] + b * x[br])
                v[i, j] = np.sqrt(max(path[j] * -2.0 + w0[j], 0.0))


@njit(cache=True)
def down_pass(acc, nb, parents_rev, child_ptr, children):
    """Adds to each node of `acc` (n, ROWS; its first `nb` columns, in place) its children's
    sums, deepest parents first (`parents_rev`; children in CSR `child_ptr`, `children`):
    every node then holds the sum over its subtree."""
    s = np.empty(acc.shape[1])
    for p in parents_rev:
        lo, hi = child_ptr[p], child_ptr[p + 1]
        first, rest = children[lo], hi - lo - 1
        if rest == 0:
            for q in range(nb):
                acc[p, q] += acc[first, q]
        elif rest < 8:
            for q in range(nb):
                s[q] = -0.0
            for i in range(lo + 1, hi):
                c = children[i]
                for q in range(nb):
                    s[q] += acc[c, q]
            for q in range(nb):
                acc[p, q] += acc[first, q] + s[q]
        else:
            for q in range(nb):
                acc[p, q] += acc[first, q] + _pairwise(acc, children, lo + 1, rest, q)


@njit(cache=True)
def _pairwise(acc, idx, lo, n, q):
    """The sum of acc[idx[lo:lo + n], q] as numpy adds a reduction's elements after the first
    (pairwise: sequential below 8, 8 partial sums up to 128 elements, halves above)."""
    if n < 8:
        res = -0.0
        for i in range(lo, lo + n):
            res += acc[idx[i], q]
        return res
    if n <= 128:
        r = np.empty(8)
        for j in range(8):
            r[j] = acc[idx[lo + j], q]
        i = 8
        while i < n - (n % 8):
            for j in range(8):
                r[j] += acc[idx[lo + i + j], q]
            i += 8
        res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]))
        while i < n:
            res += acc[idx[lo + i], q]
            i += 1
        return res
    n2 = n // 2
    n2 -= n2 % 8
    return _pairwise(acc, idx, lo, n2, q) + _pairwise(acc, idx, lo + n2, n - n2, q)


@njit(cache=True)
def _path_rows(z, parent, out):
    """Per row of ``z`` (N, L): each bus's sum along its path from the slack into ``out``."""
    for i in range(z.shape[0]):
        out[i, 0] = 0.0
        for j in range(1, out.shape[1]):
            out[i, j] = out[i, parent[j]] + z[i, j - 1]

