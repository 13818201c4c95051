"""Where panels turn orange or red: the default thresholds of the KSM alerts, read from the
mixin's _config (mixin/config.libsonnet), the one place they are set.

Time series panels also draw each host's effective instance:ksm_<figure>:threshold, which
honours per-host overrides where the rules are loaded.
"""

from __future__ import annotations

from mixin.render import evaluate

_DEFAULTS: dict[str, float] = {
    figure: float(value) for figure, value in evaluate("mixin._config")["thresholds"].items()
}

# KsmdExcessiveCpu: ksmd's share of one CPU core.
KSMD_CPU_RATIO = _DEFAULTS["ksmd_cpu_ratio"]
# KsmScanningWithoutSavings: ksmd CPU share above which scanning must show savings.
SCANNING_CPU_RATIO = _DEFAULTS["scanning_cpu_ratio"]
# KsmNegativeProfit: net profit below which KSM costs more memory than it saves.
PROFIT_BYTES = _DEFAULTS["general_profit_bytes"]
# KsmHighUnsharedRatio: pages_unshared per pages_sharing.
UNSHARED_RATIO = _DEFAULTS["unshared_pages_per_sharing_page"]
# KsmFullScanTooSlow: time KSM ran during one full scan.
FULL_SCAN_SECONDS = _DEFAULTS["full_scan_duration_seconds"]

# {threshold rule: default}, as recorded in ksm-rules.yml.
ALERT_DEFAULTS = {f"ksm:{figure}:threshold": value for figure, value in _DEFAULTS.items()}
