"""Shared Kubernetes helpers for every component: the API adapter, object refs, waiting.

`client.py` is the only module in the project that imports the `kubernetes` package.
Everything above it passes plain JSON dicts (`KubeObject`) and `ObjectRef` values.
"""
