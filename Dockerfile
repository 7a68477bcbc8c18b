# labswitch as a container: non-root, config and state as volumes, no secrets in the image.
#   docker build -t labswitch .
#   docker run --rm -v "$PWD/labswitch.toml:/config/labswitch.toml:ro" -v labswitch-state:/state \
#       -e LABSWITCH_VCENTER_PASSWORD -e LABSWITCH_BMC_PASSWORD labswitch status
# PYTHON_IMAGE: any image with python3 >= 3.11 and its venv module (default: the official slim one).
ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN python3 -m venv /opt/labswitch \
    && /opt/labswitch/bin/pip install --no-cache-dir . \
    && find /opt/labswitch -name __pycache__ -prune -exec rm -rf {} +

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="labswitch" \
      org.opencontainers.image.description="Switch a VMware vSphere lab on and off on demand, and keep it healthy."
COPY --from=build /opt/labswitch /opt/labswitch
RUN useradd --system --uid 10001 --home-dir /state --shell /usr/sbin/nologin labswitch \
    && mkdir -p /config /state \
    && chown 10001 /state
ENV PATH=/opt/labswitch/bin:$PATH \
    LABSWITCH_CONFIG=/config/labswitch.toml \
    XDG_STATE_HOME=/state \
    PYTHONUNBUFFERED=1
VOLUME ["/config", "/state"]
EXPOSE 8330
USER 10001
WORKDIR /state
ENTRYPOINT ["labswitch"]
CMD ["--help"]
