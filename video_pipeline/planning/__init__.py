"""From a campaign to priced segments: the model catalog and its billing rules, the router, the planner and the
latencies and failures observed so far.

Rule: imports core, media, spec and storage; never providers, jobs or anything above.
"""
