"""What tests/, lab/ and bench/ all drive, owned by none of them.

The real exporter as a child process (exporter_process), a real Prometheus server
(prometheus_server), the host's real KSM under one lock with its settings restored
(real_ksm) and a child whose pages KSM merges (merging_workload), cgroups made and removed
(cgroups), the committed dashboards and rule files loaded for assertions (dashboards,
rule_files), exposition text turned back into numbers (exposition), the one way to wait
for a condition (eventually), the external programs a run needs (tools) and where the
repository's files are (paths).

The rule (tests/test_folders_stand_apart.py): harness imports neither tests, lab nor bench;
lab and bench never import tests; tests may import all three. eventually and
merging_workload use the standard library alone, because lab guests carry them.
"""
