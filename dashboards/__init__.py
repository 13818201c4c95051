"""Grafana dashboards for ksm-exporter, written as code with grafana-foundation-sdk.

`python -m dashboards.generate` writes `ksm-host.json` and `ksm-fleet.json` next to this file.
"""
