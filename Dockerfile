# kube-tts control-plane images: one base, a target per component. From the repository root:
#
#   docker build --target operator -t kube-tts/operator .
#   docker build --target router   -t kube-tts/router   .   # the API and the web UI
#   docker build --target mcp      -t kube-tts/mcp      .   # the MCP server (streamable HTTP on :8090)
#
# The inference image has its own Dockerfile (inference_image/Dockerfile: cpu and cuda targets).
# Every image runs as uid 65532 with a read-only root filesystem; the chart mounts an emptyDir at
# /tmp. setuptools finds the packages of every component folder; only the component's extra installs.
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
COPY pyproject.toml README.md ./
COPY crds crds
COPY operator operator
COPY api api
COPY inference_image inference_image
COPY mcp_server mcp_server
COPY devcluster devcluster

FROM base AS operator
# the operator decodes voice clips with libsndfile (the soundfile wheel bundles it)
RUN pip install --no-compile '.[operator]' && rm -rf /src
WORKDIR /
USER 65532:65532
CMD ["python", "-m", "tts_operator"]

FROM base AS router
RUN pip install --no-compile '.[api]' && rm -rf /src
WORKDIR /
USER 65532:65532
EXPOSE 8080
CMD ["python", "-m", "tts_api"]

# The MCP server holds no key in HTTP mode: every request carries the caller's router API key as
# `Authorization: Bearer`, which it passes on. The same image speaks stdio:
#   docker run -i --rm -e KUBETTS_URL=… kube-tts/mcp kube-tts-mcp --transport stdio
FROM base AS mcp
RUN pip install --no-compile '.[mcp]' && rm -rf /src
WORKDIR /
USER 65532:65532
EXPOSE 8090
ENV KUBETTS_MCP_TRANSPORT=http \
    KUBETTS_MCP_HOST=0.0.0.0 \
    KUBETTS_MCP_PORT=8090 \
    KUBETTS_MCP_LOG_LEVEL=info
CMD ["kube-tts-mcp"]
