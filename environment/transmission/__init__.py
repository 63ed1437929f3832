"""Transmission-level redispatch: a small N-node grid, zonal day-ahead market, market-based or
cost-based redispatch, and twin runs that measure inc-dec gaming.

The schema (`scenario`), the model (`model`), the network and its clearings (`network`) and the
twin (`twin`) are imported from their modules, so reading a scenario does not load the model."""
