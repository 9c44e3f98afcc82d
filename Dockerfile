# One image for every in-house component: `platform run <component>` is the entrypoint
# (gitserver, reconciler, secrets, certs, dns, unsealer).
#
# Built by `platform image build` (bootstrap/docker/build.py), which puts wheels
# into the build context (`pip wheel` on the host), so nothing inside the build reaches a
# package registry:
#   wheels/deps/     every dependency, and pip itself (run from its wheel, never installed)
#   wheels/project/  the platform's own wheel
#   bin/             helm and kustomize (possibly none), for the reconciler
# By hand:
#
#     python3 -m pip wheel --wheel-dir wheels/deps . pip
#     mkdir -p wheels/project && mv wheels/deps/platform_gitops-*.whl wheels/project/
#     mkdir -p bin   # and put helm and kustomize there
#     docker build -t platform-components:dev .
#
# Stages, so that a rebuild after a code change only redoes the small project layer:
#   deps     the dependencies in the venv /opt/platform (cached while they do not change;
#            `platform image build` tags it so the cache survives its clean-up)
#   project  the platform itself, in /opt/platform-project (found through a .pth file)
#   final    the base, git, and the two directories copied in
#
# ARG BASE: any Debian-like image with python3 (same minor version as the Python that
# built the wheels); git is installed from apt only when the base lacks it (the default
# slim image does; a base made from Debian packages can carry it).
ARG BASE=python:3.11-slim-bookworm

FROM ${BASE} AS deps
LABEL io.platform.build=component-image
COPY wheels/deps/ /wheels/
# Trimmed after install, all of it code the components never import (`platform run` and
# stacks/ never touch rich: the import-linter contract in pyproject.toml guards it):
# - kubernetes' asyncio client (kubernetes.aio, ~70 MB with aiohttp and its helpers);
#   stacks/kube/client.py uses the synchronous client;
# - rich and what it brings (pygments, markdown-it; ~15 MB): the terminal UI of
#   `platform up` and friends, which do not run in the image;
# - bytecode caches: dependencies install with --no-compile (~23 MB saved, ~0.3 s more
#   at a component's start), except kubernetes' generated API client, which would cost
#   seconds to compile at every start and so ships as docstring-free bytecode only
#   (~18 MB instead of ~57 MB of sources, docstrings and bytecode).
# The venv has no pip: pip runs from its wheel, in the build only.
ARG TRIM="aiohttp aiohttp-retry aiosignal aiohappyeyeballs attrs frozenlist multidict propcache yarl \
rich pygments markdown-it-py mdurl"
RUN python3 -m venv --without-pip /opt/platform \
 && PY=/opt/platform/bin/python \
 && PIP="$PY $(ls /wheels/pip-*.whl)/pip --disable-pip-version-check" \
 && $PIP install --no-index --no-cache-dir --no-compile --find-links /wheels $(ls /wheels/*.whl | grep -v /pip-) \
 && $PIP uninstall -q -y $TRIM \
 && SITE="$($PY -c 'import sysconfig; print(sysconfig.get_path("purelib"))')" \
 && echo /opt/platform-project > "$SITE/platform-project.pth" \
 && rm -rf "$SITE/kubernetes/aio" \
 && cd "$SITE/kubernetes" \
 && $PY -m compileall -q -b -o 2 client \
 && find client -name '*.py' -delete && find client -name __pycache__ -prune -exec rm -rf {} +

FROM deps AS project
COPY wheels/project/ /wheels/project/
# --target keeps the project out of the venv; the console script's interpreter is the
# venv's python, which finds /opt/platform-project through the .pth file written above.
# The import line proves every component loads with the trimmed dependencies.
RUN PY=/opt/platform/bin/python \
 && $PY "$(ls /wheels/pip-*.whl)/pip" install --disable-pip-version-check --no-index \
        --no-cache-dir --no-deps --target /opt/platform-project /wheels/project/*.whl \
 && $PY -c "import kubernetes, stacks.kube.client, stacks.gitserver.program, \
stacks.reconciler.program, stacks.secrets.program, stacks.certs.program, stacks.dns.program, \
stacks.vault.unsealer, bootstrap.cli.main, bootstrap.cli.run"

FROM ${BASE}
# git with git-http-backend (the git server) and git itself (the reconciler's source).
# Installed the way Debian's slim images install anything: no docs, man pages or
# translations, no apt caches left in the layer. Debian's git depends on perl (~47 MB)
# for commands the components never run (send-email, svn, instaweb): every git command
# they use (http-backend, clone, fetch, cat-file, rev-parse) is C, and the check below
# runs them, so perl is removed again. apt will want it back before installing anything
# else in an image built on this one (`apt-get install -f`). Also removed: git programs
# for protocols the platform does not serve or use (git daemon, git shell, IMAP, dumb
# HTTP, scalar), ~2 MB each.
ARG PERL_PACKAGES="perl perl-modules-5.36 libperl5.36 liberror-perl git-man"
ARG GIT_UNUSED="git-daemon git-shell git-imap-send git-http-push git-http-fetch scalar"
RUN if ! command -v git >/dev/null; then \
        printf '%s\n' 'path-exclude /usr/share/doc/*' 'path-exclude /usr/share/man/*' \
            'path-exclude /usr/share/locale/*' 'path-exclude /usr/share/info/*' \
            > /etc/dpkg/dpkg.cfg.d/platform-slim \
        && apt-get update \
        && apt-get install -y --no-install-recommends git ca-certificates \
        && dpkg --purge --force-depends $PERL_PACKAGES \
        && (cd "$(git --exec-path)" && rm -f $GIT_UNUSED) \
        && rm -rf /usr/share/gitweb /usr/share/perl5/Git /usr/share/perl5/Git.pm \
        && apt-get clean \
        && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log; \
    fi \
 && test -x "$(git --exec-path)/git-http-backend" \
 && git init -q --bare /tmp/check.git && git -C /tmp/check.git rev-parse --git-dir >/dev/null \
 && git clone -q /tmp/check.git /tmp/check 2>/dev/null && rm -rf /tmp/check.git /tmp/check \
 && (getent group 65532 >/dev/null || groupadd --gid 65532 platform) \
 && (getent passwd 65532 >/dev/null || useradd -K UID_MAX=65535 --uid 65532 --gid 65532 --no-create-home \
        --home-dir /tmp --shell /usr/sbin/nologin platform)
# helm and kustomize, which the reconciler renders charts and kustomizations with: put
# into bin/ by `platform image build` (bootstrap/docker/renderers.py: release archives
# verified against bootstrap/pins.py, or the tests' own builds); bin/ may be empty.
COPY bin/ /usr/local/bin/
COPY --from=deps /opt/platform /opt/platform
COPY --from=project /opt/platform-project /opt/platform-project
ENV PATH=/opt/platform-project/bin:/opt/platform/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp \
    LANG=C.UTF-8
# Marks every image of this build, so `platform image build` can remove the untagged
# ones an earlier build left behind (docker image prune --filter label=...).
LABEL io.platform.build=component-image
USER 65532:65532
WORKDIR /tmp
ENTRYPOINT ["platform", "run"]
CMD ["--help"]
