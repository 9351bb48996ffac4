"""Reporter: paired comparisons of runs, leaderboards and forest plots."""
