"""Transmission-level redispatch: a small N-node grid, zonal day-ahead market, market-based or
cost-based redispatch, and twin runs that measure inc-dec gaming; with `zones`, several bidding
zones with a TSO each, coupled day-ahead across interconnectors and balanced in real time by the
regional balance place (environment/markets/regional.py).

The schema (`scenario`, `zone_checks`), the models (`model`; `zonal_model` and its factory
`transmission_model`), the network and its clearings (`network`, `zones`) and the twin (`twin`)
are imported from their modules, so reading a scenario does not load the model."""
