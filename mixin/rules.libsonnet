// Recording rules, named level:metric:operations. Per-host rules keep the labels of the
// scraped series; fleet rules keep the cluster label and job.
{
  local c = self._config,
  local on = 'on (%s, instance)' % c.clusterLabel,
  // A threshold as PromQL writes it: whole numbers without exponent, fractions as %g does.
  local number(x) = if x == std.floor(x) then '%d' % x else '%g' % x,

  // The per-host threshold of a figure: its override where one exists, else the default.
  local perHost(figure, before='') = {
    record: 'instance:ksm_%s:threshold' % figure,
    expr: |||
      %(before)smax by (%(cluster)s, instance) (ksm:%(figure)s:threshold{instance!=""})
      or %(on)s
      max by (%(cluster)s, instance) (ksm_available{%(selector)s}) * 0
        + on () group_left () ksm:%(figure)s:threshold{instance=""}
    ||| % { before: before, cluster: c.clusterLabel, figure: figure, on: on, selector: c.selector },
  },

  prometheusRules+:: {
    groups+: [
      {
        name: 'ksm-recording',
        rules: [
          {
            // Share of one CPU core ksmd used, averaged over rateInterval (5m).
            record: 'instance:ksm_ksmd_cpu:ratio_rate5m',
            expr: 'rate(ksm_ksmd_cpu_seconds_total{%(selector)s}[%(rateInterval)s])' % c,
          },
          {
            // Memory saved for each share of a core ksmd spends; absent while ksmd idles.
            record: 'instance:ksm_memory_saved_bytes_per_ksmd_cpu_second:ratio_rate5m',
            expr: 'ksm_memory_saved_bytes{%(selector)s} / (instance:ksm_ksmd_cpu:ratio_rate5m{%(selector)s} > 0)' % c,
          },
          {
            // Mean time between completed full scans over the last hour; absent when none
            // completed in that hour.
            record: 'instance:ksm_full_scan_period_seconds:mean1h',
            expr: '1 / (rate(ksm_full_scans_total{%(selector)s}[1h]) > 0)' % c,
          },
          {
            // Pages ksmd scanned per second (kernels with pages_scanned, since 6.6).
            record: 'instance:ksm_pages_scanned:rate5m',
            expr: 'rate(ksm_pages_scanned_total{%(selector)s}[%(rateInterval)s])' % c,
          },
          {
            // Bytes ksmd scanned per second (kernels with pages_scanned, since 6.6).
            record: 'instance:ksm_scanned_bytes:rate5m',
            expr: 'instance:ksm_pages_scanned:rate5m{%(selector)s} * ksm_page_size_bytes{%(selector)s}' % c,
          },
          {
            // Share of each QEMU guest's RAM (its -m) that KSM merges, with the labels of the
            // guest's per-process series (vm, vm_id, vm_uuid, namespace: the keys of each
            // platform's own exporter).
            record: 'process:ksm_guest_memory_merged:ratio',
            expr: |||
              ksm_process_merging_pages{%(selector)s}
                * on (%(clusterLabel)s, instance) group_left () ksm_page_size_bytes{%(selector)s}
              / ksm_process_guest_memory_bytes{%(selector)s}
            ||| % c,
          },
          {
            record: 'job:ksm_memory_saved_bytes:sum',
            expr: 'sum by (%(clusterLabel)s, job) (ksm_memory_saved_bytes{%(selector)s})' % c,
          },
          {
            record: 'job:ksm_ksmd_cpu:sum_rate5m',
            expr: 'sum by (%(clusterLabel)s, job) (instance:ksm_ksmd_cpu:ratio_rate5m{%(selector)s})' % c,
          },
        ],
      },
      {
        // Each ksm:<figure>:threshold without labels is the default for every host (from
        // _config.thresholds); one carrying an instance label (from
        // _config.thresholdOverrides, or a rule file of your own) is that host's value.
        // The instance:* rules take a host's override where one exists, else the default.
        name: 'ksm-thresholds',
        rules: [
          {
            record: 'ksm:%s:threshold' % figure,
            expr: 'vector(%s)' % number(c.thresholds[figure]),
          }
          for figure in std.objectFields(c.thresholds)
        ] + [
          {
            record: 'ksm:%s:threshold' % override.threshold,
            expr: 'vector(%s)' % number(override.value),
            labels: override.labels,
          }
          for override in c.thresholdOverrides
        ] + [
          perHost(figure)
          for figure in std.objectFields(c.thresholds)
          if figure != 'ksmd_cpu_ratio'
        ] + [
          // Where the kernel's scan-time advisor runs, its own CPU ceiling (advisor_max_cpu)
          // is the limit, unless the host has an override; never below the floor that
          // scan_time_advisor() holds ksmd at whatever advisor_max_cpu says
          // (KSM_ADVISOR_MIN_CPU, 10%, plus the whole percent its arithmetic rounds away).
          perHost('ksmd_cpu_ratio', before=|||
            max by (%(cluster)s, instance) (ksm:ksmd_cpu_ratio:threshold{instance!=""})
            or %(on)s
            (
              clamp_min(max by (%(cluster)s, instance) (ksm_advisor_max_cpu_ratio{%(selector)s}), 0.11)
              and %(on)s
              ksm_advisor_mode{%(selector)s, mode="scan-time"} == 1
            )
            or %(on)s
          ||| % { cluster: c.clusterLabel, on: on, selector: c.selector }),
        ],
      },
    ] + (
      // Each platform's defaults, then what _config.platformJoins says of it.
      local joins = [
        join + std.get(c.platformJoins, join.platform, {})
        for join in [
          {
            platform: 'pve',
            record: 'pve_guest:ksm_guest_memory_merged:ratio',
            info: 'pve_guest_info',
            key: 'id',
            source: 'vm_id',
            replacement: 'qemu/$1',
            on: ['id'],
            enabled: false,
            selector: 'type="qemu"',
            labels: ['name', 'node'],
          },
          {
            platform: 'kubevirt',
            record: 'kubevirt_vmi:ksm_guest_memory_merged:ratio',
            info: 'kubevirt_vmi_info',
            key: 'name',
            source: 'vm',
            replacement: '$1',
            on: ['namespace', 'name'],
            enabled: false,
            selector: '',
            labels: ['node'],
          },
          {
            platform: 'libvirt',
            record: 'libvirt_domain:ksm_guest_memory_merged:ratio',
            info: 'libvirt_domain_info_meta',
            key: 'uuid',
            source: 'vm_uuid',
            replacement: '$1',
            on: ['uuid'],
            enabled: false,
            selector: '',
            labels: ['domain', 'instance_name'],
          },
        ]
      ];
      local enabled = [join for join in joins if join.enabled];
      if enabled == [] then [] else [
        {
          // The share of each guest's RAM KSM merges beside the platform exporter's info
          // series: the guest's identifier rewritten as that exporter writes it, the info
          // series deduplicated (every exporter of a cluster may report every guest).
          name: 'ksm-platform-joins',
          rules: [
            {
              local keys = std.join(', ', [c.clusterLabel] + join.on),
              record: join.record,
              expr: |||
                label_replace(
                  process:ksm_guest_memory_merged:ratio{%(selector)s, %(source)s!=""},
                  "%(key)s", "%(replacement)s", "%(source)s", "(.+)"
                )
                * on (%(keys)s) group_left (%(labels)s)
                  group by (%(keys)s, %(labels)s) (%(info)s{%(infoSelector)s})
              ||| % {
                selector: c.selector,
                source: join.source,
                key: join.key,
                replacement: join.replacement,
                keys: keys,
                labels: std.join(', ', join.labels),
                info: join.info,
                infoSelector: join.selector,
              },
            }
            for join in enabled
          ],
        },
      ]
    ) + [
      {
        name: 'ksm-sensitive-workload-selection',
        rules: [
          {
            // Value 1 for each process _config.sensitiveWorkloads picks, with the labels
            // of its ksm_process_merging_pages series.
            record: 'process:ksm_sensitive_workload:selected',
            expr: 'group without () (\n%s\n)\n' % std.join('\n', [
              '  ' + line
              for line in std.split(c.sensitiveWorkloads, '\n')
              if line != ''
            ]),
          },
        ],
      },
    ],
  },
}
