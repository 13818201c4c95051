"""One collection: the host reader's reading turned into metric families.

A scrape, start to end: `collect_async` below has the host reader (ksm_exporter/reading)
read every source, the families come from derive's figures in `families`, and the server
encodes them (ksm_exporter/server/exposition.py).
"""

from __future__ import annotations

from prometheus_client.core import Metric

from ksm_exporter.collector.cost_families import cost_families
from ksm_exporter.collector.ksm_families import savings_families, sysfs_families
from ksm_exporter.collector.process_families import process_families, sweep_families
from ksm_exporter.collector.self_metrics import self_families
from ksm_exporter.collector.tuner_families import tuner_families
from ksm_exporter.collector.tuning_families import tuning_families
from ksm_exporter.derive.savings import derive_savings
from ksm_exporter.derive.tuning import TuningOptions, advise, host_now
from ksm_exporter.reading.host_reader import HostReader, HostReading


class KsmCollection:
    """Builds the metric families of one scrape from `reader`'s readings; reads nothing
    itself."""

    def __init__(self, reader: HostReader, tuning: TuningOptions | None = None) -> None:
        self.reader = reader
        self.tuning = tuning or TuningOptions()

    def families(self, sample: HostReading) -> list[Metric]:
        reader = self.reader
        page_size = reader.page_size
        ksm = sample.sysfs.snapshot
        savings = derive_savings(ksm, page_size, sample.meminfo.mem_total_bytes)
        metrics: list[Metric] = []
        metrics.extend(sysfs_families(ksm, reader.ksm_files))
        metrics.extend(savings_families(savings, page_size))
        processes = reader.processes
        if processes is not None and sample.processes is not None:
            metrics.extend(
                process_families(
                    sample.processes,
                    processes.options.labels,
                    page_size,
                    processes.fields,
                    sample.explanations,
                )
            )
            metrics.extend(sweep_families(sample.processes.sweep))
        ksmd = sample.ksmd.ksmd if sample.ksmd else None
        metrics.extend(cost_families(ksmd, reader.sampler.cost))
        if ksm.available:
            host = host_now(ksm, sample.processes, reader.kernel_hz)
            metrics.extend(tuning_families(advise(reader.sampler.cost, host, self.tuning)))
        metrics.extend(tuner_families(sample.tuner))
        metrics.extend(self_families(reader.stats))
        return metrics

    async def collect_async(self) -> list[Metric]:
        """The server's entry point: the sweep runs in a worker thread, the rest inline."""
        return self.families(await self.reader.read_async())

    def close(self) -> None:
        self.reader.close()
