# crisiswatch worker/responder image. Used by docker-compose.yml and deploy/k8s.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 NUMBA_CACHE_DIR=/tmp/numba-cache
WORKDIR /app
COPY pyproject.toml README.md ./
COPY streams ./streams
COPY detectors ./detectors
COPY schemas ./schemas
RUN pip install --no-cache-dir . && useradd --system --uid 10001 crisiswatch
USER crisiswatch
EXPOSE 6066
ENTRYPOINT ["crisiswatch"]
CMD ["worker"]
