"""Pure readers of sysfs and procfs: each returns a typed snapshot and never raises on bad data."""
