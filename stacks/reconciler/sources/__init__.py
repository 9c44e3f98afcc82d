"""Helm charts and Kustomize directories as Application sources (issue 18).

    spec        source.helm, source.kustomize and source.chart as frozen values (api.py)
    run         one tool run, bounded: a timeout, an output cap, stderr trimmed and escaped
    checkout    a commit's tree written to a scratch directory, bounded, for the tools
    kustomize   `kustomize edit` on a scratch copy for Argo CD's fields, then `kustomize build`
    helm        `helm template` argv and values for Argo CD's source.helm fields
    charts      charts fetched from HTTP(S) chart repositories and OCI registries, cached
    repos       credentials for chart repositories from label-selected Secrets
    renderer    which tool a source needs, and the render itself; desired.py calls it

The tools' output is YAML like any file in git: render.py parses and bounds it, so a
chart is held to the same limits as a directory of manifests.
"""
