"""KSM state, counters and derived savings as metric families."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from ksm_exporter.collector.gauges import present_gauges
from ksm_exporter.derive.savings import Savings
from ksm_exporter.sources.ksm_files import DECLARED, Declared
from ksm_exporter.sources.sysfs import KsmSysfs


def scaled(value: int, divisor: int) -> float:
    """Milliseconds to seconds and percent to ratio by division, which keeps 70% as 0.7."""
    return value / divisor


def sysfs_families(ksm: KsmSysfs, declared: Declared = DECLARED) -> Iterator[Metric]:
    yield GaugeMetricFamily(
        "ksm_available",
        "1 when the KSM sysfs directory is readable, 0 when the kernel has no KSM.",
        value=1 if ksm.available else 0,
    )
    for spec in declared.numbers.values():
        value = ksm.values.get(spec.name)
        if value is None:
            continue
        family = CounterMetricFamily if spec.kind == "counter" else GaugeMetricFamily
        yield family(spec.metric, spec.help, value=scaled(value, spec.divisor))
    if ksm.advisor_mode is not None:
        advisor = GaugeMetricFamily(
            "ksm_advisor_mode",
            "KSM advisor mode: 1 for the active mode, 0 for the others.",
            labels=["mode"],
        )
        for mode in ksm.advisor_mode.modes:
            advisor.add_metric([mode], 1 if mode == ksm.advisor_mode.active else 0)
        yield advisor


def savings_families(savings: Savings, page_size: int) -> Iterator[Metric]:
    yield GaugeMetricFamily("ksm_page_size_bytes", "System page size.", value=page_size)
    derived = (
        (
            "ksm_memory_saved_bytes",
            "Memory saved by merging: (pages_sharing + ksm_zero_pages) * page size.",
            savings.saved_bytes,
        ),
        (
            "ksm_memory_saved_ratio",
            "Memory saved by merging as a share of MemTotal.",
            savings.saved_ratio,
        ),
        (
            "ksm_memory_profit_bytes",
            "Net memory KSM gains after its rmap_item metadata, signed: general_profit where "
            "the kernel has it, else (pages_sharing + ksm_zero_pages) * page size - "
            "(pages_shared + pages_sharing + pages_unshared + pages_volatile) * 64.",
            savings.memory_profit_bytes,
        ),
        (
            "ksm_mappings_per_shared_page",
            "Mappings each shared KSM page serves: 1 + pages_sharing / pages_shared.",
            savings.mappings_per_shared_page,
        ),
        (
            "ksm_unshared_pages_per_sharing_page",
            "pages_unshared / pages_sharing, scanning effort that merges nothing; "
            "+Inf when pages are unshared and none shares.",
            savings.unshared_pages_per_sharing_page,
        ),
    )
    yield from present_gauges(derived)
