import { createHash, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import multer from 'multer';
import {
  type AuthenticationCallbackVariant,
  type DeliveryResult,
  type FieldOverrides,
  authenticationCallbackForm,
  authenticationImages,
  deliveryRecord,
  hasCapturedImages,
  identityVerification,
  rejectReason,
} from './callbacks';
import { FIFTEEN_MINUTES_MS, type SimContext, jumioError } from './context';
import { applyFault } from './faults';
import { parseEnrollmentMetadata } from './metadata';
import { scanPii } from './pii';
import {
  type AuthenticationResult,
  type CredentialKind,
  FINAL_AUTHENTICATION_STATES,
  type JumioEndpoint,
  type SimAuthentication,
  type SimScan,
} from './state';
import { formatJumioTimestamp } from './time';

const SCAN = String.raw`^/api/netverify/v2/scans/([^/]+)`;
const AUTH = String.raw`^/api/netverify/v2/authentications/([^/]+)/?$`;

const ROUTES: ReadonlyArray<{ endpoint: JumioEndpoint; method: string; pattern: RegExp }> = [
  { endpoint: 'facemap', method: 'GET', pattern: new RegExp(`${SCAN}/data/facemap/?$`) },
  { endpoint: 'scanDetails', method: 'GET', pattern: new RegExp(`${SCAN}/data/?$`) },
  { endpoint: 'scanStatus', method: 'GET', pattern: new RegExp(`${SCAN}/?$`) },
  { endpoint: 'scanDelete', method: 'DELETE', pattern: new RegExp(`${SCAN}/?$`) },
  {
    endpoint: 'initiate',
    method: 'POST',
    pattern: /^\/api\/authentication\/v1\/facemap\/initiate\/?$/,
  },
  { endpoint: 'authRetrieval', method: 'GET', pattern: new RegExp(AUTH) },
  { endpoint: 'authDelete', method: 'DELETE', pattern: new RegExp(AUTH) },
];

/** Retrieval and Delete accept either pair; initiate is not an administration API. */
const ADMIN_ALLOWED: ReadonlySet<JumioEndpoint> = new Set([
  'scanStatus',
  'scanDetails',
  'facemap',
  'scanDelete',
  'authRetrieval',
  'authDelete',
]);

/**
 * `<Company> <App>/<version>`: a first word that is not itself a product token (so
 * `curl/8.5`, `node` or `Mozilla/5.0 ...` are refused), then `Name/1.2.3`.
 */
const USER_AGENT =
  /^[A-Za-z0-9][^\s/]*(?: [^\s/]+)* [A-Za-z0-9][\w.+-]*\/\d+(?:\.\d+){0,3}(?:[-+][0-9A-Za-z.-]+)?$/;

export function isAcceptedUserAgent(value: string | undefined): boolean {
  return value !== undefined && value.length <= 200 && USER_AGENT.test(value);
}

function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

export function classifyCredentials(ctx: SimContext, header: string | undefined): CredentialKind {
  const match = header ? /^Basic\s+([A-Za-z0-9+/=._~-]+)\s*$/i.exec(header) : null;
  if (!header) return 'none';
  if (!match?.[1]) return 'invalid';
  const decoded = Buffer.from(match[1], 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return 'invalid';
  const user = decoded.slice(0, colon);
  const pass = decoded.slice(colon + 1);
  const c = ctx.credentials;
  if (safeEqual(user, c.apiToken) && safeEqual(pass, c.apiSecret)) return 'main';
  if (safeEqual(user, c.adminApiToken) && safeEqual(pass, c.adminApiSecret)) return 'admin';
  return 'invalid';
}

function decodeRef(raw: string): string {
  try {
    return decodeURIComponent(raw);
  } catch {
    return raw;
  }
}

/** The Jumio half of the simulator: log, authenticate, inject faults, then answer. */
export function jumioMiddleware(ctx: SimContext): RequestHandler {
  const initiate = initiateHandler(ctx);
  return async (req: Request, res: Response, next: NextFunction) => {
    const method = req.method === 'HEAD' ? 'GET' : req.method;
    const pathMatches = ROUTES.filter((r) => r.pattern.test(req.path));
    const route = pathMatches.find((r) => r.method === method);
    const header = req.headers.authorization;
    const entry = ctx.state.logRequest({
      method: req.method,
      path: req.path,
      time: ctx.clock.now().toISOString(),
      status: null,
      credentials: 'none',
      userAgent: req.get('user-agent') ?? null,
      accept: req.get('accept') ?? null,
      endpoint: route?.endpoint ?? 'unknown',
      fault: null,
    });
    res.on('finish', () => {
      entry.status = res.statusCode;
    });
    entry.credentials = classifyCredentials(ctx, header);

    if (!route) {
      if (pathMatches.length > 0) {
        res.setHeader('Allow', [...new Set(pathMatches.map((r) => r.method))].join(', '));
        return jumioError(req, res, 405, `Method not allowed: ${req.method}`);
      }
      return jumioError(req, res, 404, `Not found: ${req.path}`);
    }
    const allowed =
      entry.credentials === 'main' ||
      (entry.credentials === 'admin' && ADMIN_ALLOWED.has(route.endpoint));
    if (!allowed) {
      res.setHeader('WWW-Authenticate', 'Basic realm="Jumio", charset="UTF-8"');
      return jumioError(req, res, 401, 'Full authentication is required to access this resource');
    }
    if (!isAcceptedUserAgent(req.get('user-agent'))) {
      return jumioError(
        req,
        res,
        403,
        'Forbidden: the User-Agent header must name your company and application, e.g. "Company App/1.2.3"',
      );
    }
    const ref = decodeRef(route.pattern.exec(req.path)?.[1] ?? '');
    const fault = ctx.state.takeFault(route.endpoint);
    if (fault) {
      entry.fault = fault.id;
      if (await applyFault(ctx, fault, route.endpoint, req, res, ref)) return;
    }
    try {
      switch (route.endpoint) {
        case 'scanStatus':
          return scanStatus(ctx, req, res, ref);
        case 'scanDetails':
          return scanDetails(ctx, req, res, ref);
        case 'facemap':
          return facemapDownload(ctx, req, res, ref);
        case 'scanDelete':
          return scanDelete(ctx, req, res, ref);
        case 'initiate':
          return await initiate(req, res);
        case 'authRetrieval':
          return authRetrieval(ctx, req, res, ref);
        case 'authDelete':
          return authDelete(ctx, req, res, ref);
      }
    } catch (err) {
      next(err);
    }
  };
}

// ---------------------------------------------------------------- ID Verification retrieval

function liveScan(ctx: SimContext, req: Request, res: Response, ref: string): SimScan | undefined {
  const scan = ctx.state.scans.get(ref);
  if (!scan || scan.deleted) {
    jumioError(req, res, 404, `Not found: scan ${ref}`);
    return undefined;
  }
  return scan;
}

function scanStatus(ctx: SimContext, req: Request, res: Response, ref: string): void {
  const scan = liveScan(ctx, req, res, ref);
  if (!scan) return;
  const digits = scan.responseVariant.fractionDigits ?? 3;
  res.json({
    timestamp: formatJumioTimestamp(ctx.clock.now(), digits),
    scanReference: scan.scanReference,
    status: scan.status,
  });
}

function scanDetails(ctx: SimContext, req: Request, res: Response, ref: string): void {
  const scan = liveScan(ctx, req, res, ref);
  if (!scan) return;
  const baseUrl = ctx.baseUrl(req);
  const digits = scan.responseVariant.fractionDigits ?? 3;
  const pii = scanPii(scan.scanReference, baseUrl, scan.pii);
  const transaction: Record<string, unknown> = {
    status: scan.status,
    source: scan.idScanSource,
    clientIp: pii.clientIp,
  };
  if (!scan.responseVariant.omitTransactionDate) {
    transaction.date = formatJumioTimestamp(scan.createdAt, digits);
  }
  if (scan.customerId !== undefined) transaction.customerId = scan.customerId;
  if (scan.merchantIdScanReference !== undefined) {
    transaction.merchantScanReference = scan.merchantIdScanReference;
  }
  const body: Record<string, unknown> = {
    timestamp: formatJumioTimestamp(ctx.clock.now(), digits),
    scanReference: scan.responseVariant.scanReference ?? scan.scanReference,
  };
  // Nothing has been extracted while the scan is still pending.
  if (scan.status === 'PENDING') {
    res.json({ ...body, transaction });
    return;
  }
  const extracted =
    scan.verificationStatus !== 'NO_ID_UPLOADED' &&
    scan.verificationStatus !== 'ERROR_NOT_READABLE_ID';
  body.document = extracted
    ? {
        type: pii.idType,
        subType: pii.idSubtype,
        issuingCountry: pii.idCountry,
        firstName: pii.idFirstName,
        lastName: pii.idLastName,
        dob: pii.idDob,
        expiry: pii.idExpiry,
        number: pii.idNumber,
        personalNumber: pii.personalNumber,
        usState: pii.idUsState,
        address: pii.idAddress,
        status: scan.verificationStatus,
      }
    : { status: scan.verificationStatus };
  body.transaction = transaction;
  const verification: Record<string, unknown> = {};
  if (scan.verificationStatus === 'APPROVED_VERIFIED') {
    verification.mrzCheck = 'OK';
    verification.identityVerification = identityVerification(scan, scan.responseVariant.validity);
  }
  const reject = rejectReason(scan);
  if (reject) verification.rejectReason = reject;
  body.verification = verification;
  if (scan.facemap && scan.status === 'DONE') {
    body.facemap = {
      classifier: 'facemap',
      href: scan.responseVariant.facemapHref ?? facemapHref(baseUrl, scan),
    };
  }
  res.json(body);
}

export function facemapHref(baseUrl: string, scan: SimScan): string {
  return `${baseUrl}/api/netverify/v2/scans/${scan.scanReference}/data/facemap`;
}

function facemapDownload(ctx: SimContext, req: Request, res: Response, ref: string): void {
  const scan = liveScan(ctx, req, res, ref);
  if (!scan) return;
  if (!scan.facemap || scan.status !== 'DONE') {
    return jumioError(req, res, 404, `Not found: facemap of scan ${ref}`);
  }
  scan.facemapDownloads++;
  res.status(200).type('application/octet-stream').send(scan.facemap);
}

function scanDelete(ctx: SimContext, req: Request, res: Response, ref: string): void {
  const scan = liveScan(ctx, req, res, ref);
  if (!scan) return;
  scan.deleted = true;
  scan.deletedAt = ctx.clock.now();
  // Jumio keeps no PII of a deleted scan; the simulator keeps only what its rules need.
  ctx.logger.info({ scanReference: ref }, 'scan deleted');
  res.status(200).end();
}

// ---------------------------------------------------------------- authentication

function liveAuth(
  ctx: SimContext,
  req: Request,
  res: Response,
  ref: string,
): SimAuthentication | undefined {
  const auth = ctx.state.authentications.get(ref);
  if (!auth || auth.deleted) {
    jumioError(req, res, 404, `Not found: authentication ${ref}`);
    return undefined;
  }
  return auth;
}

function authRetrieval(ctx: SimContext, req: Request, res: Response, ref: string): void {
  const auth = liveAuth(ctx, req, res, ref);
  if (!auth) return;
  const body: Record<string, unknown> = {
    transactionReference: auth.transactionReference,
    enrollmentTransactionReference: auth.enrollmentTransactionReference,
    transactionResult: auth.state,
    // The documented sample has no trailing Z (jumio-api.md, section 6).
    transactionDate: formatJumioTimestamp(auth.createdAt, 3, false),
    scanSource: auth.scanSource,
  };
  if (auth.userReference !== undefined) body.userReference = auth.userReference;
  if (hasCapturedImages(auth)) {
    const images = authenticationImages(auth, ctx.baseUrl(req));
    body.images = [{ classifier: 'FACE', href: images.face }];
    body.livenessImages = images.liveness;
  }
  res.json(body);
}

function authDelete(ctx: SimContext, req: Request, res: Response, ref: string): void {
  const auth = liveAuth(ctx, req, res, ref);
  if (!auth) return;
  auth.deleted = true;
  auth.deletedAt = ctx.clock.now();
  res.status(200).end();
}

/** Sends the NETVERIFY_AUTHENTICATION callback of `auth` without blocking the caller. */
export function sendAuthenticationCallbackInBackground(
  ctx: SimContext,
  auth: SimAuthentication,
  baseUrl: string,
): void {
  if (auth.callbackUrl === undefined) return;
  const url = auth.callbackUrl;
  const now = ctx.clock.now();
  const form = authenticationCallbackForm({ auth, baseUrl, now });
  ctx.callbacks.sendInBackground(url, form, (result) => {
    auth.callbacks.push(deliveryRecord(url, form, now, result));
  });
}

/**
 * Moves a non-final authentication to its result and delivers the callback (awaited, so
 * the caller learns the vault's answer). Callers check that the state is not final.
 */
export async function completeAuthentication(
  ctx: SimContext,
  auth: SimAuthentication,
  result: AuthenticationResult,
  baseUrl: string,
  options: {
    variant?: AuthenticationCallbackVariant;
    overrides?: FieldOverrides;
    /** false: the callback is "lost" (not sent, not recorded as delivered). */
    deliverCallback?: boolean;
  } = {},
): Promise<DeliveryResult> {
  const now = ctx.clock.now();
  auth.state = result;
  auth.finishedAt = now;
  ctx.logger.info(
    { transactionReference: auth.transactionReference, result },
    'authentication completed',
  );
  if (auth.callbackUrl === undefined || options.deliverCallback === false) {
    return { status: null, body: null };
  }
  const form = authenticationCallbackForm({
    auth,
    baseUrl,
    now,
    ...(options.variant ? { variant: options.variant } : {}),
    ...(options.overrides ? { overrides: options.overrides } : {}),
  });
  const delivered = await ctx.callbacks.send(auth.callbackUrl, form);
  auth.callbacks.push(deliveryRecord(auth.callbackUrl, form, now, delivered));
  return delivered;
}

const MAX_FACEMAP_BYTES = 5 * 1024 * 1024;

function multerProblem(err: unknown): { status: number; field: string; message: string } {
  if (err instanceof multer.MulterError) {
    const status = err.code === 'LIMIT_FILE_SIZE' ? 413 : 400;
    return { status, field: err.field ?? 'multipart', message: err.message };
  }
  const message = err instanceof Error ? err.message : String(err);
  return { status: 400, field: 'multipart', message: `malformed multipart body: ${message}` };
}

function initiateHandler(ctx: SimContext) {
  // multer drops the Content-Type of text parts; busboy reports it, so listen alongside.
  const textPartTypes = new WeakMap<Request, Map<string, string>>();
  type BusboyLike = {
    on(event: 'field', cb: (name: string, value: string, info: { mimeType: string }) => void): void;
  };
  const options = {
    storage: multer.memoryStorage(),
    limits: { fileSize: MAX_FACEMAP_BYTES, files: 2, fields: 2, parts: 2, fieldSize: 64 * 1024 },
    // multer 2.x option, not yet in @types/multer.
    streamHandler: (req: Request, busboy: BusboyLike & NodeJS.WritableStream) => {
      const types = new Map<string, string>();
      textPartTypes.set(req, types);
      busboy.on('field', (name, _value, info) => types.set(name, info.mimeType));
      req.pipe(busboy);
    },
  } as multer.Options;
  const upload = multer(options).fields([
    { name: 'facemap', maxCount: 1 },
    { name: 'enrollmentMetadata', maxCount: 1 },
  ]);

  return async (req: Request, res: Response): Promise<void> => {
    const fail = (status: number, field: string, message: string, code = 'INVALID_REQUEST') =>
      jumioError(req, res, status, `${field} ${message}`, { code, field });

    if (!req.is('multipart/form-data')) {
      return fail(415, 'Content-Type', 'must be multipart/form-data', 'UNSUPPORTED_MEDIA_TYPE');
    }
    try {
      await new Promise<void>((resolve, reject) =>
        upload(req, res, (err: unknown) => (err ? reject(err) : resolve())),
      );
    } catch (err) {
      const p = multerProblem(err);
      return fail(p.status, p.field, p.message);
    }
    const files = (req.files ?? {}) as Record<string, Express.Multer.File[] | undefined>;
    const textParts = (req.body ?? {}) as Record<string, unknown>;
    const partTypes = textPartTypes.get(req) ?? new Map<string, string>();
    const unexpected = Object.keys(textParts).filter((k) => k !== 'enrollmentMetadata');
    if (unexpected[0] !== undefined) return fail(400, unexpected[0], 'is not an expected part');

    const facemapFile = files.facemap?.[0];
    if (!facemapFile) return fail(400, 'facemap', 'part is required (application/octet-stream)');
    if (facemapFile.mimetype !== 'application/octet-stream') {
      return fail(400, 'facemap', `must be application/octet-stream, got ${facemapFile.mimetype}`);
    }
    if (facemapFile.size === 0) return fail(400, 'facemap', 'must not be empty');

    let metadataText: string;
    let metadataPart: 'file' | 'field';
    const metadataFile = files.enrollmentMetadata?.[0];
    if (metadataFile) {
      if (metadataFile.mimetype !== 'application/json') {
        return fail(
          400,
          'enrollmentMetadata',
          `must be application/json, got ${metadataFile.mimetype}`,
        );
      }
      metadataText = metadataFile.buffer.toString('utf8');
      metadataPart = 'file';
    } else if (typeof textParts.enrollmentMetadata === 'string') {
      const type = partTypes.get('enrollmentMetadata') ?? 'text/plain';
      if (type !== 'application/json') {
        return fail(400, 'enrollmentMetadata', `must be application/json, got ${type}`);
      }
      metadataText = textParts.enrollmentMetadata;
      metadataPart = 'field';
    } else {
      return fail(400, 'enrollmentMetadata', 'part is required (application/json)');
    }

    const parsed = parseEnrollmentMetadata(metadataText, {
      allowHttpCallbacks: ctx.allowHttpCallbacks,
    });
    if (!parsed.ok) {
      const first = parsed.errors[0] ?? { field: 'enrollmentMetadata', message: 'is invalid' };
      return jumioError(req, res, 400, `${first.field} ${first.message}`, {
        code: 'INVALID_ENROLLMENT_METADATA',
        field: first.field,
        errors: parsed.errors,
      });
    }
    const metadata = parsed.metadata;
    const enrollmentRef = metadata.enrollmentTransactionReference;
    const field = 'enrollmentTransactionReference';
    const scan = ctx.state.scans.get(enrollmentRef);
    if (!scan)
      return fail(400, field, 'does not name a known ID Verification', 'UNKNOWN_ENROLLMENT');
    if (!scan.deleted) {
      return fail(
        400,
        field,
        'must be deleted (Delete API) before authentication',
        'ENROLLMENT_NOT_DELETED',
      );
    }
    if (
      scan.status !== 'DONE' ||
      scan.verificationStatus !== 'APPROVED_VERIFIED' ||
      scan.similarity !== 'MATCH' ||
      !scan.validity
    ) {
      return fail(
        400,
        field,
        `is not eligible (needs DONE, APPROVED_VERIFIED, MATCH, valid; got ${scan.status}, ${scan.verificationStatus}, ${scan.similarity}, validity ${scan.validity})`,
        'ENROLLMENT_NOT_ELIGIBLE',
      );
    }
    if (!scan.facemap || !scan.facemapSha256) {
      return fail(400, field, 'has no facemap', 'ENROLLMENT_HAS_NO_FACEMAP');
    }
    const sha256 = createHash('sha256').update(facemapFile.buffer).digest('hex');
    if (sha256 !== scan.facemapSha256) {
      return fail(400, 'facemap', 'is not the facemap of this enrollment', 'FACEMAP_MISMATCH');
    }

    const now = ctx.clock.now();
    const baseUrl = ctx.baseUrl(req);
    // The 15-minute rule: only the last transaction created within 15 minutes can complete.
    for (const earlier of ctx.state.authenticationsFor(enrollmentRef)) {
      if (earlier.deleted || FINAL_AUTHENTICATION_STATES.includes(earlier.state)) continue;
      if (now.getTime() - earlier.createdAt.getTime() >= FIFTEEN_MINUTES_MS) continue;
      earlier.state = 'EXPIRED';
      earlier.finishedAt = now;
      ctx.logger.info(
        { transactionReference: earlier.transactionReference },
        'authentication expired',
      );
      sendAuthenticationCallbackInBackground(ctx, earlier, baseUrl);
    }

    const transactionReference = randomUUID();
    const authorizationToken = randomBytes(24).toString('base64url');
    const redirectUrl = `${baseUrl}/web/v4/app?authorizationToken=${authorizationToken}&locale=${metadata.locale ?? 'en'}`;
    const auth: SimAuthentication = {
      transactionReference,
      enrollmentTransactionReference: enrollmentRef,
      state: 'CREATED',
      metadataForm: parsed.form,
      metadataPart,
      authorizationToken,
      redirectUrl,
      facemapSha256: sha256,
      facemapFilename: facemapFile.originalname || null,
      scanSource: 'WEB',
      createdAt: now,
      finishedAt: null,
      deleted: false,
      deletedAt: null,
      callbacks: [],
    };
    if (metadata.userReference !== undefined) auth.userReference = metadata.userReference;
    if (metadata.callbackUrl !== undefined) auth.callbackUrl = metadata.callbackUrl;
    if (metadata.successUrl !== undefined) auth.successUrl = metadata.successUrl;
    if (metadata.errorUrl !== undefined) auth.errorUrl = metadata.errorUrl;
    if (metadata.locale !== undefined) auth.locale = metadata.locale;
    if (metadata.tokenLifetimeInMinutes !== undefined) {
      auth.tokenLifetimeInMinutes = metadata.tokenLifetimeInMinutes;
    }
    ctx.state.authentications.set(transactionReference, auth);
    ctx.logger.info(
      { transactionReference, metadataForm: parsed.form },
      'authentication initiated',
    );
    res.status(200).json({ authenticationTransactionReference: transactionReference, redirectUrl });
  };
}
