# syntax=docker/dockerfile:1
# Multi-stage: compile with dev dependencies, ship only dist/ and production dependencies.
FROM node:22-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build

FROM node:22-bookworm-slim AS prod-deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

FROM node:22-bookworm-slim
ENV NODE_ENV=production \
    PORT=8080 \
    VAULT_DATA_DIR=/var/lib/vault
WORKDIR /app
COPY --from=prod-deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
# The data directory holds the embedded ledger, filesystem blobs and the local key:
# owned by the unprivileged user, kept on a volume.
RUN mkdir -p /var/lib/vault && chown node:node /var/lib/vault && chmod 700 /var/lib/vault
USER node
VOLUME ["/var/lib/vault"]
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||8080)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# SIGTERM reaches node directly (exec form): it drains requests and exits 0.
CMD ["node", "dist/src/main.js"]
