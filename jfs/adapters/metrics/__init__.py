"""Exporters of a client's metrics (Prometheus, with the official `prometheus-client`)."""
