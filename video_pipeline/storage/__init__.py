"""Where clips live: downloads checked by the network guard, verified and stored content-addressed on disk or in S3.

Rule: imports only core and media.
"""
