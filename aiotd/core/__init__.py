"""Resources of the v3 REST API."""
