"""A campaign's path through the stages: intake (validate, archive, install), the stage functions each Dagster asset
calls, and the profile checks. The top of the engine.

Rule: may import every capability folder; never cli.
"""
