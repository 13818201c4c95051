"""Prometheus exporter for Linux Kernel Samepage Merging (KSM)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("ksm-exporter")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
