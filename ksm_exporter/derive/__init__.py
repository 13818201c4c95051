"""Pure functions from snapshots to the figures operators ask for."""
