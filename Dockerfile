# Writ's container image: `docker build -t writ:0.1.0 .` (the Helm chart in helm/writ runs it).
ARG NODE_IMAGE=node:20-bookworm-slim

# Build: the Prisma client is generated offline into src/db/generated (scripts/generate.mjs),
# then TypeScript compiles src/ into dist/ (and the client packages into packages/*/dist,
# which the image does not ship).
FROM ${NODE_IMAGE} AS build
WORKDIR /app
# node-gyp builds the agent's SO_PEERCRED addon (native/peercred) with these.
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json ./
# The prepare script is the build itself, which needs the sources: it runs next.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY scripts ./scripts
COPY packages ./packages
COPY prisma ./prisma
COPY native ./native
COPY proto ./proto
COPY src ./src
RUN npm run build

# Runtime: production dependencies (the Prisma runtime and its query compiler, Cedar's
# WebAssembly, PGlite), dist/, and prisma/migrations, which dist/db/migrate.js reads at start-up.
FROM ${NODE_IMAGE}
ENV NODE_ENV=production \
    WRIT_HOST=0.0.0.0 \
    WRIT_OPS_HOST=0.0.0.0 \
    WRIT_DATA_DIR=/var/lib/writ/data \
    WRIT_CA_DIR=/var/lib/writ/certs
WORKDIR /app
RUN groupadd --system --gid 10001 writ \
 && useradd --system --uid 10001 --gid writ --home-dir /var/lib/writ --no-create-home --shell /usr/sbin/nologin writ \
 && mkdir -p /var/lib/writ && chown writ:writ /var/lib/writ && chmod 700 /var/lib/writ
COPY package.json package-lock.json ./
# --omit=optional as well: the lock marks the Prisma CLI, TypeScript and what they pull in
# (React, Prisma Studio, mysql2, ...) "devOptional" (optional peers of @prisma/client), and
# --omit=dev alone still installs those, about 250 MB nothing at run time needs. The only
# optional production package, pg-cloudflare, serves Cloudflare Workers only.
RUN npm ci --omit=dev --omit=optional --ignore-scripts --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist ./dist
COPY --from=build /app/prisma ./prisma
# writ agent: the Workload API definition it loads, and the peer-credentials addon built above.
COPY --from=build /app/proto ./proto
COPY --from=build /app/native/peercred/build/Release/peercred.node ./native/peercred/build/Release/peercred.node
USER 10001:10001
EXPOSE 8443 9090
# What `npm start` runs after building. SIGTERM drains (WRIT_SHUTDOWN_GRACE) and exits 0.
CMD ["node", "--max-old-space-size=160", "dist/main.js"]
