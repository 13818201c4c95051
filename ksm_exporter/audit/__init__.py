"""`ksm-exporter audit`: who shares KSM pages with whom (read-only, needs CAP_SYS_ADMIN)."""
