import express, { Router, type RequestHandler } from 'express';
import { z } from 'zod';
import {
  currentEnrollment,
  enrollmentByScan,
  registerIntent,
  replayFailed,
} from '../core/enrollment/admin';
import type { Clock, Ledger } from '../core/ports';
import type { Caller, Role } from './api-keys';
import { HttpError, methodNotAllowed } from './errors';

export interface EnrollmentRouteDeps {
  ledger: Ledger;
  clock: Clock;
  authenticate: RequestHandler;
  requireRole: (...roles: Role[]) => RequestHandler;
}

const intentBody = z.strictObject({
  enrollmentReference: z.string(),
  userReference: z.string(),
});

function caller(res: { locals: Record<string, unknown> }): string {
  return (res.locals.caller as Caller).name;
}

/** Internal API for enrollments. Never returns facemap bytes, by any route. */
export function enrollmentRoutes(deps: EnrollmentRouteDeps): Router {
  const router = Router();
  router.use('/v1', deps.authenticate, express.json({ limit: '64kb' }));

  router.post(
    '/v1/enrollment-intents',
    deps.requireRole('onboarding', 'admin'),
    async (req, res) => {
      const parsed = intentBody.safeParse(req.body);
      if (!parsed.success) {
        throw new HttpError(
          400,
          'invalid_request',
          `body must be {"enrollmentReference", "userReference"}: ${parsed.error.issues
            .map((i) => `${i.path.join('.') || 'body'}: ${i.message}`)
            .join('; ')}`,
        );
      }
      const { intent, created } = await registerIntent(deps.ledger, parsed.data, caller(res));
      res.status(created ? 201 : 200).json({
        enrollmentReference: intent.enrollmentReference,
        userReference: intent.userReference,
        registeredBy: intent.registeredBy,
        createdAt: intent.createdAt.toISOString(),
      });
    },
  );

  router.get(
    '/v1/enrollments/by-scan/:scanReference',
    deps.requireRole('admin', 'auditor'),
    async (req, res) => {
      res.json(await enrollmentByScan(deps.ledger, String(req.params.scanReference)));
    },
  );

  router.get(
    '/v1/enrollments/:userReference',
    deps.requireRole('admin', 'auditor', 'authenticator'),
    async (req, res) => {
      res.json(await currentEnrollment(deps.ledger, String(req.params.userReference)));
    },
  );

  router.post(
    '/v1/enrollments/:userReference/replay',
    deps.requireRole('admin'),
    async (req, res) => {
      res.json(await replayFailed(deps, String(req.params.userReference), caller(res)));
    },
  );

  // After every route, so that a path two routes share (a user called "by-scan") reaches
  // the one with its method before any 405.
  router.all('/v1/enrollment-intents', methodNotAllowed('POST'));
  router.all('/v1/enrollments/by-scan/:scanReference', methodNotAllowed('GET'));
  router.all('/v1/enrollments/:userReference', methodNotAllowed('GET'));
  router.all('/v1/enrollments/:userReference/replay', methodNotAllowed('POST'));
  return router;
}
