"""Harness code shared by the tests and the benches (see `tests.support.services`)."""
