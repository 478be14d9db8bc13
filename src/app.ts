import express, { type Express } from 'express';
import helmet from 'helmet';
import type { IntakeOptions } from './core/enrollment/intake';
import type { BlobStore, Clock, Envelope, Ledger, Logger } from './core/ports';
import { checkReadiness } from './core/readiness';
import { apiKeyAuth, type ApiKey } from './http/api-keys';
import type { CidrAllowlist } from './http/callback-origin';
import { enrollmentRoutes } from './http/enrollments';
import { errorBody, errorHandler, notFound } from './http/errors';
import { accessLog, requestId } from './http/middleware';
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
        ...errorBody(res, 'not_ready', `dependency failed: ${failed.join(', ')}`),
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
  app.use(enrollmentRoutes({ ...deps, ...auth }));

  app.use(notFound);
  app.use(errorHandler(deps.logger));
  return app;
}
