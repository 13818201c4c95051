// The ksm-exporter monitoring mixin: recording rules, alerts and dashboards for Linux KSM.
//
//   local ksm = (import 'ksm-exporter-mixin/mixin.libsonnet') + {
//     _config+:: { selector: 'job="ksm"', thresholds+: { ksmd_cpu_ratio: 0.4 } },
//   };
//   { 'ksm-rules.yml': std.manifestYamlDoc(ksm.prometheusRules) }
(import 'config.libsonnet') +
(import 'rules.libsonnet') +
(import 'alerts.libsonnet') +
(import 'dashboards.libsonnet')
