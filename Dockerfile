FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml constraints.txt ./
COPY shared ./shared
COPY services ./services
COPY carepath ./carepath
# /app/var: the heartbeats `carepath health` reads (compose healthchecks)
RUN pip install --no-cache-dir -c constraints.txt . && useradd --system carepath \
    && mkdir -p /app/var && chown carepath /app/var
USER carepath
CMD ["carepath", "--help"]
