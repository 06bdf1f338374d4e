"""Runnable recipes on aiotd (not part of the package): ``examples.fastapi_app``."""
