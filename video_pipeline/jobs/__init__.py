"""Running paid work: the engine (segments on one event loop, slots, polling, retries, fallbacks), the job ledger,
the poll schedule, the webhook receiver and what a campaign spent.

Rule: imports anything below it (core, media, spec, storage, planning, providers); never report, flow or cli.
"""
