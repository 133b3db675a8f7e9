"""Dagster assets, checks, partitions, jobs, sensors and schedules. Each asset is thin: it calls the engine."""
