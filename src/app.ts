import express, { type Express } from 'express';
import helmet from 'helmet';
import type { IntakeOptions } from './core/enrollment/intake';
import type { BlobStore, Clock, Envelope, Ledger, Logger } from './core/ports';
import { checkReadiness } from './core/readiness';
import { apiKeyAuth, type ApiKey } from './http/api-keys';
import type { CidrAllowlist } from './http/callback-origin';
import { complianceRoutes, type ComplianceDeps } from './http/compliance';
import { enrollmentRoutes } from './http/enrollments';
import { errorHandler, notFound } from './http/errors';
import { accessLog, requestId } from './http/middleware';
import { buildOpenApiDocument } from './http/openapi';
import { RouteRegistry } from './http/route';
import { callbackFormSchema } from './http/webhooks';
import { z } from 'zod';
import { webhookRoutes } from './http/webhooks';

export interface AppDeps {
  ledger: Ledger;
  blobs: BlobStore;
  envelope: Envelope;
  logger: Logger;
  clock: Clock;
  intake: IntakeOptions;
  apiKeys: ApiKey[];
  callbackAllowlist: CidrAllowlist;
  /** Express `trust proxy`: false (socket address), a hop count, or trusted CIDRs. */
  trustProxy: false | number | string[];
  /** Inventory, audit trail, erasure and retention routes (issue 9); absent: not served. */
  compliance?: ComplianceDeps;
}

/** The Express app without listen(): main.ts listens, tests drive it with supertest. */
export function createApp(deps: AppDeps): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  // Decides req.ip: a forged X-Forwarded-For from an untrusted hop is never believed.
  app.set('trust proxy', deps.trustProxy);
  app.use(requestId);
  app.use(helmet());
  app.use(accessLog(deps.logger));

  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });

  app.get('/readyz', async (_req, res) => {
    const report = await checkReadiness(deps);
    if (!report.ready) {
      deps.logger.warn({ checks: report.checks }, 'not ready');
      const failed = Object.entries(report.checks)
        .filter(([, v]) => v !== 'ok')
        .map(([k]) => k);
      res.status(503).json({
        status: 'unavailable',
        checks: report.checks,
        error: { code: 'not_ready', message: `dependency failed: ${failed.join(', ')}` },
      });
      return;
    }
    res.json({ status: 'ready', checks: report.checks });
  });

  app.use(webhookRoutes(deps));
  const auth = apiKeyAuth(deps.apiKeys, {
    logger: deps.logger,
    onDenied: async (event) => {
      deps.logger.warn(
        {
          status: event.status,
          reason: event.reason,
          caller: event.caller,
          path: event.path,
          sourceAddress: event.sourceAddress,
          requestId: event.requestId,
        },
        'request denied',
      );
      await deps.ledger.transaction((tx) =>
        tx.audit.append({
          type: 'request.denied',
          actor: event.caller ?? 'anonymous',
          details: {
            status: event.status,
            reason: event.reason,
            method: event.method,
            path: event.path,
            sourceAddress: event.sourceAddress ?? null,
            socketAddress: event.socketAddress ?? null,
            requestId: event.requestId ?? null,
          },
        }),
      );
    },
  });
  const routes = new RouteRegistry();
  documentPublicRoutes(routes);
  app.get('/openapi.json', (_req, res) => {
    res.json(buildOpenApiDocument(routes));
  });
  // One bearer-token check for all of /v1 (an unknown /v1 path is 401, not 404), then JSON.
  app.use('/v1', auth.authenticate, express.json({ limit: '64kb' }));
  if (deps.compliance) {
    app.use(complianceRoutes({ ...deps, ...deps.compliance, auth, routes }));
  }
  app.use(enrollmentRoutes({ ...deps, auth, routes }));

  app.use(notFound);
  app.use(errorHandler(deps.logger));
  return app;
}

const readinessSchema = z.object({
  status: z.enum(['ready', 'unavailable']),
  checks: z.record(z.string(), z.enum(['ok', 'failed', 'timeout'])),
});

/** The routes served by hand (probes, the Jumio webhook), described for /openapi.json. */
function documentPublicRoutes(routes: RouteRegistry): void {
  const tags = ['operations'];
  routes.document({
    method: 'get',
    path: '/healthz',
    summary: 'The process is alive',
    tags,
    roles: null,
    responses: { 200: { description: 'alive', schema: z.object({ status: z.literal('ok') }) } },
  });
  routes.document({
    method: 'get',
    path: '/readyz',
    summary: 'The ledger answers, the blob store is reachable, an envelope round trip works',
    tags,
    roles: null,
    responses: {
      200: { description: 'ready', schema: readinessSchema },
      503: {
        description: 'a dependency failed (named in `checks`)',
        schema: readinessSchema.extend({
          error: z.object({ code: z.string(), message: z.string() }),
        }),
      },
    },
  });
  routes.document({
    method: 'get',
    path: '/openapi.json',
    summary: 'This document',
    tags,
    roles: null,
    responses: { 200: { description: 'the OpenAPI 3.1 description' } },
  });
  routes.document({
    method: 'post',
    path: '/webhooks/jumio',
    summary: "Jumio's callbacks (ID Verification and Authentication), from Jumio's addresses only",
    description:
      'Answered 200 only once the callback is committed to the ledger; 5xx makes Jumio retry.',
    tags: ['jumio'],
    roles: null,
    body: callbackFormSchema,
    bodyContentType: 'application/x-www-form-urlencoded',
    responses: {
      200: { description: 'committed', schema: z.object({ status: z.literal('received') }) },
      403: { description: "the source address is not one of Jumio's" },
      413: { description: 'body too large' },
      415: { description: 'not form-encoded' },
    },
  });
}
