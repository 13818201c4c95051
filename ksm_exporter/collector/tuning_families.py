"""Tuning advice as metric families: the measured model of ksmd and what it recommends."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric

from ksm_exporter.collector.gauges import present_gauges
from ksm_exporter.derive.tuning import STATES, Advice

N_HELP = {
    "pages_scanned": "Pages ksmd scans per full scan (pages_scanned per full scan).",
    "rmap_items": "Pages ksmd scans per full scan, estimated as the kernel's rmap items "
    "(pages_shared + pages_sharing + pages_unshared + pages_volatile): this kernel has no "
    "pages_scanned.",
}


def tuning_families(advice: Advice) -> Iterator[Metric]:
    model = advice.model
    if model is not None:
        yield from present_gauges(
            (
                (
                    "ksm_tuning_ksmd_cpu_seconds_per_page",
                    "ksmd CPU time per page scanned (c), fitted to the observed full scans.",
                    model.c,
                ),
                (
                    "ksm_tuning_ksmd_cpu_seconds_per_batch",
                    "ksmd CPU time per batch of pages_to_scan pages on top of the per-page "
                    "cost (b); 0 until full scans at pages_to_scan values a factor 2 apart "
                    "were observed.",
                    model.b,
                ),
                ("ksm_tuning_pages_per_full_scan", N_HELP[model.n_source], model.n),
            )
        )
    if advice.state is None:
        return
    state = GaugeMetricFamily(
        "ksm_tuning_state",
        "Tuning state: 1 for the current one (stopped, idle, unprofitable, backlog: saved "
        "memory still growing, steady), 0 for the others.",
        labels=["state"],
    )
    for name in STATES:
        state.add_metric([name], 1 if name == advice.state else 0)
    yield state
    if advice.recommended_run is not None:
        yield GaugeMetricFamily(
            "ksm_tuning_recommended_run",
            "Recommended run setting: 2 (unmerge, which frees the rmap_item metadata) when "
            "KSM costs more memory than it saves, else 1; 0 would free nothing.",
            value=advice.recommended_run,
        )
    yield from present_gauges(
        (
            (
                "ksm_tuning_recommended_full_scan_seconds",
                "Recommended full-scan time: as fast as the CPU budget allows while saved "
                "memory grows, else the steady target (the advisor_target_scan_time to set "
                "where the kernel's advisor runs).",
                advice.target_full_scan_seconds,
            ),
            (
                "ksm_tuning_recommended_pages_to_scan",
                "pages_to_scan that gives the recommended full-scan time at the current "
                "sleep_millisecs.",
                advice.pages_to_scan,
            ),
        )
    )
    predictions = (("current", advice.current), ("recommended", advice.recommended))
    yield from predicted(
        "ksm_tuning_predicted_ksmd_cpu_ratio",
        "Share of one CPU ksmd is predicted to use at the current or recommended settings.",
        [(label, p.cpu_ratio) for label, p in predictions if p is not None],
    )
    yield from predicted(
        "ksm_tuning_predicted_full_scan_seconds",
        "Full-scan time predicted at the current or recommended settings.",
        [(label, p.full_scan_seconds) for label, p in predictions if p is not None],
    )


def predicted(name: str, help_text: str, values: list[tuple[str, float]]) -> Iterator[Metric]:
    if not values:
        return
    family = GaugeMetricFamily(name, help_text, labels=["settings"])
    for label, value in values:
        family.add_metric([label], value)
    yield family
