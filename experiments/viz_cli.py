"""`flexmarkets view [--port P] [--host H]`: serve the browser view (experiments/viz.py) with
Solara, offline.

Solara's front-end files come from the installed `solara-assets` package: with the assets proxy
on (Solara's default, forced here) the server answers /_solara/cdn/... from
<venv>/share/solara/cdn, which solara-assets fills, so the browser never asks a CDN. The check
for a newer Solara on PyPI and Solara's usage telemetry are switched off.
"""

from __future__ import annotations

import argparse
import os
import sys

DEFAULT_PORT = 8765
APP = "experiments.viz"

OFFLINE_ENV = {
    "SOLARA_ASSETS_PROXY": "True",
    "SOLARA_TELEMETRY_MIXPANEL_ENABLE": "False",
    "SOLARA_THEME_SHOW_BANNER": "False",        # its corner badge covered the panels
    "SOLARA_THEME_TITLE": "flexmarkets",
}


def server_command(port: int = DEFAULT_PORT, host: str = "127.0.0.1") -> list[str]:
    """The `solara run` command line of the view (the app as a module, so that it works from
    any directory and when installed). For development with restarts on code changes use
    `solara run app.py --auto-restart` instead."""
    return [sys.executable, "-m", "solara", "run", APP, "--host", host, "--port", str(port),
            "--production", "--no-open", "--no-check-version"]


def server_env(base: dict | None = None) -> dict[str, str]:
    return {**(os.environ if base is None else base), **OFFLINE_ENV}


def _view(args: argparse.Namespace) -> int:
    cmd = server_command(args.port, args.host)
    print(f"flexmarkets view: http://{args.host}:{args.port}  (Ctrl-C stops)", flush=True)
    # The server replaces this process, so Ctrl-C and kill reach it directly.
    os.execve(sys.executable, cmd, server_env())
    return 0  # not reached


def register_cli(subparsers) -> argparse.ArgumentParser:
    """Add `view` to the `flexmarkets` sub-commands."""
    v = subparsers.add_parser(
        "view", help="open the browser view (grid, markets, who earns what)",
        description="Serve the interactive view of a simulation (Mesa SolaraViz): the "
                    "distribution grid by traffic light, loading and voltage, prices and "
                    "volumes by market, and net receipts by agent class. Works offline.")
    v.add_argument("--port", type=int, default=DEFAULT_PORT,
                   help=f"port to serve on (default {DEFAULT_PORT})")
    v.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default 127.0.0.1, this machine only)")
    v.set_defaults(func=_view)
    return v


def main(argv: list[str] | None = None) -> int:
    """`python -m experiments.viz_cli [--port P]`: the same as `flexmarkets view`."""
    parser = argparse.ArgumentParser(prog="flexmarkets")
    sub = parser.add_subparsers(dest="command")
    register_cli(sub)
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] != "view":
        argv.insert(0, "view")
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
