import { Router } from 'express';
import { z } from 'zod';
import {
  currentEnrollment,
  enrollmentByScan,
  registerIntent,
  replayFailed,
  resolveParked,
} from '../core/enrollment/admin';
import { JUMIO_REFERENCE, userReferenceSchema } from '../core/enrollment/callback';
import { ENROLLMENT_STATES, type Clock, type Ledger } from '../core/ports';
import type { Caller } from './api-keys';
import { type RouteAuth, type RouteRegistry, declaredRouter } from './route';

export interface EnrollmentRouteDeps {
  ledger: Ledger;
  clock: Clock;
  auth: RouteAuth;
  routes: RouteRegistry;
}

export const scanReferenceSchema = z.string().regex(JUMIO_REFERENCE, {
  message: 'must be a Jumio scan reference (up to 36 of A-Z a-z 0-9 -)',
});

const iso = z.iso.datetime();

/** What the read API shows of an enrollment: lifecycle metadata, never bytes. */
export const enrollmentViewSchema = z
  .object({
    userReference: z.string().nullable(),
    enrollmentReference: z.string(),
    state: z.enum(ENROLLMENT_STATES),
    reason: z.string().optional(),
    createdAt: iso,
    storedAt: iso.optional(),
    activatedAt: iso.optional(),
    jumioDeletedAt: iso.optional(),
    facemapBytes: z.number().int().nullable(),
    ciphertextSha256: z.string().nullable(),
    keyId: z.string().nullable(),
    attempts: z.number().int(),
    lastError: z.string().optional(),
  })
  .meta({ id: 'Enrollment' });

const intentSchema = z
  .object({
    enrollmentReference: z.string(),
    userReference: z.string(),
    registeredBy: z.string(),
    createdAt: iso,
  })
  .meta({ id: 'EnrollmentIntent' });

const userParams = z.strictObject({ userReference: userReferenceSchema });

export function caller(res: { locals: Record<string, unknown> }): string {
  return (res.locals.caller as Caller).name;
}

/** Internal API for enrollments. Never returns facemap bytes, by any route. */
export function enrollmentRoutes(deps: EnrollmentRouteDeps): Router {
  const { router, route } = declaredRouter(deps);
  const tags = ['enrollments'];

  route(
    {
      method: 'post',
      path: '/v1/enrollment-intents',
      summary: 'Announce which user a coming scan belongs to (ENROLLMENT_BINDING=intent)',
      tags,
      roles: ['onboarding', 'admin'],
      body: z.strictObject({
        enrollmentReference: scanReferenceSchema,
        userReference: userReferenceSchema,
      }),
      responses: {
        201: { description: 'registered', schema: intentSchema },
        200: { description: 'already registered for the same user', schema: intentSchema },
        409: { description: 'registered for another user' },
      },
    },
    async ({ body }, _req, res) => {
      const { intent, created } = await registerIntent(deps.ledger, body, caller(res));
      res.status(created ? 201 : 200).json({
        enrollmentReference: intent.enrollmentReference,
        userReference: intent.userReference,
        registeredBy: intent.registeredBy,
        createdAt: intent.createdAt.toISOString(),
      });
    },
  );

  route(
    {
      method: 'get',
      path: '/v1/enrollments/by-scan/{scanReference}',
      summary: 'The enrollment with this Jumio scan reference, whatever its state or user',
      description:
        'A rejected onboarding (no usable user reference included) can be found by the ' +
        'reference Jumio shows.',
      tags,
      roles: ['admin', 'auditor'],
      params: z.strictObject({ scanReference: scanReferenceSchema }),
      responses: {
        200: { description: 'the enrollment', schema: enrollmentViewSchema },
        404: { description: 'no enrollment for this scan reference' },
      },
    },
    async ({ params }, _req, res) => {
      res.json(await enrollmentByScan(deps.ledger, params.scanReference));
    },
  );

  route(
    {
      method: 'get',
      path: '/v1/enrollments/{userReference}',
      summary: "The user's ACTIVE enrollment, else the most recent, and the others",
      tags,
      roles: ['admin', 'auditor', 'authenticator'],
      params: userParams,
      responses: {
        200: {
          description: 'the enrollment and its history',
          schema: enrollmentViewSchema.extend({
            history: z.array(
              z.object({
                enrollmentReference: z.string(),
                state: z.enum(ENROLLMENT_STATES),
                reason: z.string().optional(),
                createdAt: iso,
                lastError: z.string().optional(),
              }),
            ),
          }),
        },
        404: { description: 'no enrollment for this user reference' },
      },
    },
    async ({ params }, _req, res) => {
      res.json(await currentEnrollment(deps.ledger, params.userReference));
    },
  );

  route(
    {
      method: 'post',
      path: '/v1/enrollments/{userReference}/replay',
      summary: "Put the user's FAILED enrollment back into the pipeline",
      tags,
      roles: ['admin'],
      params: userParams,
      responses: {
        200: { description: 'the replayed enrollment', schema: enrollmentViewSchema },
        409: { description: 'no FAILED enrollment for this user' },
      },
    },
    async ({ params }, _req, res) => {
      res.json(await replayFailed(deps, params.userReference, caller(res)));
    },
  );

  route(
    {
      method: 'post',
      path: '/v1/enrollments/by-scan/{scanReference}/resolve',
      summary: 'Decide a PARKED enrollment: make it ACTIVE, or discard it',
      tags,
      roles: ['admin'],
      params: z.strictObject({ scanReference: scanReferenceSchema }),
      body: z.strictObject({ action: z.enum(['activate', 'discard']) }),
      responses: {
        200: { description: 'the resolved enrollment', schema: enrollmentViewSchema },
        404: { description: 'no enrollment for this scan reference' },
        409: { description: 'the enrollment is not PARKED' },
      },
    },
    async ({ params, body }, _req, res) => {
      res.json(await resolveParked(deps, params.scanReference, body.action, caller(res)));
    },
  );

  return router;
}
