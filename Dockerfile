# syntax=docker/dockerfile:1
# One image for every process of the platform: the eight services and the gateway, compiled to
# JavaScript (scripts/build.mjs, as `make build` does) and run by Node on a slim base as a non-root
# user. The process is chosen at run time: `SERVICE=delivery` in the environment, or the first
# argument (`docker run <image> delivery`); deploy/docker/entrypoint.sh starts
# .build/services/<name>/main.js, or .build/gateway/main.js for `gateway`.
#
#   docker build -t dronedelivery:dev .
#   docker run --rm -e SERVICE=delivery dronedelivery:dev
#
# No container runtime is reachable where the repository is tested: test/deploy/dockerfile.test.ts checks
# this file statically (every COPY source exists and is not ignored, the entry exists for every
# service after the build, the user is not root).

ARG NODE_IMAGE=node:20-bookworm-slim

# --- build: every package (esbuild among the dev dependencies), then the bundles in .build/ ---
FROM ${NODE_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json ./
# Install scripts are skipped as npm 11 (`make deps`) does: no package the build uses needs one.
RUN npm ci --no-audit --no-fund --ignore-scripts --loglevel=error
COPY tsconfig.json ./
COPY scripts/build.mjs scripts/build.mjs
COPY gen gen
COPY lib lib
COPY services services
COPY gateway gateway
RUN node scripts/build.mjs --force

# --- runtime packages: the production dependencies only. The bundles hold most packages; the
# few they load from node_modules (scripts/build.mjs EXTERNAL) come from here. ---
FROM ${NODE_IMAGE} AS runtime-packages
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund --ignore-scripts --loglevel=error && npm cache clean --force

# --- runtime ---
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production \
    NODE_OPTIONS=--enable-source-maps \
    BIND_HOST=0.0.0.0
WORKDIR /app
COPY --from=runtime-packages /app/package.json ./package.json
COPY --from=runtime-packages /app/node_modules ./node_modules
COPY --from=build /src/.build ./.build
COPY --chmod=0755 deploy/docker/entrypoint.sh /app/entrypoint.sh
# The node image's unprivileged user "node", by number so that Kubernetes' runAsNonRoot can
# verify it; nothing in /app is writable by it.
USER 1000:1000
ARG SERVICE=""
ENV SERVICE=${SERVICE}
ENTRYPOINT ["/app/entrypoint.sh"]
