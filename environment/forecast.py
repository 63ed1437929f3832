"""Forecast errors: multiplicative, autocorrelated within the day, drawn from the model's RNG.

A common component per portfolio (weather, temperature) does not average out over customers;
the idiosyncratic component per prosumer does."""

from __future__ import annotations

import numpy as np


def ar1(rng: np.random.Generator, n: int, t: int, rho: float) -> np.ndarray:
    """(n, t) AR(1) paths with unit stationary variance."""
    eps = rng.standard_normal((n, t))
    out = np.empty((n, t))
    out[:, 0] = eps[:, 0]
    scale = np.sqrt(1 - rho * rho)
    for k in range(1, t):
        out[:, k] = rho * out[:, k - 1] + scale * eps[:, k]
    return out


def draw_day_errors(rng: np.random.Generator, cfg, n_brp: int, n_prosumers: int, t: int):
    """Relative errors of one day's D-1 forecasts (forecast = actual * (1 + error))."""
    rho = cfg.autocorrelation
    return {
        "load": cfg.load_error_sd * ar1(rng, n_brp, t, rho),
        "idio": cfg.idiosyncratic_sd * rng.standard_normal((n_prosumers, t)),
        "pv": cfg.pv_error_sd * ar1(rng, 1, t, rho)[0],
        "wind": cfg.wind_error_sd * ar1(rng, 1, t, rho)[0],
        "system": cfg.load_error_sd * ar1(rng, 1, t, rho)[0],
    }
