"""The video generation engine: campaign specs, routing, planning, providers, media and storage.

Nothing in this package imports Dagster; it can be driven from a script or another orchestrator.
"""

__version__ = "0.1.0"
