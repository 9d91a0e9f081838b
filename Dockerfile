# hoidong's image for docker-compose.yml: the app and the transcription workers.
FROM python:3.11-slim
# gcc and libc6-dev: the native send path (media/nativesend.py) is compiled with them.
RUN apt-get update && apt-get install -y --no-install-recommends ffmpeg gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /srv/hoidong
COPY pyproject.toml README.md ./
COPY server server
COPY media media
COPY transcription transcription
COPY storage storage
COPY web web
# Editable: the server finds its templates and static files in web/ beside it.
RUN pip install --no-cache-dir -e .
# Build the native send path now (cached under ~/.cache/hoidong), not at first start.
RUN python -c "from media import nativesend; assert nativesend.load() is not None"
ENV HOIDONG_HOST=0.0.0.0
EXPOSE 8080
CMD ["hoidong", "serve"]
