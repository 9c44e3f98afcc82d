# One image for every in-house component: `platform run <component>` is the entrypoint
# (gitserver, reconciler, secrets, certs, dns, unsealer).
#
# Built by `platform image build` (bootstrap/cli/image.py), which puts the project and
# its dependencies as wheels into the build context's wheels/ directory (`pip wheel` on
# the host), so nothing inside the build reaches a package registry. By hand:
#
#     python3 -m pip wheel --wheel-dir wheels . && docker build -t platform-components:dev .
#
# ARG BASE: any Debian-like image with python3 (same minor version as the Python that
# built the wheels) and the venv module; git is installed from apt only when the base
# lacks it (the default slim image does; a base made from Debian packages can carry it).
ARG BASE=python:3.11-slim-bookworm

FROM ${BASE} AS install
COPY wheels/ /wheels/
# Trimmed after install: kubernetes' asyncio client (kubernetes.aio, ~70 MB with aiohttp
# and its helpers) is never imported by the components (stacks/kube/client.py uses the
# synchronous client); its generated API client (~57 MB of sources, docstrings and
# bytecode) ships as docstring-free bytecode only (~18 MB); pip is not needed at run time.
# The import line proves every component still loads.
ARG TRIM="aiohttp aiohttp-retry aiosignal aiohappyeyeballs attrs frozenlist multidict propcache yarl"
RUN python3 -m venv /opt/platform \
 && PIP="/opt/platform/bin/python -m pip --disable-pip-version-check" \
 && $PIP install --no-index --no-cache-dir --find-links /wheels platform-gitops \
 && $PIP uninstall -q -y $TRIM \
 && rm -rf /opt/platform/lib/python3*/site-packages/kubernetes/aio \
 && cd /opt/platform/lib/python3*/site-packages/kubernetes \
 && /opt/platform/bin/python -m compileall -q -b -o 2 client \
 && find client -name '*.py' -delete && find client -name __pycache__ -prune -exec rm -rf {} + \
 && cd / \
 && $PIP uninstall -q -y pip setuptools \
 && /opt/platform/bin/python -c "import kubernetes, stacks.kube.client, stacks.gitserver.program, \
stacks.reconciler.program, stacks.secrets.program, stacks.certs.program, stacks.dns.program, \
stacks.vault.unsealer, bootstrap.cli.run"

FROM ${BASE}
# git with git-http-backend (the git server) and git itself (the reconciler's source).
RUN if ! command -v git >/dev/null; then \
        apt-get update \
        && apt-get install -y --no-install-recommends git ca-certificates \
        && rm -rf /var/lib/apt/lists/*; \
    fi \
 && test -x "$(git --exec-path)/git-http-backend" \
 && (getent group 65532 >/dev/null || groupadd --gid 65532 platform) \
 && (getent passwd 65532 >/dev/null || useradd -K UID_MAX=65535 --uid 65532 --gid 65532 --no-create-home \
        --home-dir /tmp --shell /usr/sbin/nologin platform)
COPY --from=install /opt/platform /opt/platform
ENV PATH=/opt/platform/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp \
    LANG=C.UTF-8
USER 65532:65532
WORKDIR /tmp
ENTRYPOINT ["platform", "run"]
CMD ["--help"]
