# syntax=docker/dockerfile:1
# Multi-stage: compile with dev dependencies, ship only dist/ and production dependencies.
FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
# The compliance console: Vite bundles it into dist/console (Vite stays in this stage).
COPY console ./console
RUN npm run build

FROM node:24-bookworm-slim AS prod-deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

FROM node:24-bookworm-slim
# tini runs as PID 1: it forwards SIGTERM and SIGINT to node and reaps orphaned children
# (node as PID 1 would do neither by itself). Without it, use `docker run --init`.
RUN apt-get update \
  && apt-get install -y --no-install-recommends tini \
  && rm -rf /var/lib/apt/lists/*
ENV NODE_ENV=production \
    PORT=8080 \
    VAULT_DATA_DIR=/var/lib/vault
WORKDIR /app
COPY --from=prod-deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
# package.json for `npm run vault -- ...`, with its pre-hook (a no-op here: no src/).
COPY package.json ./
COPY scripts/ensure-built.mjs ./scripts/
# The operator CLI on PATH: `docker exec <container> vault doctor`.
RUN ln -s /app/dist/src/cli/vault.js /usr/local/bin/vault
# The data directory holds the embedded ledger, filesystem blobs and the local key:
# owned by the unprivileged user, kept on a volume.
RUN mkdir -p /var/lib/vault && chown node:node /var/lib/vault && chmod 700 /var/lib/vault
USER node
VOLUME ["/var/lib/vault"]
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||8080)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
ENTRYPOINT ["/usr/bin/tini", "--"]
# Exec form, no shell: the signal tini forwards reaches node, which drains and exits 0.
CMD ["node", "dist/src/main.js"]
