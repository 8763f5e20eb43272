"""The whole platform in one process (embedded mode): ``python -m hotline``."""
