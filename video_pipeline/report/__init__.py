"""What a person reads: the campaign's HTML report and the progress a run shows while it runs.

Rule: imports core, media, spec, storage, planning and jobs; never flow or cli.
"""
