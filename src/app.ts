import express, { type Express } from 'express';
import helmet from 'helmet';
import type { DenialAggregator } from './core/denials';
import type { AuthenticationService } from './core/authentication/service';
import type { IntakeBatcher, IntakeOptions } from './core/enrollment/intake';
import type { GroupCommitOptions } from './core/group-commit';
import type { NotificationAdmin } from './core/notifications/outbox';
import type { Metrics } from './adapters/metrics';
import type { BlobStore, Clock, Envelope, Ledger, Logger } from './core/ports';
import { cachedReadiness, type CheckName } from './core/readiness';
import { apiKeyAuth, type ApiKey } from './http/api-keys';
import { authenticationRoutes } from './http/authentications';
import type { CidrAllowlist } from './http/callback-origin';
import { complianceRoutes, type ComplianceDeps } from './http/compliance';
import { consoleRoutes, defaultConsoleDir } from './http/console';
import { enrollmentRoutes } from './http/enrollments';
import { keyRoutes } from './http/keys';
import { errorBody, errorHandler, methodNotAllowed, notFound } from './http/errors';
import { accessLog, httpMetrics, requestId } from './http/middleware';
import { meRoutes } from './http/me';
import { notificationRoutes } from './http/notifications';
import { buildOpenApiDocument } from './http/openapi';
import { RouteRegistry } from './http/route';
import { callbackFormSchema } from './http/webhooks';
import { z } from 'zod';
import { webhookRoutes } from './http/webhooks';

/** Where each dependency lives, for log lines about it: no credentials. */
export type DependencyTargets = Record<CheckName, Record<string, string | null>>;

export interface AppDeps {
  ledger: Ledger;
  blobs: BlobStore;
  envelope: Envelope;
  logger: Logger;
  clock: Clock;
  /** Absent in tests that build the app without a container. */
  metrics?: Metrics;
  intake: IntakeOptions;
  /** Group commit of callbacks; absent: DEFAULT_CALLBACK_BATCH. */
  callbackBatch?: GroupCommitOptions;
  /** The callback intake (built from the above when absent). */
  callbackIntake?: IntakeBatcher;
  apiKeys: ApiKey[];
  callbackAllowlist: CidrAllowlist;
  /** Express `trust proxy`: false (socket address), a hop count, or trusted CIDRs. */
  trustProxy: false | number | string[];
  /** Counts denied, refused and unreadable requests; audits them per interval. */
  denials: DenialAggregator;
  /** How long a /readyz result is reused (0: every probe checks). */
  readinessCacheMs: number;
  dependencies: DependencyTargets;
  authentications: AuthenticationService;
  notifications: NotificationAdmin;
  /** Inventory, audit trail, erasure and retention routes (issue 9); absent: not served. */
  compliance?: ComplianceDeps;
  /** The built compliance console (default: this package's dist/console). */
  consoleDir?: string;
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
  if (deps.metrics) app.use(httpMetrics(deps.metrics));

  app
    .route('/healthz')
    .get((_req, res) => {
      res.json({ status: 'ok' });
    })
    .all(methodNotAllowed('GET'));

  const readiness = cachedReadiness(deps, deps.readinessCacheMs);
  app
    .route('/readyz')
    .get(async (_req, res) => {
      const { report, fresh } = await readiness();
      if (!report.ready) {
        if (fresh) {
          // The cause, once per check (not per cached answer): names, codes and targets.
          const failures = Object.fromEntries(
            Object.entries(report.failures).map(([name, failure]) => [
              name,
              { ...failure, target: deps.dependencies[name as CheckName] },
            ]),
          );
          deps.logger.warn({ checks: report.checks, failures }, 'not ready');
        }
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
    })
    .all(methodNotAllowed('GET'));

  // The compliance console's static files, with their own (stricter) security headers.
  app.use('/console', consoleRoutes(deps.consoleDir ?? defaultConsoleDir()));
  app.use(webhookRoutes(deps));
  const auth = apiKeyAuth(deps.apiKeys, {
    logger: deps.logger,
    onDenied: (event) => {
      deps.logger.warn(
        {
          status: event.status,
          reason: event.reason,
          caller: event.caller,
          path: event.path,
          sourceAddress: event.sourceAddress,
        },
        'request denied',
      );
      // Counted, not written: the trail gets one summary per source and reason per interval.
      deps.denials.record({
        type: 'request.denied',
        sourceAddress: event.sourceAddress,
        reason: event.reason,
        status: event.status,
        ...(event.caller === undefined ? {} : { caller: event.caller }),
        path: event.path,
        ...(event.requestId === undefined ? {} : { requestId: event.requestId }),
      });
    },
  });
  const routes = new RouteRegistry();
  // Tests read the declarations to check real responses against the description.
  app.locals.routes = routes;
  documentPublicRoutes(routes);
  app
    .route('/openapi.json')
    .get((_req, res) => {
      res.json(buildOpenApiDocument(routes));
    })
    .all(methodNotAllowed('GET'));
  // One bearer-token check for all of /v1 (an unknown /v1 path is 401, not 404), then JSON.
  app.use('/v1', auth.authenticate, express.json({ limit: '64kb' }));
  if (deps.compliance) {
    app.use(complianceRoutes({ ...deps, ...deps.compliance, auth, routes }));
  }
  app.use(meRoutes({ auth, routes }));
  app.use(enrollmentRoutes({ ...deps, auth, routes }));
  app.use(authenticationRoutes({ ...deps, auth, routes }));
  app.use(notificationRoutes({ ...deps, auth, routes }));
  app.use(keyRoutes({ ...deps, auth, routes }));
  app.use(routes.methodNotAllowed());

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
    responses: {
      200: {
        description: 'the OpenAPI 3.1 description',
        schema: z.object({ openapi: z.string(), paths: z.record(z.string(), z.unknown()) }).loose(),
      },
    },
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
