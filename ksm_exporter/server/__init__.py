"""The HTTP side: routing, shared collections and encoding."""
