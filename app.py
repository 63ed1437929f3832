"""flexmarkets in the browser: `solara run app.py` (or `flexmarkets view`, which also keeps
Solara offline and serves on 127.0.0.1). The page itself is experiments/viz.py."""

from experiments.viz import Page

__all__ = ["Page"]
