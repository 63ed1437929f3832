"""The Next Generation Marketplace's tiers in one run (issue 20, seeds 000 and 004):
distribution regions, each a whole distribution-grid model with its DSO (the local place),
under the nodes of a zonal transmission model whose TSOs balance them (the national place)
and share balancing across borders (the regional place, environment/markets/regional.py).

`schema` holds the `regions:` entries of a transmission scenario, `regions` turns each into
the distribution scenario it runs, `coupling` carries a region's day-ahead book into the
coupled market and its outcome back, and `model` sequences the day."""
