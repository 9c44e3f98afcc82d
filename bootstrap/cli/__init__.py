"""The `platform` command line: one thin module per command, loaded only when invoked.

`main.py` is the entry point (the console script). Commands parse flags, build settings,
and hand off to `bootstrap.stages` or `stacks.*`; all output goes through
`bootstrap.cli.terminal`.
"""
