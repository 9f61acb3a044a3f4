FROM python:3.11-slim
WORKDIR /opt/crisislandmark
COPY pyproject.toml requirements.lock README.md ./
COPY pipeline ./pipeline
COPY schemas ./schemas
COPY dags ./dags
COPY configs ./configs
RUN pip install --no-cache-dir -c requirements.lock -e . psycopg2-binary
ENV AIRFLOW__CORE__DAGS_FOLDER=/opt/crisislandmark/dags \
    AIRFLOW__CORE__LOAD_EXAMPLES=False
