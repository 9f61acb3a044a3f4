# The CrisisLandMark image: the pipeline package, its DAGs and run configs, Airflow with the
# Celery provider, the Dask build engine and torch, every Python package pinned by
# requirements.lock. Runs as the unprivileged user `clm` (uid 50000, gid 0). No secrets: every
# credential reaches the containers at run time through docker-compose.yml and `.env`.
#
#   docker build -t crisislandmark:0.1.0 .                                  # CPU torch
#   docker build -t crisislandmark:0.1.0-cu126 --build-arg TORCH_VARIANT=cu126 .  # CUDA torch
#
# torch: requirements.lock pins the CPU build (`torch==X+cpu`), which exists only on the
# PyTorch wheel index, so pip gets that index as an extra index. TORCH_VARIANT rewrites the
# pin to another build of the same version (`cu126`, `cu128`, ...) from its PyTorch index: the
# CUDA runtime comes inside those wheels, the host only needs the NVIDIA driver.

ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ARG TORCH_VARIANT=cpu
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY requirements.lock ./
# The lock minus this project (never in it) with torch pinned to the chosen build.
RUN sed -E "s/^torch==([0-9.]+)\+cpu$/torch==\1+${TORCH_VARIANT}/" requirements.lock \
        > /tmp/constraints.txt \
    && grep -q "^torch==.*+${TORCH_VARIANT}$" /tmp/constraints.txt
COPY pyproject.toml README.md ./
COPY pipeline ./pipeline
COPY schemas ./schemas
# Non-editable install: the image does not depend on /src. The `celery` extra brings the
# Celery provider, psycopg2 and redis; every version comes from the lock.
RUN python -m pip install \
        --extra-index-url "https://download.pytorch.org/whl/${TORCH_VARIANT}" \
        -c /tmp/constraints.txt ".[celery]" \
    && python -m pip check

FROM ${PYTHON_IMAGE}
ARG CLM_UID=50000
LABEL org.opencontainers.image.title="crisislandmark" \
      org.opencontainers.image.description="CrisisLandMark corpus builder: Airflow DAGs, Celery workers, Dask engine, CLOSP training"
RUN useradd --uid "${CLM_UID}" --gid 0 --home-dir /opt/airflow --create-home --shell /bin/bash clm \
    && mkdir -p /opt/airflow/logs /opt/airflow/config /srv/clm/archive /srv/clm/corpus \
        /srv/clm/corpus/model /srv/clm/stac-mirror \
    && chown -R "${CLM_UID}:0" /opt/airflow /srv/clm \
    && chmod -R g=u /opt/airflow /srv/clm
COPY --from=build /opt/venv /opt/venv
COPY --chown=${CLM_UID}:0 dags /opt/crisislandmark/dags
COPY --chown=${CLM_UID}:0 configs /srv/clm/configs
# Non-secret defaults only. The compose file adds the database, broker and secrets.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    AIRFLOW_HOME=/opt/airflow \
    AIRFLOW__CORE__DAGS_FOLDER=/opt/crisislandmark/dags \
    AIRFLOW__CORE__LOAD_EXAMPLES=False \
    CLM_HOME=/srv/clm
USER ${CLM_UID}:0
WORKDIR /opt/airflow
EXPOSE 8080
ENTRYPOINT ["airflow"]
CMD ["version"]
