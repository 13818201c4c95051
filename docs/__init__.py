"""The docs whose tables are generated: `make docs` (`python -m docs.generate`)."""
