# One image for every process of the platform. The command picks the process:
#   python -m gateway              (default)
#   python -m services.intake      python -m services.dispatch    python -m services.sla
#   python -m services.knowledge   python -m services.evaluation
# Configuration is environment only (HOTLINE_*, see shared/settings.py). HOTLINE_ENV is
# deliberately not set here: docker-compose.yml (or your orchestrator) sets it, because
# HOTLINE_ENV=production refuses to start with the development secrets.

ARG PYTHON_IMAGE=python:3.11-slim

# ---- build: a virtualenv with the project and its dependencies ---------------------------
FROM ${PYTHON_IMAGE} AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src

# Dependencies first, from pyproject.toml alone, so a code change does not reinstall them.
COPY pyproject.toml ./
RUN python -c "import tomllib; deps = tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']; print('\n'.join(deps))" > /tmp/requirements.txt \
 && pip install -r /tmp/requirements.txt

# Then the project itself (what .dockerignore lets through).
COPY . .
RUN pip install --no-deps . \
 && python -c "import shared.settings, shared.events"

# ---- runtime: the virtualenv, a non-root user, nothing else --------------------------------
FROM ${PYTHON_IMAGE}

# HOTLINE_HOST: inside a container a process must listen on every interface to be reachable.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOTLINE_HOST=0.0.0.0

RUN groupadd --system --gid 10001 hotline \
 && useradd --system --uid 10001 --gid hotline --home-dir /app --shell /usr/sbin/nologin hotline \
 && mkdir -p /app/var \
 && chown -R hotline:hotline /app

COPY --from=build /opt/venv /opt/venv

# /app is the working directory and is writable by the app user (e.g. ./var for the SQLite
# files of the embedded mode); the code itself lives read-only in /opt/venv.
WORKDIR /app
USER hotline

# gateway 8000 · intake 8001 · dispatch 8002 · sla 8003 · knowledge 8004 · evaluation 8005
EXPOSE 8000 8001 8002 8003 8004 8005

CMD ["python", "-m", "gateway"]
