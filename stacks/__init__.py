"""The platform's components: each installed by a bootstrap stage, later owned by GitOps.

Nothing here imports `bootstrap`, click or rich: these programs also run in the cluster.
"""
