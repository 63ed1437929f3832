"""What every figure of the project shares: time axes whose ticks carry dates, and legends
that sit outside the data."""

from __future__ import annotations


def time_axis(ax, ts=None) -> None:
    """Date-aware ticks (day and month where they change, hours within a day) and a light
    grid; with `ts`, limits that end one MTU after the last timestamp."""
    import matplotlib.dates as mdates

    loc = mdates.AutoDateLocator(minticks=3, maxticks=9)
    ax.xaxis.set_major_locator(loc)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(loc))
    ax.grid(alpha=0.3)
    if ts is not None and len(ts) > 1:
        ax.set_xlim(ts.iloc[0], ts.iloc[-1] + (ts.iloc[-1] - ts.iloc[0]) / (len(ts) - 1))


def legend_below(ax, ncol: int = 4, **kwargs) -> None:
    """A legend under the axes, where it covers no data."""
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=ncol,
                  frameon=False, fontsize=8, **kwargs)


def legend_right(ax, **kwargs) -> None:
    """A legend right of the axes (many entries)."""
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False,
                  fontsize=8, **kwargs)
