"""`ksm-exporter status`: one snapshot of KSM for a person at a terminal or a script."""
