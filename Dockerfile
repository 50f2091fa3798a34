# syntax=docker/dockerfile:1
# Relay: one image, every role; compose.yaml runs it once per role with ROLES set.
# CI cannot reach a registry or a Docker daemon, so it runs the same commands instead:
# `npm ci`, `npm run build`, and test/integration/deploy.test.ts starts `node dist/src/main.js` per role.

FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
COPY sdk/package.json sdk/build.mjs sdk/tsconfig.json sdk/
COPY sdk/src sdk/src
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY scripts scripts
COPY src src
COPY providers providers
COPY workers workers
COPY migrations migrations
RUN npm run build

FROM node:20-bookworm-slim AS runtime
ENV NODE_ENV=production \
    DATA_DIR=/data \
    PORT=3000 \
    GATEWAY_MQTT_PORT=1884
WORKDIR /app
COPY package.json package-lock.json ./
COPY sdk/package.json sdk/
# Production dependencies only; no lifecycle scripts (the `prepare` step builds the SDK, a dev tool).
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist dist
COPY scripts/start.mjs scripts/dist-fresh.mjs scripts/
RUN mkdir -p /data && chown node:node /data
USER node
EXPOSE 3000 1884
# /readyz of whichever roles run here: the API and the gateway on PORT, a worker or scheduler
# alone on HEALTH_PORT (unset: PORT too).
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.HEALTH_PORT || process.env.PORT || 3000) + '/readyz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# Node handles SIGTERM itself (PID 1 gets no default signal handlers, Relay installs its own):
# it stops taking work, lets the sends in flight finish and write their outcomes, then exits.
STOPSIGNAL SIGTERM
# A heap limit under 2 GB keeps V8 from letting old space grow to 4x the live heap between full
# collections (README: Scheduler memory); `-e NODE_OPTIONS=--max-old-space-size=N` overrides it.
ENV NODE_OPTIONS=--max-old-space-size=1536
CMD ["node", "dist/src/main.js"]
