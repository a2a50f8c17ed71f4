#!/bin/sh
# docker compose v2 when present, else docker-compose v1: the npm docker:* scripts call this.
if docker compose version >/dev/null 2>&1; then exec docker compose "$@"; fi
exec docker-compose "$@"
