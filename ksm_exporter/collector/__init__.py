"""Snapshots to prometheus-client metric families."""
