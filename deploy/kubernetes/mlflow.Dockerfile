# The MLflow tracking server of deploy/kubernetes/mlflow.yaml: MLflow at the version the
# project pins, psycopg2 for its PostgreSQL backend store and boto3 for its S3/MinIO artifact
# store. Build from the repository root:
#
#   docker build -f deploy/kubernetes/mlflow.Dockerfile -t registry.example.com/mlops/mlflow:3.17.2 .
FROM python:3.11.14-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MLFLOW_ENABLE_TELEMETRY=false \
    DO_NOT_TRACK=true

COPY constraints.txt /tmp/constraints.txt
RUN pip install -c /tmp/constraints.txt mlflow psycopg2-binary boto3 \
    && mlflow --version

RUN groupadd --gid 10001 mlflow && useradd --create-home --uid 10001 --gid 10001 mlflow
USER 10001
EXPOSE 5000
CMD ["mlflow", "server", "--host", "0.0.0.0", "--port", "5000"]
