"""Metric implementations; each module registers its metrics with ``@register_metric``."""
