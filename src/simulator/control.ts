import { createHash, randomBytes, randomUUID } from 'node:crypto';
import express, { type NextFunction, type Request, type Response, type Router } from 'express';
import { z } from 'zod';
import { deliveryRecord, scanCallbackForm } from './callbacks';
import type { SimContext } from './context';
import { completeAuthentication } from './jumio';
import { scanPii, piiOverrideSchema } from './pii';
import {
  AUTHENTICATION_RESULTS,
  FAULT_KINDS,
  FINAL_AUTHENTICATION_STATES,
  ID_SCAN_SOURCES,
  JUMIO_ENDPOINTS,
  SCAN_STATUSES,
  SIMILARITIES,
  VERIFICATION_STATUSES,
  type SimAuthentication,
  type SimScan,
} from './state';

const MAX_FACEMAP = 10 * 1024 * 1024;

const fractionDigits = z.union([z.literal(0), z.literal(1), z.literal(2), z.literal(3)]);
const validitySpelling = z.enum(['TRUE', 'true', 'boolean']);
// Accept every spelling Jumio uses, store a boolean.
const validityInput = z
  .union([z.boolean(), z.enum(['TRUE', 'FALSE', 'true', 'false'])])
  .transform((v) => v === true || v === 'TRUE' || v === 'true');
const overrides = z.record(z.string(), z.union([z.string(), z.null()]));
const responseVariant = z.strictObject({
  validity: validitySpelling.optional(),
  fractionDigits: fractionDigits.optional(),
  omitTransactionDate: z.boolean().optional(),
  scanReference: z.string().min(1).max(100).optional(),
  facemapHref: z.string().min(1).max(2048).optional(),
});

const createScanSchema = z
  .strictObject({
    scanReference: z.uuid().optional(),
    status: z.enum(SCAN_STATUSES).default('DONE'),
    verificationStatus: z.enum(VERIFICATION_STATUSES).default('APPROVED_VERIFIED'),
    similarity: z.enum(SIMILARITIES).default('MATCH'),
    validity: validityInput.default(true),
    reason: z.string().max(100).optional(),
    customerId: z.string().max(100).optional(),
    merchantIdScanReference: z.string().max(100).optional(),
    idScanSource: z.enum(ID_SCAN_SOURCES).default('WEB'),
    facemapBase64: z.base64().optional(),
    facemapBytes: z.number().int().min(1).max(MAX_FACEMAP).default(2048),
    includeFacemap: z.boolean().default(true),
    transactionDate: z.iso.datetime({ offset: true }).optional(),
    pii: piiOverrideSchema.optional(),
    responseVariant: responseVariant.default({}),
  })
  .refine((v) => v.facemapBase64 === undefined || v.facemapBase64.length > 0, {
    path: ['facemapBase64'],
    message: 'must not be empty',
  });

const patchScanSchema = z.strictObject({
  status: z.enum(SCAN_STATUSES).optional(),
  verificationStatus: z.enum(VERIFICATION_STATUSES).optional(),
  similarity: z.enum(SIMILARITIES).optional(),
  validity: validityInput.optional(),
  reason: z.string().max(100).nullable().optional(),
  customerId: z.string().max(100).nullable().optional(),
  merchantIdScanReference: z.string().max(100).nullable().optional(),
  responseVariant: responseVariant.optional(),
});

const scanCallbackSchema = z.strictObject({
  url: z.url({ protocol: /^https?$/ }),
  variant: z
    .strictObject({
      validity: validitySpelling.optional(),
      fractionDigits: fractionDigits.optional(),
      livenessImages: z.enum(['json', 'repeated']).optional(),
      reasonWithValidTrue: z.boolean().optional(),
    })
    .optional(),
  overrides: overrides.optional(),
});

const completeSchema = z.strictObject({
  result: z.enum(AUTHENTICATION_RESULTS),
  /** false: the transaction completes but its callback is lost (to test reconciliation). */
  deliverCallback: z.boolean().default(true),
  variant: z
    .strictObject({
      fractionDigits: fractionDigits.optional(),
      livenessImages: z.enum(['json', 'repeated']).optional(),
    })
    .optional(),
  overrides: overrides.optional(),
});

const faultSchema = z.strictObject({
  endpoint: z.enum([...JUMIO_ENDPOINTS, '*']),
  kind: z.enum(FAULT_KINDS),
  status: z.number().int().min(100).max(599).default(503),
  retryAfter: z.number().int().min(0).optional(),
  delayMs: z.number().int().min(0).max(600_000).default(2000),
  location: z.url({ protocol: /^https?$/ }).default('https://elsewhere.invalid/stolen'),
  bytes: z
    .number()
    .int()
    .min(1)
    .max(512 * 1024 * 1024)
    .default(8 * 1024 * 1024),
  contentLength: z.boolean().default(false),
  probability: z.number().min(0).max(1).default(1),
  times: z.number().int().min(1).optional(),
});

const clockSchema = z
  .strictObject({
    advanceMs: z.number().int().optional(),
    set: z.iso.datetime({ offset: true }).optional(),
  })
  .refine((v) => (v.advanceMs === undefined) !== (v.set === undefined), {
    message: 'give exactly one of advanceMs or set',
  });

function parseBody<S extends z.ZodType>(
  schema: S,
  req: Request,
  res: Response,
): z.output<S> | undefined {
  const result = schema.safeParse(req.body ?? {});
  if (result.success) return result.data;
  res.status(400).json({
    error: 'invalid_request',
    issues: result.error.issues.map((i) => ({
      path: i.path.map(String).join('.'),
      message: i.message,
    })),
  });
  return undefined;
}

const iso = (d: Date | null): string | null => (d ? d.toISOString() : null);

function authSummary(a: SimAuthentication) {
  return {
    authenticationTransactionReference: a.transactionReference,
    state: a.state,
    createdAt: iso(a.createdAt),
    finishedAt: iso(a.finishedAt),
    deleted: a.deleted,
  };
}

export function scanView(ctx: SimContext, scan: SimScan) {
  return {
    scanReference: scan.scanReference,
    status: scan.status,
    verificationStatus: scan.verificationStatus,
    similarity: scan.similarity,
    validity: scan.validity,
    reason: scan.reason ?? null,
    customerId: scan.customerId ?? null,
    merchantIdScanReference: scan.merchantIdScanReference ?? null,
    idScanSource: scan.idScanSource,
    createdAt: iso(scan.createdAt),
    deleted: scan.deleted,
    deletedAt: iso(scan.deletedAt),
    facemapDownloads: scan.facemapDownloads,
    facemapSha256: scan.facemapSha256,
    facemapBytes: scan.facemap?.length ?? null,
    responseVariant: scan.responseVariant,
    authentications: ctx.state.authenticationsFor(scan.scanReference).map(authSummary),
    callbacks: scan.callbacks,
  };
}

export function authenticationView(a: SimAuthentication) {
  return {
    authenticationTransactionReference: a.transactionReference,
    enrollmentTransactionReference: a.enrollmentTransactionReference,
    state: a.state,
    metadataForm: a.metadataForm,
    metadataPart: a.metadataPart,
    userReference: a.userReference ?? null,
    callbackUrl: a.callbackUrl ?? null,
    successUrl: a.successUrl ?? null,
    errorUrl: a.errorUrl ?? null,
    locale: a.locale ?? null,
    tokenLifetimeInMinutes: a.tokenLifetimeInMinutes ?? null,
    redirectUrl: a.redirectUrl,
    scanSource: a.scanSource,
    facemapSha256: a.facemapSha256,
    facemapFilename: a.facemapFilename,
    createdAt: iso(a.createdAt),
    finishedAt: iso(a.finishedAt),
    deleted: a.deleted,
    deletedAt: iso(a.deletedAt),
    callbacks: a.callbacks,
  };
}

/** One line per route, served at GET /__sim and printed by the CLI. */
export const CONTROL_API_SUMMARY = [
  'POST   /__sim/scans                          create an ID Verification (default: eligible, random facemap)',
  "GET    /__sim/scans[/{ref}]                  the simulator's view of scans (deleted?, facemap downloads)",
  'PATCH  /__sim/scans/{ref}                    change status / verification (e.g. PENDING -> DONE)',
  'POST   /__sim/scans/{ref}/callback           send the NETVERIFYID callback {url, variant?, overrides?}',
  'GET    /__sim/authentications[/{ref}]        authentication state, metadata form, callbackUrl',
  'POST   /__sim/authentications/{ref}/start    mark STARTED (the person opened the journey)',
  'POST   /__sim/authentications/{ref}/complete {result: PASSED|FAILED|INVALID, deliverCallback?} + callback',
  'GET    /__sim/requests | DELETE              request log of Jumio endpoints | clear it',
  'POST   /__sim/faults | GET | DELETE [/{id}]  inject status/hang/slow/malformed/redirect/oversized/truncated',
  'GET    /__sim/clock | POST {advanceMs|set}   read / move the simulator clock',
  'POST   /__sim/reset                          forget everything',
];

export function controlRouter(ctx: SimContext): Router {
  const router = express.Router();
  router.use(express.json({ limit: '20mb' }));
  const { state } = ctx;

  router.get('/', (_req, res) => {
    res.json({ controlApi: CONTROL_API_SUMMARY, now: ctx.clock.now().toISOString() });
  });

  // ------------------------------------------------------------ scans
  router.post('/scans', (req, res) => {
    const body = parseBody(createScanSchema, req, res);
    if (!body) return;
    const scanReference = body.scanReference ?? randomUUID();
    if (state.scans.has(scanReference)) {
      res.status(409).json({ error: 'scan_exists', scanReference });
      return;
    }
    const facemap = !body.includeFacemap
      ? null
      : body.facemapBase64 !== undefined
        ? Buffer.from(body.facemapBase64, 'base64')
        : randomBytes(body.facemapBytes);
    const scan: SimScan = {
      scanReference,
      status: body.status,
      verificationStatus: body.verificationStatus,
      similarity: body.similarity,
      validity: body.validity,
      idScanSource: body.idScanSource,
      facemap,
      facemapSha256: facemap ? createHash('sha256').update(facemap).digest('hex') : null,
      createdAt: body.transactionDate ? new Date(body.transactionDate) : ctx.clock.now(),
      deleted: false,
      deletedAt: null,
      facemapDownloads: 0,
      responseVariant: body.responseVariant,
      callbacks: [],
    };
    if (body.reason !== undefined) scan.reason = body.reason;
    if (body.customerId !== undefined) scan.customerId = body.customerId;
    if (body.merchantIdScanReference !== undefined) {
      scan.merchantIdScanReference = body.merchantIdScanReference;
    }
    if (body.pii !== undefined) scan.pii = body.pii;
    state.scans.set(scanReference, scan);
    res.status(201).json({
      scanReference,
      facemapSha256: scan.facemapSha256,
      facemapBase64: facemap ? facemap.toString('base64') : null,
    });
  });

  router.get('/scans', (_req, res) => {
    res.json({ scans: [...state.scans.values()].map((s) => scanView(ctx, s)) });
  });

  router.get('/scans/:ref', (req, res) => {
    const scan = state.scans.get(req.params.ref);
    if (!scan) return void res.status(404).json({ error: 'unknown_scan' });
    res.json(scanView(ctx, scan));
  });

  router.patch('/scans/:ref', (req, res) => {
    const scan = state.scans.get(req.params.ref);
    if (!scan) return void res.status(404).json({ error: 'unknown_scan' });
    const body = parseBody(patchScanSchema, req, res);
    if (!body) return;
    if (body.status !== undefined) scan.status = body.status;
    if (body.verificationStatus !== undefined) scan.verificationStatus = body.verificationStatus;
    if (body.similarity !== undefined) scan.similarity = body.similarity;
    if (body.validity !== undefined) scan.validity = body.validity;
    if (body.responseVariant !== undefined) scan.responseVariant = body.responseVariant;
    // null clears an optional field.
    if (body.reason !== undefined) {
      if (body.reason === null) delete scan.reason;
      else scan.reason = body.reason;
    }
    if (body.customerId !== undefined) {
      if (body.customerId === null) delete scan.customerId;
      else scan.customerId = body.customerId;
    }
    if (body.merchantIdScanReference !== undefined) {
      if (body.merchantIdScanReference === null) delete scan.merchantIdScanReference;
      else scan.merchantIdScanReference = body.merchantIdScanReference;
    }
    res.json(scanView(ctx, scan));
  });

  router.post('/scans/:ref/callback', async (req, res) => {
    const scan = state.scans.get(req.params.ref);
    if (!scan) return void res.status(404).json({ error: 'unknown_scan' });
    const body = parseBody(scanCallbackSchema, req, res);
    if (!body) return;
    const now = ctx.clock.now();
    const baseUrl = ctx.baseUrl(req);
    const form = scanCallbackForm({
      scan,
      pii: scanPii(scan.scanReference, baseUrl, scan.pii),
      baseUrl,
      now,
      ...(body.variant ? { variant: body.variant } : {}),
      ...(body.overrides ? { overrides: body.overrides } : {}),
    });
    const result = await ctx.callbacks.send(body.url, form);
    scan.callbacks.push(deliveryRecord(body.url, form, now, result));
    res.json(result);
  });

  // ------------------------------------------------------------ authentications
  router.get('/authentications', (_req, res) => {
    res.json({ authentications: [...state.authentications.values()].map(authenticationView) });
  });

  router.get('/authentications/:ref', (req, res) => {
    const auth = state.authentications.get(req.params.ref);
    if (!auth) return void res.status(404).json({ error: 'unknown_authentication' });
    res.json(authenticationView(auth));
  });

  router.post('/authentications/:ref/start', (req, res) => {
    const auth = state.authentications.get(req.params.ref);
    if (!auth || auth.deleted)
      return void res.status(404).json({ error: 'unknown_authentication' });
    if (FINAL_AUTHENTICATION_STATES.includes(auth.state)) {
      return void res.status(409).json({ error: 'already_final', state: auth.state });
    }
    auth.state = 'STARTED';
    res.json(authenticationView(auth));
  });

  router.post('/authentications/:ref/complete', async (req, res) => {
    const auth = state.authentications.get(req.params.ref);
    if (!auth || auth.deleted)
      return void res.status(404).json({ error: 'unknown_authentication' });
    const body = parseBody(completeSchema, req, res);
    if (!body) return;
    // Final states never change: an EXPIRED transaction can no longer be completed.
    if (FINAL_AUTHENTICATION_STATES.includes(auth.state)) {
      return void res.status(409).json({ error: 'already_final', state: auth.state });
    }
    const result = await completeAuthentication(ctx, auth, body.result, ctx.baseUrl(req), {
      ...(body.variant ? { variant: body.variant } : {}),
      ...(body.overrides ? { overrides: body.overrides } : {}),
      deliverCallback: body.deliverCallback,
    });
    res.json({ state: auth.state, ...result });
  });

  // ------------------------------------------------------------ request log
  router.get('/requests', (_req, res) => {
    res.json({ requests: state.requests });
  });
  router.delete('/requests', (_req, res) => {
    res.json({ cleared: state.clearRequests() });
  });

  // ------------------------------------------------------------ faults
  router.post('/faults', (req, res) => {
    const body = parseBody(faultSchema, req, res);
    if (!body) return;
    const { times, retryAfter, ...rest } = body;
    const fault = state.addFault({
      ...rest,
      ...(retryAfter !== undefined ? { retryAfter } : {}),
      remaining: times ?? null,
      createdAt: ctx.clock.now().toISOString(),
    });
    res.status(201).json(fault);
  });
  router.get('/faults', (_req, res) => {
    res.json({ faults: state.faults });
  });
  router.delete('/faults', (_req, res) => {
    const cleared = state.faults.length;
    state.faults = [];
    res.json({ cleared });
  });
  router.delete('/faults/:id', (req, res) => {
    const before = state.faults.length;
    state.faults = state.faults.filter((f) => f.id !== req.params.id);
    if (state.faults.length === before)
      return void res.status(404).json({ error: 'unknown_fault' });
    res.json({ cleared: 1 });
  });

  // ------------------------------------------------------------ clock and reset
  router.get('/clock', (_req, res) => {
    res.json({ now: ctx.clock.now().toISOString() });
  });
  router.post('/clock', (req, res) => {
    const body = parseBody(clockSchema, req, res);
    if (!body) return;
    if (body.advanceMs !== undefined) ctx.clock.advance(body.advanceMs);
    if (body.set !== undefined) ctx.clock.set(new Date(body.set));
    res.json({ now: ctx.clock.now().toISOString() });
  });

  router.post('/reset', (_req, res) => {
    state.reset();
    ctx.clock.reset();
    res.json({ ok: true });
  });

  router.use((req, res) => {
    res.status(404).json({ error: 'unknown_control_route', path: req.originalUrl });
  });
  // express.json() rejects unparsable bodies before any route runs; answer in this API's shape.
  router.use((err: unknown, _req: Request, res: Response, next: NextFunction) => {
    const status = typeof err === 'object' && err !== null && 'status' in err ? err.status : 500;
    if (res.headersSent || typeof status !== 'number' || status >= 500) return next(err);
    const message = err instanceof Error ? err.message : 'invalid request';
    res.status(status).json({ error: 'invalid_json', issues: [{ path: '', message }] });
  });
  return router;
}
