"""`video-pipeline`: the command line (`validate`, `plan`, `run`, `status`, `spend`, `resolve`, `webhooks serve`,
`fakes serve`).

Rule: nothing imports the CLI.
"""
