// Everything an operator may want to change: the selector of the exporter's series, the
// label that tells clusters apart, where runbooks live, and every alert threshold.
{
  _config+:: {
    // Label matchers of the exporter's series, as the scrape job sets them.
    selector: 'job="ksm-exporter"',
    // The label that tells clusters apart on a multi-cluster ruler (Thanos, Mimir); series
    // without it join as if it were empty, so one cluster needs nothing here.
    clusterLabel: 'cluster',
    // %s is the alert name in lower case, the anchor of its runbook section.
    runbookURLPattern: 'https://github.com/ksm-exporter/ksm-exporter/blob/main/docs/runbook.md#%s',

    // The window of the rate() behind the instance:*:rate5m recording rules, which alerts
    // and dashboards read. The rule names keep "5m" whatever it is (as node-exporter-mixin's
    // rateInterval does), so a shorter window for a test or a longer one for a slow scrape
    // changes no query.
    rateInterval: '5m',

    // Defaults for every host. Recorded as ksm:<figure>:threshold rules, so a per-host
    // override below and the dashboards' threshold lines use the same numbers.
    thresholds: {
      // KsmdExcessiveCpu: ksmd's share of one CPU core, where the kernel's scan-time
      // advisor is not active (where it is, its own advisor_max_cpu is the limit).
      ksmd_cpu_ratio: 0.25,
      // KsmScanningWithoutSavings: ksmd CPU share above which scanning must show savings.
      scanning_cpu_ratio: 0.05,
      // KsmNegativeProfit: net profit (bytes) below which metadata costs too much.
      general_profit_bytes: 0,
      // KsmHighUnsharedRatio: pages_unshared per pages_sharing.
      unshared_pages_per_sharing_page: 10,
      // KsmFullScanTooSlow: wall time of one full scan, seconds.
      full_scan_duration_seconds: 3600,
    },

    // Per-host thresholds: [{ threshold: 'ksmd_cpu_ratio', value: 0.5,
    // labels: { instance: 'build-host-1:10131' } }]. Give the cluster label too where the
    // series carry one.
    thresholdOverrides: [],

    // KsmFullScanStalled: how long KSM may run without completing a full scan. Longer than
    // the slowest full scan you accept (thresholds.full_scan_duration_seconds).
    fullScanStalledAfter: '2h',
    // KsmTuningAdvice: by what factor the recommended pages_to_scan (or, under the kernel's
    // advisor, full-scan time) may differ from the setting (for how long: alertFor).
    tuningAdviceFactor: 2,
    // KsmTunerNotDeciding: seconds without a decision recorded by a tuner that says it tunes
    // (it decides every 5 s and records it at least every minute).
    tunerDecisionMaxAge: 900,

    // KsmProcessMergingLittle: the reasons of ksm_process_merging_little_info it alerts on,
    // those a setting changes (ksmd too slow to reach it, MemoryKSM= not applied, memory in
    // huge pages); KSM stopped by a tuner on purpose, unique or volatile content do not.
    mergingLittleReasons: 'not_reached|memory_ksm_not_applied|huge_pages',

    // How long each condition must hold before its alert fires.
    alertFor: {
      KsmdExcessiveCpu: '15m',
      KsmScanningWithoutSavings: '30m',
      KsmFullScanTooSlow: '15m',
      KsmFullScanStalled: '15m',
      KsmNegativeProfit: '30m',
      KsmHighUnsharedRatio: '1h',
      KsmExporterCollectErrors: '15m',
      KsmExporterProcessesUnreadable: '15m',
      KsmExporterAbsent: '5m',
      KsmSensitiveWorkloadMerging: '5m',
      KsmSensitiveWorkloadRegistered: '5m',
      // The sharing collector's series change once an audit (--collector.sharing.interval).
      KsmSensitiveWorkloadSharesAcrossTenants: '0m',
      KsmTuningAdvice: '6h',
      KsmTunerOverridden: '5m',
      KsmTunerNotDeciding: '5m',
      KsmProcessMergingLittle: '1h',
    },

    // Opt-in joins with each platform's own exporter: recording rules that put the share of
    // each guest's RAM KSM merges (process:ksm_guest_memory_merged:ratio) next to the
    // platform's guest info series, keyed on the stable identifier the platform's exporter
    // uses. Off by default; enable with e.g. platformJoins+: { pve+: { enabled: true } }.
    // `selector` picks the info series, `labels` are the labels copied from them.
    platformJoins: {
      // prometheus-pve-exporter (src/pve_exporter/collector/cluster.py): pve_guest_info{id=
      // "qemu/100", name, node, type, template, tags}, joined on the guest's -id (vm_id)
      // written as pve-exporter's id.
      pve: { enabled: false, selector: 'type="qemu"', labels: ['name', 'node'] },
      // KubeVirt (pkg/monitoring/metrics/virt-controller/vmistats_collector.go):
      // kubevirt_vmi_info{namespace, name, node, phase, ...}, joined on the namespace and
      // the VMI name (vm) written as name. Both sides need the guest's own namespace label:
      // KubeVirt's ServiceMonitor honours labels, this exporter's drops the operator's.
      kubevirt: { enabled: false, selector: '', labels: ['node'] },
      // libvirt exporters: Tinkoff's libvirt-exporter (libvirt_exporter.go)
      // libvirt_domain_info_meta{domain, uuid, instance_name, ...}, joined on the domain
      // UUID (vm_uuid, Nova's instance UUID) written as uuid. inovex's
      // prometheus-libvirt-exporter (pkg/exporter/prometheus-libvirt-exporter.go) names it
      // instance_id: { enabled: true, info: 'libvirt_domain_openstack_info',
      // key: 'instance_id', on: ['instance_id'] }.
      libvirt: { enabled: false, selector: '', labels: ['domain', 'instance_name'] },
    },

    // Sensitive workloads (docs/security.md): a PromQL expression returning the
    // ksm_process_merging_pages series of the processes that must not share memory with
    // others; docs/runbook.md shows selectors for a VM name, a systemd unit and a Kubernetes
    // namespace. Give --collector.process.always-include a pattern for the same processes.
    // KsmSensitiveWorkloadSharesAcrossTenants applies the same lines to the sharing
    // collector's ksm_sharing_tenant_shared_frames, whose tenants carry the label of
    // --collector.sharing.tenant-by's key (vm, namespace, unit, cgroup, uid).
    sensitiveWorkloads: |||
      ksm_process_merging_pages{vm=~"sensitive-.+"}
      or
      ksm_process_merging_pages{cgroup=~".*/sensitive\\.slice(/.*)?"}
    |||,
  },
}
