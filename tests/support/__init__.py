"""Helpers for the test fixtures: starting real processes and finding test binaries."""
