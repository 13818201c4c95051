"""Where panels turn orange or red: the default thresholds of the KSM alerts.

deploy/prometheus/ksm-alerts.yml records each default as a ksm:<figure>:threshold rule
(a test holds these numbers equal to them); time series panels also draw each host's
effective instance:ksm_<figure>:threshold, which honours per-host overrides.
"""

from __future__ import annotations

# KsmdExcessiveCpu: ksmd's share of one CPU core.
KSMD_CPU_RATIO = 0.25
# KsmScanningWithoutSavings: ksmd CPU share above which scanning must show savings.
SCANNING_CPU_RATIO = 0.05
# KsmNegativeProfit: net profit below which KSM costs more memory than it saves.
PROFIT_BYTES = 0.0
# KsmHighUnsharedRatio: pages_unshared per pages_sharing.
UNSHARED_RATIO = 10.0
# KsmFullScanTooSlow: wall time of one full scan.
FULL_SCAN_SECONDS = 3600.0

ALERT_DEFAULTS = {
    "ksm:ksmd_cpu_ratio:threshold": KSMD_CPU_RATIO,
    "ksm:scanning_cpu_ratio:threshold": SCANNING_CPU_RATIO,
    "ksm:general_profit_bytes:threshold": PROFIT_BYTES,
    "ksm:unshared_pages_per_sharing_page:threshold": UNSHARED_RATIO,
    "ksm:full_scan_duration_seconds:threshold": FULL_SCAN_SECONDS,
}
