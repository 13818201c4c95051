// Alerts. Summaries are fixed sentences; descriptions name the host (and cluster) and quote
// the figures that matter. Each runbook_url is _config.runbookURLPattern with the alert's
// name in lower case.
{
  local c = self._config,
  local sel = c.selector,
  local on = 'on (%s, instance)' % c.clusterLabel,
  local where = '{{ $labels.instance }}{{ with $labels.%s }} (cluster {{ . }}){{ end }}' % c.clusterLabel,
  // The value of `metric` on the alert's host, formatted by `format`, inside a description.
  // `labels` (single-quoted values, each followed by a comma) narrow the series, `suffix`
  // closes a function around it, `otherwise` stands where the host lacks the series.
  local figure(metric, format, unit='', labels='', suffix='', otherwise='') =
    '{{ with printf "%(metric)s{%(labels)s%(cluster)s=\'%%s\',instance=\'%%s\'}%(suffix)s" (index $labels "%(cluster)s") $labels.instance | query }}{{ . | first | value | %(format)s }}%(unit)s{{%(otherwise)s end }}' % {
      metric: metric,
      unit: unit,
      labels: labels,
      suffix: suffix,
      cluster: c.clusterLabel,
      format: format,
      otherwise: if otherwise == '' then '' else ' else }}%s{{' % otherwise,
    },
  local alert(name, severity, expr, summary, description) = {
    alert: name,
    expr: expr,
    'for': c.alertFor[name],
    labels: { severity: severity },
    annotations: {
      summary: summary,
      description: description,
      runbook_url: c.runbookURLPattern % std.asciiLower(name),
    },
  },
  local threshold(figure) = 'instance:ksm_%s:threshold' % figure,
  local ksmOn = 'ksm_run{%s} %% 4 == 1' % sel,
  // The rate window in words, for descriptions.
  local rateWindow = if c.rateInterval == '5m' then '5 minutes' else c.rateInterval,

  prometheusAlerts+:: {
    groups+: [
      {
        name: 'ksm-cost',
        rules: [
          alert(
            'KsmdExcessiveCpu',
            'warning',
            |||
              instance:ksm_ksmd_cpu:ratio_rate5m{%(sel)s}
                > %(on)s group_left () %(threshold)s
            ||| % { sel: sel, on: on, threshold: threshold('ksmd_cpu_ratio') },
            'ksmd uses more CPU than its threshold allows.',
            std.join(' ', [
              'ksmd used {{ $value | humanizePercentage }} of one CPU core on %s over the last' % where,
              '%s, above the threshold of %s' % [rateWindow, figure(threshold('ksmd_cpu_ratio'), 'humanizePercentage')],
              "(advisor_max_cpu where the kernel's scan-time advisor runs), for %s." % c.alertFor.KsmdExcessiveCpu,
              'KSM saves %sB for it.' % figure('ksm_memory_saved_bytes', 'humanize1024'),
            ]),
          ),
          alert(
            'KsmScanningWithoutSavings',
            'warning',
            |||
              instance:ksm_ksmd_cpu:ratio_rate5m{%(sel)s}
                > %(on)s group_left () %(threshold)s
              and %(on)s
              (
                ksm_general_profit_bytes{%(sel)s} <= 0
                or %(on)s
                (
                  delta(ksm_memory_saved_bytes{%(sel)s}[1h]) <= 0
                  unless %(on)s ksm_general_profit_bytes{%(sel)s}
                )
              )
            ||| % { sel: sel, on: on, threshold: threshold('scanning_cpu_ratio') },
            'ksmd scans without saving memory.',
            std.join(' ', [
              'ksmd used {{ $value | humanizePercentage }} of one CPU core on %s over the last' % where,
              '%s, yet net profit is %s' % [rateWindow, figure('ksm_general_profit_bytes', 'humanize1024', unit='B', otherwise='unknown (a kernel without general_profit)')],
              'and saved memory changed by %s' % figure('delta(ksm_memory_saved_bytes', 'humanize1024', unit='B', suffix='[1h])'),
              'in the last hour (now %sB).' % figure('ksm_memory_saved_bytes', 'humanize1024'),
            ]),
          ),
          alert(
            'KsmFullScanTooSlow',
            'info',
            |||
              ksm_full_scan_duration_seconds{%(sel)s}
                > %(on)s group_left () %(threshold)s
              and %(on)s
              %(ksmOn)s
            ||| % { sel: sel, on: on, threshold: threshold('full_scan_duration_seconds'), ksmOn: ksmOn },
            'KSM full scans take longer than their threshold.',
            std.join(' ', [
              'The last full scan on %s took {{ $value | humanizeDuration }},' % where,
              'above the threshold of %s:' % figure(threshold('full_scan_duration_seconds'), 'humanizeDuration'),
              'duplicate pages wait that long before they can merge. ksmd scans',
              '%s pages every %s.' % [figure('ksm_pages_to_scan', 'humanize'), figure('ksm_sleep_seconds', 'humanizeDuration')],
            ]),
          ),
          alert(
            'KsmFullScanStalled',
            'warning',
            |||
              ksm_full_scans_total{%(sel)s}
              unless %(on)s
              changes(ksm_full_scans_total{%(sel)s}[%(stall)s]) > 0
              and %(on)s
              ksm_full_scans_total{%(sel)s} offset %(stall)s
              and %(on)s
              min_over_time((ksm_run{%(sel)s} %% 4 == bool 1)[%(stall)s:1m]) == 1
              and %(on)s
              (
                ksm_processes_registered{%(sel)s} > 0
                or
                ksm_pages_shared{%(sel)s} + ksm_pages_sharing{%(sel)s}
                  + ksm_pages_unshared{%(sel)s} + ksm_pages_volatile{%(sel)s} > 0
              )
            ||| % { sel: sel, on: on, stall: c.fullScanStalledAfter },
            // ksmd_should_run() is false while no mm is registered: full_scans then stops by
            // design. Something to scan: a registered process, or rmap items left in sysfs.
            'KSM runs but no full scan completes.',
            std.join(' ', [
              'KSM has run on %s for %s without completing a full scan:' % [where, c.fullScanStalledAfter],
              'full_scans has stayed at {{ $value | humanize }}. ksmd is stuck, starved of CPU, or',
              'scans %s pages every %s through more memory than it can cover in that time.' % [
                figure('ksm_pages_to_scan', 'humanize'),
                figure('ksm_sleep_seconds', 'humanizeDuration'),
              ],
            ]),
          ),
        ],
      },
      {
        name: 'ksm-savings',
        rules: [
          alert(
            'KsmNegativeProfit',
            'warning',
            |||
              ksm_general_profit_bytes{%(sel)s}
                < %(on)s group_left () %(threshold)s
            ||| % { sel: sel, on: on, threshold: threshold('general_profit_bytes') },
            'KSM costs more memory than it saves.',
            std.join(' ', [
              'Net KSM profit on %s is {{ $value | humanize1024 }}B,' % where,
              'below the threshold of %sB:' % figure(threshold('general_profit_bytes'), 'humanize1024'),
              'the rmap_item metadata of registered pages outweighs the',
              '%sB saved by merging.' % figure('ksm_memory_saved_bytes', 'humanize1024'),
            ]),
          ),
          alert(
            'KsmHighUnsharedRatio',
            'info',
            |||
              ksm_unshared_pages_per_sharing_page{%(sel)s}
                > %(on)s group_left () %(threshold)s
              and %(on)s
              %(ksmOn)s
            ||| % { sel: sel, on: on, threshold: threshold('unshared_pages_per_sharing_page'), ksmOn: ksmOn },
            'ksmd checks many pages that never merge.',
            std.join(' ', [
              '%s has {{ if eq ($value | humanize) "+Inf" }}unshared pages and not one page' % where,
              'sharing a merged page{{ else }}{{ $value | humanize }} unshared pages for every',
              'page sharing a merged page{{ end }}, above the threshold of',
              '%s: ksmd spends most of its scanning on' % figure(threshold('unshared_pages_per_sharing_page'), 'humanize'),
              '%s pages that stay unique. With smart_scan on (the default), pages' % figure('ksm_pages_unshared', 'humanize'),
              'ksmd skips leave the unstable tree and count as volatile instead of unshared',
              '(should_skip_rmap_item() calls remove_rmap_item_from_tree()), so this ratio',
              'understates the waste.',
            ]),
          ),
        ],
      },
      {
        name: 'ksm-merging-little',
        rules: [
          alert(
            'KsmProcessMergingLittle',
            'warning',
            |||
              ksm_process_merging_little_info{%(sel)s, reason=~"%(reasons)s"}
                * on (%(cluster)s, job, instance, pid) group_left ()
              ksm_process_rmap_items{%(sel)s}
            ||| % { sel: sel, reasons: c.mergingLittleReasons, cluster: c.clusterLabel },
            'A registered process merges little for a reason the settings can change.',
            std.join(' ', [
              '{{ $labels.comm }} (pid {{ $labels.pid }}{{ with $labels.vm }}, VM {{ . }}{{ end }})',
              'on %s merges little: {{ $labels.reason }}; ksmd tracks {{ $value }} of its pages.' % where,
              '`ksm-exporter status --why {{ $labels.pid }}` on that host shows each check and',
              'the kernel files it stands on.',
            ]),
          ),
        ],
      },
      {
        name: 'ksm-exporter',
        rules: [
          alert(
            'KsmExporterCollectErrors',
            'warning',
            'increase(ksm_exporter_collect_errors_total{%s}[10m]) > 0' % sel,
            'ksm-exporter cannot read some kernel files.',
            std.join(' ', [
              'The {{ $labels.source }} source of ksm-exporter on %s failed' % where,
              '{{ $value | humanize }} times to read or parse a kernel file in the last 10 minutes;',
              'the metrics from such files are missing. The exporter\'s log line "cannot use',
              'kernel file" names each file and the reason.',
            ]),
          ),
          alert(
            'KsmExporterProcessesUnreadable',
            'warning',
            'ksm_exporter_processes_unreadable{%s} > 0' % sel,
            'ksm-exporter may not read the KSM counters of some processes.',
            std.join(' ', [
              'ksm-exporter on %s may not read the ksm_stat of {{ $value | humanize }}' % where,
              "processes: other users' processes need root or CAP_DAC_READ_SEARCH. Their memory",
              'is missing from the per-process figures, and the sensitive-workload alerts',
              'cannot see them.',
            ]),
          ),
          alert(
            'KsmExporterAbsent',
            'warning',
            'up{%(sel)s} == 0 or absent(up{%(sel)s})' % { sel: sel },
            'ksm-exporter is down or not scraped.',
            std.join(' ', [
              '{{ if $labels.instance }}Prometheus has failed to scrape ksm-exporter on %s' % where,
              '(job {{ $labels.job }}) for %s{{ else }}Prometheus has scraped no target' % c.alertFor.KsmExporterAbsent,
              'matching %s for %s{{ end }}: KSM savings and costs are' % [std.strReplace(sel, '"', "'"), c.alertFor.KsmExporterAbsent],
              'not monitored and no other KSM alert can fire.',
            ]),
          ),
        ],
      },
      {
        // A workload that must not share memory with others (docs/security.md) takes part in
        // KSM: critical when it has merged pages, warning when it is registered but nothing
        // is merged yet. process:ksm_sensitive_workload:selected says which processes.
        name: 'ksm-sensitive-workloads',
        local join = 'on (%s, job, instance, pid)' % c.clusterLabel,
        local who = '{{ $labels.comm }} (pid {{ $labels.pid }}{{ with $labels.vm }}, VM {{ . }}{{ end }}{{ with $labels.cgroup }}, cgroup {{ . }}{{ end }}) on %s' % where,
        rules: [
          alert(
            'KsmSensitiveWorkloadMerging',
            'critical',
            |||
              ksm_process_merging_pages{%(sel)s}
                * on (%(cluster)s, job, instance) group_left () ksm_page_size_bytes{%(sel)s} > 0
              and %(join)s
              process:ksm_sensitive_workload:selected
            ||| % { sel: sel, cluster: c.clusterLabel, join: join },
            'A sensitive workload shares memory through KSM.',
            std.join(' ', [
              who,
              "has {{ $value | humanize1024 }}B of memory merged with other processes' pages;",
              'merged pages let other workloads on the host time its memory contents.',
            ]),
          ),
          alert(
            'KsmSensitiveWorkloadRegistered',
            'warning',
            |||
              ksm_process_rmap_items{%(sel)s}
                * on (%(cluster)s, job, instance) group_left () ksm_page_size_bytes{%(sel)s}
              and %(join)s
              (ksm_process_merge_any{%(sel)s} == 1 or ksm_process_mergeable{%(sel)s} == 1)
              unless %(join)s
              ksm_process_merging_pages{%(sel)s} > 0
              and %(join)s
              process:ksm_sensitive_workload:selected
            ||| % { sel: sel, cluster: c.clusterLabel, join: join },
            'A sensitive workload is registered with KSM.',
            std.join(' ', [
              who,
              'is registered with KSM, which has scanned {{ $value | humanize1024 }}B of its',
              "memory and may merge it at ksmd's next pass; merged pages let other workloads on",
              'the host time its memory contents.',
            ]),
          ),
          alert(
            'KsmSensitiveWorkloadSharesAcrossTenants',
            'critical',
            |||
              (
              %(tenants)s
              )
                * on (%(cluster)s, job, instance) group_left () ksm_page_size_bytes{%(sel)s} > 0
            ||| % {
              sel: sel,
              cluster: c.clusterLabel,
              // The sensitive-workload selector, applied to the sharing collector's tenant
              // series: they carry the label of --collector.sharing.tenant-by's key.
              tenants: std.join('\n', [
                '  ' + std.strReplace(line, 'ksm_process_merging_pages', 'ksm_sharing_tenant_shared_frames')
                for line in std.split(c.sensitiveWorkloads, '\n')
                if line != ''
              ]),
            },
            'A sensitive workload shares memory pages with another tenant.',
            std.join(' ', [
              'Tenant{{ with $labels.vm }} VM {{ . }}{{ end }}{{ with $labels.namespace }} namespace {{ . }}{{ end }}{{ with $labels.unit }} unit {{ . }}{{ end }}{{ with $labels.cgroup }} cgroup {{ . }}{{ end }}{{ with $labels.uid }} uid {{ . }}{{ end }}{{ with $labels.pid }} pid {{ . }} ({{ $labels.comm }}){{ end }} on %s' % where,
              'has {{ $value | humanize1024 }}B of KSM pages merged with pages of other tenants,',
              'which can time its memory contents through them; ksm_sharing_pair_frames says with',
              'whom.',
            ]),
          ),
        ],
      },
      {
        // The exporter's own advice (docs/tuning.md), once it has observed enough full scans.
        name: 'ksm-tuning',
        rules: [
          alert(
            'KsmTuningAdvice',
            'info',
            |||
              (
                (
                  ksm_tuning_recommended_pages_to_scan{%(sel)s} > %(factor)s * ksm_pages_to_scan{%(sel)s}
                  or
                  ksm_tuning_recommended_pages_to_scan{%(sel)s} < ksm_pages_to_scan{%(sel)s} / %(factor)s
                )
                unless %(on)s
                ksm_advisor_mode{%(sel)s, mode="scan-time"} == 1
                or
                (
                  ksm_tuning_recommended_full_scan_seconds{%(sel)s}
                    > %(factor)s * ksm_advisor_target_scan_time_seconds{%(sel)s}
                  or
                  ksm_tuning_recommended_full_scan_seconds{%(sel)s}
                    < ksm_advisor_target_scan_time_seconds{%(sel)s} / %(factor)s
                )
                and %(on)s
                ksm_advisor_mode{%(sel)s, mode="scan-time"} == 1
              )
              and %(on)s
              %(ksmOn)s
              unless %(on)s
              ksm_tuning_recommended_run{%(sel)s} == 0
            ||| % { sel: sel, on: on, factor: c.tuningAdviceFactor, ksmOn: ksmOn },
            'KSM scans at a speed far from what its measured cost and savings suggest.',
            std.join(' ', [
              'For %s ksm-exporter on %s has recommended {{ $value | humanize }}' % [c.alertFor.KsmTuningAdvice, where],
              "(pages_to_scan, or the full-scan time in seconds where the kernel's scan-time",
              'advisor runs), more than %s times away from the setting: pages_to_scan is' % c.tuningAdviceFactor,
              '%s, advisor_target_scan_time %s.' % [
                figure('ksm_pages_to_scan', 'humanize'),
                figure('ksm_advisor_target_scan_time_seconds', 'humanizeDuration', otherwise='not offered (a kernel without the advisor)'),
              ],
              'ksmd would use %s of a CPU at the recommended settings' % figure('ksm_tuning_predicted_ksmd_cpu_ratio', 'humanizePercentage', labels="settings='recommended',"),
              'against %s now.' % figure('ksm_tuning_predicted_ksmd_cpu_ratio', 'humanizePercentage', labels="settings='current',"),
            ]),
          ),
          alert(
            'KsmTunerOverridden',
            'warning',
            |||
              ksm_tuner_changes_total{%(sel)s}
              and %(on)s
              ksm_tuner_state{%(sel)s, state="overridden"} == 1
            ||| % { sel: sel, on: on },
            'ksm-exporter tune stopped because someone else wrote a KSM setting.',
            std.join(' ', [
              'ksm-exporter tune on %s stopped (exit status 3) when a KSM setting changed' % where,
              'that it had not written; systemd does not start it again, and KSM stays as the',
              'operator left it. It had written {{ $value | humanize }} settings before.',
            ]),
          ),
          alert(
            'KsmTunerNotDeciding',
            'warning',
            |||
              time() - ksm_tuner_last_decision_timestamp_seconds{%(sel)s} > %(age)s
              and %(on)s
              ksm_tuner_state{%(sel)s, state="tuning"} == 1
            ||| % { sel: sel, on: on, age: c.tunerDecisionMaxAge },
            'ksm-exporter tune says it tunes but has not decided for a long time.',
            std.join(' ', [
              'The state file of ksm-exporter tune on %s says it tunes, but its last' % where,
              'decision is {{ $value | humanizeDuration }} old (it decides every 5 s and',
              'records it at least every minute): it hangs, was killed without a chance to',
              'record its stop, or cannot write its state file.',
            ]),
          ),
        ],
      },
    ],
  },
}
