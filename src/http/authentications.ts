import { Router, type Response } from 'express';
import { z } from 'zod';
import { AuthenticationError } from '../core/authentication/errors';
import type { AuthenticationService } from '../core/authentication/service';
import { JUMIO_REFERENCE, userReferenceSchema } from '../core/enrollment/callback';
import { SUPPORTED_LOCALES } from '../core/jumio';
import { AUTHENTICATION_SOURCES, AUTHENTICATION_STATES } from '../core/ports';
import { caller } from './enrollments';
import { HttpError } from './errors';
import { type RouteAuth, type RouteRegistry, declaredRouter } from './route';

export interface AuthenticationRouteDeps {
  authentications: AuthenticationService;
  auth: RouteAuth;
  routes: RouteRegistry;
}

/** Domain codes of the authentication use cases -> HTTP status (the core knows no HTTP). */
const STATUS: Record<AuthenticationError['code'], number> = {
  not_found: 404,
  enrollment_not_active: 409,
  authentication_in_progress: 409,
  idempotency_in_progress: 409,
  idempotency_key_reused: 422,
  rate_limited: 429,
  facemap_integrity: 500,
  jumio_unauthorized: 502,
  jumio_request_rejected: 502,
  jumio_invalid_response: 502,
  jumio_unavailable: 503,
};

/** Answers a refusal with its status, Retry-After when known, and its own message. */
function asHttp(error: unknown, res: Response): unknown {
  if (!(error instanceof AuthenticationError)) return error;
  if (error.details.retryAfterSeconds !== undefined) {
    res.set('Retry-After', String(error.details.retryAfterSeconds));
  }
  return new HttpError(STATUS[error.code], error.code, error.message);
}

// RFC 3986 allows ASCII only (internationalized hosts must be punycode).
const ASCII_URL = /^[\x21-\x7e]+$/;

/** Jumio's rules for successUrl and errorUrl: https, ASCII, within Jumio's lengths. */
const jumioUrl = (max: number) =>
  z
    .string()
    .max(max)
    .refine((v) => ASCII_URL.test(v), { message: 'must be ASCII (RFC 3986, punycode hosts)' })
    .refine(
      (v) => {
        if (!URL.canParse(v)) return false;
        const u = new URL(v);
        return u.protocol === 'https:' && u.hostname !== '' && !u.username && !u.password;
      },
      { message: 'must be an https URL without credentials' },
    );

const iso = z.iso.datetime();

export const authenticationViewSchema = z
  .object({
    authenticationReference: z.string(),
    userReference: z.string(),
    enrollmentReference: z.string(),
    state: z.enum(AUTHENTICATION_STATES),
    reason: z.string().optional(),
    purpose: z.string(),
    requestedBy: z.string(),
    createdAt: iso,
    expiresAt: iso,
    finalizedAt: iso.optional(),
    source: z.enum(AUTHENTICATION_SOURCES).optional(),
    jumioDeletedAt: iso.optional(),
  })
  .meta({ id: 'Authentication' });

const initiatedSchema = z
  .object({
    authenticationReference: z.string(),
    redirectUrl: z.string().optional(),
    state: z.literal('INITIATED'),
    expiresAt: iso,
  })
  .meta({ id: 'InitiatedAuthentication' });

export const authenticationReferenceSchema = z.string().regex(JUMIO_REFERENCE, {
  message: 'must be a Jumio transaction reference (up to 36 of A-Z a-z 0-9 -)',
});

/** `limit` and `cursor` of a keyset-paged listing. */
export const pageQuery = {
  limit: z.coerce.number().int().min(1).max(200).default(50),
  cursor: z.string().max(200).optional(),
};

/** Internal API for authentications. Never returns facemap bytes. */
export function authenticationRoutes(deps: AuthenticationRouteDeps): Router {
  const { router, route } = declaredRouter(deps);
  const tags = ['authentications'];
  const service = deps.authentications;

  const notifyUrl = z.string().superRefine((value, ctx) => {
    const problem = service.notifyUrlProblem(value);
    if (problem) ctx.addIssue({ code: 'custom', message: problem });
  });

  route(
    {
      method: 'post',
      path: '/v1/authentications',
      summary: "Authenticate a user with their stored facemap: Jumio's journey starts here",
      description:
        'Decrypts the facemap (audited as `facemap.decrypted` with the caller and purpose, ' +
        'before the blob is read), initiates at Jumio and records the authentication ' +
        "INITIATED; earlier unfinished ones of the same enrollment become EXPIRED (Jumio's " +
        '15-minute rule). Never retried automatically: a second initiate would expire the first.',
      tags,
      roles: ['authenticator', 'admin'],
      headers: z.object({
        'idempotency-key': z
          .string()
          .min(1)
          .max(255)
          .regex(/^[\x21-\x7e]+$/, { message: 'must be 1-255 printable ASCII characters' })
          .optional()
          .describe('the same key from the same API key within 24 hours returns the first answer'),
      }),
      body: z.strictObject({
        userReference: userReferenceSchema,
        purpose: z
          .string()
          .trim()
          .min(1)
          .max(200)
          .describe('why the facemap is used; lands in the audit trail'),
        successUrl: jumioUrl(2047).optional(),
        errorUrl: jumioUrl(255).optional(),
        locale: z.enum(SUPPORTED_LOCALES).optional(),
        tokenLifetimeInMinutes: z.number().int().min(5).max(86400).optional(),
        notifyUrl: notifyUrl
          .optional()
          .describe(
            'where to POST the signed result; https (http on loopback), in VAULT_NOTIFY_ALLOWED_ORIGINS',
          ),
      }),
      responses: {
        201: { description: 'initiated at Jumio', schema: initiatedSchema },
        404: { description: 'no enrollment for this user' },
        409: { description: 'the enrollment is not ACTIVE, or an initiate is in flight' },
        422: { description: 'the Idempotency-Key was used with another body' },
        429: { description: 'AUTH_MAX_PER_USER_PER_HOUR reached (Retry-After)' },
        500: { description: '`facemap_integrity`: the stored blob is not this user’s' },
        502: { description: 'Jumio refused (`jumio_unauthorized`, `jumio_request_rejected`)' },
        503: { description: 'Jumio or the ledger is unavailable; nothing is retried' },
      },
    },
    async ({ body, headers }, _req, res) => {
      try {
        const { result, replayed } = await service.initiate(
          body,
          caller(res),
          headers['idempotency-key'],
        );
        if (replayed) res.set('Idempotent-Replayed', 'true');
        res.status(201).json(result);
      } catch (error) {
        throw asHttp(error, res);
      }
    },
  );

  route(
    {
      method: 'get',
      path: '/v1/authentications/{authenticationReference}',
      summary: 'One authentication and its state',
      tags,
      roles: ['admin', 'auditor', 'authenticator'],
      params: z.strictObject({ authenticationReference: authenticationReferenceSchema }),
      responses: {
        200: { description: 'the authentication', schema: authenticationViewSchema },
        404: { description: 'unknown reference' },
      },
    },
    async ({ params }, _req, res) => {
      try {
        res.json(await service.get(params.authenticationReference));
      } catch (error) {
        throw asHttp(error, res);
      }
    },
  );

  route(
    {
      method: 'get',
      path: '/v1/authentications',
      summary: 'Authentications, newest first, by user and state (keyset paging)',
      tags,
      roles: ['admin', 'auditor', 'authenticator'],
      query: z.strictObject({
        userReference: userReferenceSchema.optional(),
        state: z.enum(AUTHENTICATION_STATES).optional(),
        ...pageQuery,
      }),
      responses: {
        200: {
          description: 'a page; `nextCursor` while more may follow',
          schema: z.object({
            authentications: z.array(authenticationViewSchema),
            nextCursor: z.string().optional(),
          }),
        },
      },
    },
    async ({ query }, _req, res) => {
      res.json(await service.list(query));
    },
  );
  return router;
}
