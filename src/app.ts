import express, { type Express } from 'express';
import helmet from 'helmet';
import type { BlobStore, Envelope, Ledger, Logger } from './core/ports';
import { checkReadiness } from './core/readiness';
import { errorHandler, notFound } from './http/errors';
import { accessLog, requestId } from './http/middleware';

export interface AppDeps {
  ledger: Ledger;
  blobs: BlobStore;
  envelope: Envelope;
  logger: Logger;
}

/** The Express app without listen(): main.ts listens, tests drive it with supertest. */
export function createApp(deps: AppDeps): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
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

  app.use(notFound);
  app.use(errorHandler(deps.logger));
  return app;
}
