"""`ksm-exporter tune`: the one command that writes KSM's settings."""
