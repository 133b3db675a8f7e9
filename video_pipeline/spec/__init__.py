"""The campaign format: what a campaign file may say (pydantic models, the YAML/JSON/CSV/JSONL readers, the
field → line map) and the five task categories a shot's inputs decide.

Rule: imports only the package's core modules (config, errors, atomic, tables, db).
"""
