"""What a run may cut short or clip, counted in summary.json under 'truncation' and warned
once a kind (`FlexMarketModel.note_truncation`)."""

TRUNCATIONS = {
    "lfm": "an LFM clearing stopped at its round limit with limits still violated",
    "tso_dso": "a TSO-DSO balancing clearing stopped at its round limit",
    "planner": "the planner stopped adding grid limits at its round limit",
    "soc_clipped_mwh": "battery energy outside the state-of-charge bounds was clipped",
    "battery_cut_mwh": "battery set-points were cut to keep states of charge within bounds",
}


class TruncationWarning(UserWarning):
    """A run cut an iteration short or clipped a quantity (see summary.json 'truncation')."""
