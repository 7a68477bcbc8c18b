# labswitch as a container: non-root, config and state as volumes, no secrets in the image.
#   docker build -t labswitch .
#   docker run --rm -v "$PWD/labswitch.toml:/config/labswitch.toml:ro" -v labswitch-state:/state \
#       -e LABSWITCH_VCENTER_PASSWORD -e LABSWITCH_BMC_PASSWORD labswitch status
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
LABEL org.opencontainers.image.title="labswitch" \
      org.opencontainers.image.description="Switch a VMware vSphere lab on and off on demand, and keep it healthy."
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links=/wheels /wheels/labswitch-*.whl \
    && rm -rf /wheels \
    && useradd --system --uid 10001 --home-dir /state --shell /usr/sbin/nologin labswitch \
    && mkdir -p /config /state \
    && chown labswitch /state
ENV LABSWITCH_CONFIG=/config/labswitch.toml \
    XDG_STATE_HOME=/state \
    PYTHONUNBUFFERED=1
VOLUME ["/config", "/state"]
USER 10001
WORKDIR /state
ENTRYPOINT ["labswitch"]
CMD ["--help"]
