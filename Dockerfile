# kube-tts control-plane images: one base, a target per component. From the repository root:
#
#   docker build --target operator -t kube-tts/operator .
#   docker build --target router   -t kube-tts/router   .   # the API and the web UI
#   docker build --target mcp      -t kube-tts/mcp      .   # the MCP server (streamable HTTP on :8090)
#   docker build --target wyoming  -t kube-tts/wyoming  .   # the Wyoming TTS server (Home Assistant, TCP :10200)
#
# (`make images` builds the same targets with podman and pushes them to the local registry; see
# docs/images.md.) The inference image has its own Dockerfile (inference_image/Dockerfile: cpu and
# cuda targets). Every image runs as uid 65532 with a read-only root filesystem; the chart mounts an
# emptyDir at /tmp.
#
# Layer order: each image installs its extra's dependencies (listed from pyproject.toml alone by
# images/extra_requirements.py) before any source is copied, then copies kube-tts itself, built
# in the `app` stage, as one small layer: a code change rebuilds in seconds and leaves no sources,
# build files or pip cache behind. setuptools finds the packages of every component folder; only
# the component's extra's dependencies install.
#
# PIP_CERT (a build argument, unset by default): the CA bundle pip trusts, for builds behind a
# TLS-inspecting proxy; mount that bundle for the build (`make images` passes its own path and
# mounts the host's bundle read-only), so that it never lands in a layer.
#
# Bytecode: pip installs with --no-compile and each install step compiles what it installed with
# `compileall --invalidation-mode unchecked-hash`. The pods' root filesystems are read-only and
# PYTHONDONTWRITEBYTECODE is set, so an image without .pyc files compiles every module it imports
# on every start (the inference server's imports: 4.7 s without, 1.6 s with, on a loaded 2-core
# machine); hash-based .pyc files hold no timestamps, so a rebuild gives the same layer.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS base
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HOME=/tmp \
    TMPDIR=/tmp
RUN groupadd --gid 65532 kubetts && useradd --uid 65532 --gid 65532 --no-create-home --home-dir /tmp kubetts
WORKDIR /src
COPY pyproject.toml images/extra_requirements.py ./

# kube-tts itself, installed under /install; every image copies that folder into /usr/local
FROM base AS app
ARG PIP_CERT
RUN pip install --no-compile 'setuptools>=77'
COPY README.md ./
COPY crds crds
COPY operator operator
COPY api api
COPY inference_image inference_image
COPY mcp_server mcp_server
COPY renderer renderer
COPY wyoming_server wyoming_server
COPY devcluster devcluster
RUN pip install --no-deps --no-compile --no-build-isolation --prefix=/install . \
    && python -m compileall -q -j0 --invalidation-mode unchecked-hash -s /install -p /usr/local /install \
    && mkdir -p /install/share/kube-tts

FROM base AS operator
ARG PIP_CERT
# the operator decodes voice clips with libsndfile (the soundfile wheel bundles it)
RUN python extra_requirements.py operator > requirements.txt \
    && pip install --no-compile -r requirements.txt \
    && python -m compileall -q -j0 --invalidation-mode unchecked-hash "$(python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')" \
    && rm -rf /src
COPY --from=app /install /usr/local
WORKDIR /
RUN pip list --format=freeze > /usr/local/share/kube-tts/packages.txt
USER 65532:65532
CMD ["python", "-m", "tts_operator"]
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="kube-tts-operator" \
      org.opencontainers.image.description="kube-tts operator: TtsDeployment and TtsVoice (Kopf)" \
      org.opencontainers.image.source="https://github.com/kube-tts/kube-tts" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0"

FROM base AS router
ARG PIP_CERT
RUN python extra_requirements.py api > requirements.txt \
    && pip install --no-compile -r requirements.txt \
    && python -m compileall -q -j0 --invalidation-mode unchecked-hash "$(python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')" \
    && rm -rf /src
COPY --from=app /install /usr/local
WORKDIR /
RUN pip list --format=freeze > /usr/local/share/kube-tts/packages.txt
USER 65532:65532
EXPOSE 8080
CMD ["python", "-m", "tts_api"]
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="kube-tts-router" \
      org.opencontainers.image.description="kube-tts router: the OpenAI-compatible speech API and the web UI" \
      org.opencontainers.image.source="https://github.com/kube-tts/kube-tts" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0"

# The MCP server holds no key in HTTP mode: every request carries the caller's router API key as
# `Authorization: Bearer`, which it passes on. The same image speaks stdio:
#   docker run -i --rm -e KUBETTS_URL=… kube-tts/mcp kube-tts-mcp --transport stdio
FROM base AS mcp
ARG PIP_CERT
RUN python extra_requirements.py mcp > requirements.txt \
    && pip install --no-compile -r requirements.txt \
    && python -m compileall -q -j0 --invalidation-mode unchecked-hash "$(python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')" \
    && rm -rf /src
COPY --from=app /install /usr/local
WORKDIR /
RUN pip list --format=freeze > /usr/local/share/kube-tts/packages.txt
USER 65532:65532
EXPOSE 8090
ENV KUBETTS_MCP_TRANSPORT=http \
    KUBETTS_MCP_HOST=0.0.0.0 \
    KUBETTS_MCP_PORT=8090 \
    KUBETTS_MCP_LOG_LEVEL=info
CMD ["kube-tts-mcp"]
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="kube-tts-mcp" \
      org.opencontainers.image.description="kube-tts MCP server (streamable HTTP or stdio), a client of the router" \
      org.opencontainers.image.source="https://github.com/kube-tts/kube-tts" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0"

# The Wyoming server (Home Assistant's protocol: JSON lines and PCM over TCP) holds one router key,
# given as KUBETTS_API_KEY from a Secret; Wyoming itself has no authentication.
#   docker run --rm -p 10200:10200 -e KUBETTS_URL=… -e KUBETTS_API_KEY=… kube-tts/wyoming
FROM base AS wyoming
ARG PIP_CERT
RUN python extra_requirements.py wyoming > requirements.txt \
    && pip install --no-compile -r requirements.txt \
    && python -m compileall -q -j0 --invalidation-mode unchecked-hash "$(python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')" \
    && rm -rf /src
COPY --from=app /install /usr/local
WORKDIR /
RUN pip list --format=freeze > /usr/local/share/kube-tts/packages.txt
USER 65532:65532
EXPOSE 10200
ENV KUBETTS_WYOMING_URI=tcp://0.0.0.0:10200 \
    KUBETTS_WYOMING_LOG_LEVEL=info
CMD ["kube-tts-wyoming"]
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="kube-tts-wyoming" \
      org.opencontainers.image.description="kube-tts Wyoming TTS server (Home Assistant), a client of the router" \
      org.opencontainers.image.source="https://github.com/kube-tts/kube-tts" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0"
