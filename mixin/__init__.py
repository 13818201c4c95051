"""The monitoring mixin (mixin.libsonnet) and its renderer."""
