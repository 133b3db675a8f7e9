"""Media work through ffmpeg (argument lists, never a shell) and probing through PyAV.

Rule: imports only the package's core modules (config, errors, atomic, tables, db); never providers.
"""
