"""The platform's GitOps repository, from the bootstrap's side.

    repo.py        render gitops-template/ into the repository's files; its URLs
    source.py      where the cluster pulls it from, and with which read-only login
    git_client.py  the one GitPython adapter: push, remote heads, a clone for a person

Used by the `gitserver`, `seed` and `reconciler` stages and by `platform git ...`.
"""
