/**
 * The JumioApi adapter over undici 7. Every request is built from the configured origin
 * and checked against it before it leaves (invariant 7: credentials go only to Jumio);
 * redirects are never followed; GET and DELETE are retried on transient failures, the
 * initiate POST never is.
 */
import { randomBytes } from 'node:crypto';
import { Agent, type Dispatcher } from 'undici';
import type { z } from 'zod';
import {
  FacemapTooLargeError,
  JumioConfigurationError,
  JumioError,
  JumioInvalidRequestError,
  JumioInvalidResponseError,
  JumioNetworkError,
  JumioNotFoundError,
  JumioRateLimitedError,
  JumioRequestRejectedError,
  JumioTimeoutError,
  JumioUnauthorizedError,
  JumioUpstreamError,
  UnsafeFacemapUrlError,
  describeIssues,
  isFacemapUrlOf,
  isLoopbackHostname,
  makeInitiateAuthenticationInputSchema,
  type InitiateAuthenticationInput,
  type InitiatedAuthentication,
  type JumioApi,
  type JumioAuthentication,
  type JumioScanDetails,
  type JumioScanStatus,
} from '../../core/jumio';
import { DEFAULT_RETRY, backoffDelay, parseRetryAfter, type RetryPolicy } from './retry';
import {
  authenticationResponseSchema,
  initiateResponseSchema,
  scanDetailsResponseSchema,
  scanStatusResponseSchema,
} from './schemas';

export { JUMIO_REGION_BASE_URLS, type JumioRegion } from './regions';

export interface JumioCredentials {
  token: string;
  secret: string;
}

export interface JumioTimeouts {
  connectMs: number;
  /** Until the response headers arrive. */
  headersMs: number;
  /** Between two chunks of the body (undici's bodyTimeout). */
  bodyMs: number;
  /**
   * The whole attempt, body included: idle timeouts alone never end a server that
   * trickles a byte a second (JUMIO_REQUEST_DEADLINE_MS). Defaults to 60 s.
   */
  totalMs?: number;
}

export interface UndiciJumioClientOptions {
  baseUrl: string;
  /** Used for the initiate call. */
  credentials: JumioCredentials;
  /** Jumio's separate pair for the Retrieval and Delete APIs; defaults to `credentials`. */
  adminCredentials?: JumioCredentials;
  /** `Company App/1.2.3`: Jumio requires it to name the customer's business. */
  userAgent: string;
  facemapMaxBytes: number;
  timeouts?: JumioTimeouts;
  retry?: RetryPolicy;
  /** When given, its connect timeout is the caller's business and `close()` leaves it open. */
  dispatcher?: Dispatcher;
  /** Injected by tests to record backoff delays instead of waiting them out. */
  sleep?: (ms: number) => Promise<void>;
  /** Source of jitter, in [0, 1). */
  random?: () => number;
}

export const DEFAULT_JUMIO_TIMEOUTS: Required<JumioTimeouts> = {
  connectMs: 5_000,
  headersMs: 15_000,
  bodyMs: 30_000,
  totalMs: 60_000,
};

/** JSON answers are small; a larger one is a fault, not something to buffer. */
const MAX_JSON_BYTES = 1024 * 1024;
/** How much of an error body is drained to keep the connection reusable. */
const MAX_DRAIN_BYTES = 64 * 1024;
/** Jumio references are UUIDs; anything outside this set could alter the request path. */
const REFERENCE_RE = /^[A-Za-z0-9_-]{1,100}$/;

type Operation =
  | 'scanStatus'
  | 'scanDetails'
  | 'facemap'
  | 'scanDelete'
  | 'initiate'
  | 'authRetrieval'
  | 'authDelete';

interface Call {
  operation: Operation;
  method: 'GET' | 'DELETE' | 'POST';
  /** Absolute path (and query) on the configured origin. */
  path: string;
  admin: boolean;
  accept: string;
  body?: { bytes: Buffer; contentType: string };
}

const sleepFor = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

function basicAuth(c: JumioCredentials, which: string): string {
  // RFC 7617: the user-id cannot contain a colon; neither part may hold control characters.
  if (!c.token || !c.secret)
    throw new JumioConfigurationError(`${which} token and secret are required`);
  if (c.token.includes(':')) throw new JumioConfigurationError(`${which} token contains ':'`);
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x1f\x7f]/.test(c.token + c.secret)) {
    throw new JumioConfigurationError(`${which} credentials contain control characters`);
  }
  return `Basic ${Buffer.from(`${c.token}:${c.secret}`, 'utf8').toString('base64')}`;
}

function header(headers: Dispatcher.ResponseData['headers'], name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/** Maps undici's transport failures to typed errors by code only (no message text). */
function transportError(operation: Operation, err: unknown): JumioError {
  if (err instanceof JumioError) return err;
  const code = (err as { code?: unknown } | null)?.code;
  switch (code) {
    case 'UND_ERR_CONNECT_TIMEOUT':
      return new JumioTimeoutError(operation, 'connect', { cause: err });
    case 'UND_ERR_HEADERS_TIMEOUT':
      return new JumioTimeoutError(operation, 'headers', { cause: err });
    case 'UND_ERR_BODY_TIMEOUT':
      return new JumioTimeoutError(operation, 'body', { cause: err });
    default:
      return new JumioNetworkError(
        operation,
        typeof code === 'string' ? code : err instanceof Error ? err.name : 'unknown',
        { cause: err },
      );
  }
}

/** Reads a body, giving up (and destroying the stream) as soon as it passes `max`. */
async function readCapped(
  body: Dispatcher.ResponseData['body'],
  max: number,
  tooLarge: () => JumioError,
): Promise<Uint8Array> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of body as AsyncIterable<Buffer>) {
    total += chunk.byteLength;
    if (total > max) {
      discard(body);
      throw tooLarge();
    }
    chunks.push(chunk);
  }
  const out = new Uint8Array(total);
  let offset = 0;
  for (const c of chunks) {
    out.set(c, offset);
    offset += c.byteLength;
  }
  return out;
}

/** Abandons a body: undici emits an abort error on destroy, which nobody else listens to. */
function discard(body: Dispatcher.ResponseData['body']): void {
  if (body.destroyed) return;
  body.on('error', () => undefined);
  body.destroy();
}

async function drain(body: Dispatcher.ResponseData['body']): Promise<void> {
  try {
    await body.dump({ limit: MAX_DRAIN_BYTES });
  } catch {
    // The connection is discarded instead; nothing to report.
  }
}

export class UndiciJumioClient implements JumioApi {
  private readonly origin: string;
  private readonly basePath: string;
  private readonly loopbackHttp: boolean;
  private readonly mainAuth: string;
  private readonly adminAuth: string;
  private readonly userAgent: string;
  private readonly facemapMaxBytes: number;
  private readonly timeouts: Required<JumioTimeouts>;
  private readonly retry: RetryPolicy;
  private readonly dispatcher: Dispatcher;
  private readonly ownsDispatcher: boolean;
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly random: () => number;
  private readonly initiateSchema: ReturnType<typeof makeInitiateAuthenticationInputSchema>;
  /**
   * Jumio's Retry-After binds the whole client, not the one request that got it: no call
   * leaves before this time (epoch ms), whichever worker or request makes it.
   */
  private notBefore = 0;

  constructor(options: UndiciJumioClientOptions) {
    let base: URL;
    try {
      base = new URL(options.baseUrl);
    } catch {
      throw new JumioConfigurationError('baseUrl is not a valid URL');
    }
    if (base.username || base.password) {
      throw new JumioConfigurationError('baseUrl must not carry credentials');
    }
    if (base.search || base.hash) {
      throw new JumioConfigurationError('baseUrl must not have a query or fragment');
    }
    this.loopbackHttp = base.protocol === 'http:' && isLoopbackHostname(base.hostname);
    if (base.protocol !== 'https:' && !this.loopbackHttp) {
      throw new JumioConfigurationError('baseUrl must be https (http only for a loopback host)');
    }
    this.origin = base.origin;
    // Only against a loopback simulator may callbacks go to a plain-http local vault.
    this.initiateSchema = makeInitiateAuthenticationInputSchema({
      allowLoopbackHttpUrls: this.loopbackHttp,
    });
    this.basePath = base.pathname.replace(/\/+$/, '');

    this.mainAuth = basicAuth(options.credentials, 'API');
    this.adminAuth = options.adminCredentials
      ? basicAuth(options.adminCredentials, 'admin API')
      : this.mainAuth;

    // eslint-disable-next-line no-control-regex
    if (!options.userAgent.trim() || /[\x00-\x1f\x7f]/.test(options.userAgent)) {
      throw new JumioConfigurationError('userAgent must be a non-empty single-line value');
    }
    this.userAgent = options.userAgent;

    if (!Number.isSafeInteger(options.facemapMaxBytes) || options.facemapMaxBytes <= 0) {
      throw new JumioConfigurationError('facemapMaxBytes must be a positive integer');
    }
    this.facemapMaxBytes = options.facemapMaxBytes;
    this.timeouts = { ...DEFAULT_JUMIO_TIMEOUTS, ...options.timeouts };
    this.retry = options.retry ?? DEFAULT_RETRY;
    if (!Number.isInteger(this.retry.maxAttempts) || this.retry.maxAttempts < 1) {
      throw new JumioConfigurationError('retry.maxAttempts must be an integer >= 1');
    }
    this.ownsDispatcher = !options.dispatcher;
    this.dispatcher =
      options.dispatcher ?? new Agent({ connect: { timeout: this.timeouts.connectMs } });
    this.sleep = options.sleep ?? sleepFor;
    this.random = options.random ?? Math.random;
  }

  /** Closes the connection pool the client created (not an injected dispatcher). */
  async close(): Promise<void> {
    if (this.ownsDispatcher) await this.dispatcher.close();
  }

  // ------------------------------------------------------------ endpoints

  async getScanStatus(scanReference: string): Promise<JumioScanStatus> {
    const ref = this.reference('scanStatus', scanReference);
    return this.getJson('scanStatus', `/api/netverify/v2/scans/${ref}`, scanStatusResponseSchema);
  }

  async getScanDetails(scanReference: string): Promise<JumioScanDetails> {
    const ref = this.reference('scanDetails', scanReference);
    return this.getJson(
      'scanDetails',
      `/api/netverify/v2/scans/${ref}/data`,
      scanDetailsResponseSchema,
    );
  }

  async downloadFacemap(url: string, scanReference: string): Promise<Uint8Array> {
    const path = this.facemapPath(url, scanReference);
    const max = this.facemapMaxBytes;
    return this.execute(
      {
        operation: 'facemap',
        method: 'GET',
        path,
        admin: true,
        accept: 'application/octet-stream, application/json',
      },
      async (res) => {
        if (res.statusCode >= 300 && res.statusCode < 400) {
          // The Location is deliberately not read, let alone fetched.
          await drain(res.body);
          throw new UnsafeFacemapUrlError(`redirect (HTTP ${res.statusCode}) refused`);
        }
        if (res.statusCode < 200 || res.statusCode >= 300) {
          throw await this.statusError('facemap', res);
        }
        const length = Number(header(res.headers, 'content-length'));
        if (Number.isFinite(length) && length > max) {
          discard(res.body);
          throw new FacemapTooLargeError(max);
        }
        // A JSON or HTML body on a 200 is an error page, not a facemap: never store it.
        const type = (header(res.headers, 'content-type') ?? '').toLowerCase();
        if (type.startsWith('application/json') || type.startsWith('text/')) {
          await drain(res.body);
          throw new JumioInvalidResponseError('facemap', `unexpected content type ${type}`);
        }
        const bytes = await readCapped(res.body, max, () => new FacemapTooLargeError(max));
        if (bytes.byteLength === 0) {
          throw new JumioInvalidResponseError('facemap', 'empty facemap');
        }
        return bytes;
      },
    );
  }

  async deleteScan(scanReference: string): Promise<void> {
    const ref = this.reference('scanDelete', scanReference);
    await this.delete('scanDelete', `/api/netverify/v2/scans/${ref}`);
  }

  async initiateAuthentication(
    input: InitiateAuthenticationInput,
  ): Promise<InitiatedAuthentication> {
    const parsed = this.initiateSchema.safeParse(input);
    if (!parsed.success) {
      throw new JumioInvalidRequestError('initiate', describeIssues(parsed.error));
    }
    const { facemap, ...fields } = parsed.data;
    if (facemap.byteLength > this.facemapMaxBytes)
      throw new FacemapTooLargeError(this.facemapMaxBytes);

    const metadata: Record<string, string | number> = {};
    for (const [key, value] of Object.entries(fields)) {
      if (value !== undefined) metadata[key] = value;
    }
    // The documented, wrapped form of the metadata part.
    const body = multipart([
      {
        name: 'facemap',
        filename: 'facemap.bin',
        type: 'application/octet-stream',
        bytes: facemap,
      },
      {
        name: 'enrollmentMetadata',
        filename: 'enrollmentMetadata.json',
        type: 'application/json',
        bytes: Buffer.from(JSON.stringify({ enrollmentMetadata: metadata })),
      },
    ]);
    let response;
    try {
      response = await this.execute(
        {
          operation: 'initiate',
          method: 'POST',
          path: this.basePath + '/api/authentication/v1/facemap/initiate',
          admin: false,
          accept: 'application/json',
          body,
        },
        (res) => this.readJson('initiate', res, initiateResponseSchema),
      );
    } finally {
      // The body held the one copy of the facemap this client made: sent, then zeroed.
      body.bytes.fill(0);
    }
    const out: InitiatedAuthentication = {
      authenticationReference: response.authenticationTransactionReference,
    };
    if (response.redirectUrl) out.redirectUrl = response.redirectUrl;
    return out;
  }

  async getAuthentication(transactionReference: string): Promise<JumioAuthentication> {
    const ref = this.reference('authRetrieval', transactionReference);
    return this.getJson(
      'authRetrieval',
      `/api/netverify/v2/authentications/${ref}`,
      authenticationResponseSchema,
    );
  }

  async deleteAuthentication(transactionReference: string): Promise<void> {
    const ref = this.reference('authDelete', transactionReference);
    await this.delete('authDelete', `/api/netverify/v2/authentications/${ref}`);
  }

  // ------------------------------------------------------------ plumbing

  private reference(operation: Operation, value: string): string {
    if (typeof value !== 'string' || !REFERENCE_RE.test(value)) {
      throw new JumioInvalidRequestError(operation, ['reference: not a valid Jumio reference']);
    }
    return value;
  }

  private getJson<S extends z.ZodType>(operation: Operation, path: string, schema: S) {
    return this.execute(
      {
        operation,
        method: 'GET',
        path: this.basePath + path,
        admin: true,
        accept: 'application/json',
      },
      (res) => this.readJson(operation, res, schema),
    );
  }

  private delete(operation: Operation, path: string): Promise<void> {
    return this.execute(
      {
        operation,
        method: 'DELETE',
        path: this.basePath + path,
        admin: true,
        accept: 'application/json',
      },
      async (res) => {
        // 404: already gone, which is what a delete wants (a retried delete is idempotent).
        if ((res.statusCode >= 200 && res.statusCode < 300) || res.statusCode === 404) {
          await drain(res.body);
          return;
        }
        throw await this.statusError(operation, res);
      },
    );
  }

  /**
   * Invariant 7 for callback-supplied URLs: same origin as the configured Jumio base URL,
   * https (http only when that base is loopback http), no userinfo. Returns the path to
   * request on the configured origin, so the URL's own host is never dialled.
   */
  private facemapPath(raw: string, scanReference: string): string {
    let url: URL;
    try {
      url = new URL(raw);
    } catch {
      throw new UnsafeFacemapUrlError('not an absolute URL');
    }
    if (url.username || url.password) throw new UnsafeFacemapUrlError('URL carries credentials');
    const schemeAllowed =
      url.protocol === 'https:' || (url.protocol === 'http:' && this.loopbackHttp);
    if (!schemeAllowed) {
      throw new UnsafeFacemapUrlError(
        `scheme ${url.protocol.replace(/:$/, '')} refused (https required)`,
      );
    }
    if (url.origin !== this.origin) {
      throw new UnsafeFacemapUrlError(`origin ${url.origin} is not the configured Jumio origin`);
    }
    if (!isFacemapUrlOf(raw, scanReference)) {
      throw new UnsafeFacemapUrlError('not the facemap path of this scan');
    }
    return url.pathname;
  }

  /** Builds the request URL on the configured origin and refuses anything else. */
  private target(path: string): { origin: string; path: string } {
    if (!path.startsWith('/')) throw new UnsafeFacemapUrlError('request path must be absolute');
    const url = new URL(this.origin);
    const [pathname = '/', ...rest] = path.split('?');
    url.pathname = pathname;
    url.search = rest.length ? `?${rest.join('?')}` : '';
    if (url.origin !== this.origin) {
      throw new UnsafeFacemapUrlError('request would leave the configured Jumio origin');
    }
    return { origin: this.origin, path: url.pathname + url.search };
  }

  private async execute<T>(
    call: Call,
    read: (res: Dispatcher.ResponseData) => Promise<T>,
  ): Promise<T> {
    // The initiate POST is never repeated: a second initiate EXPIREs the first.
    const attempts = call.method === 'POST' ? 1 : this.retry.maxAttempts;
    for (let attempt = 1; ; attempt++) {
      // Another answer may move the gate while this call waits: wait again if it did.
      for (let until = 0; this.notBefore > until;) {
        until = this.notBefore;
        const wait = until - Date.now();
        if (wait <= 0) break;
        // Longer than we wait in-process: fail without calling, the caller reschedules.
        if (wait > this.retry.maxDelayMs) throw new JumioRateLimitedError(call.operation, wait);
        await this.sleep(wait);
      }
      try {
        return await this.once(call, read);
      } catch (err) {
        if (attempt >= attempts || !isRetriable(err)) throw err;
        const retryAfter = retryAfterOf(err);
        // Longer than we wait in-process: surface it so the caller reschedules durably.
        if (retryAfter !== null && retryAfter > this.retry.maxDelayMs) throw err;
        // A Retry-After is waited out by the client-wide gate above.
        if (retryAfter === null) await this.sleep(backoffDelay(attempt, this.retry, this.random));
      }
    }
  }

  private async once<T>(
    call: Call,
    read: (res: Dispatcher.ResponseData) => Promise<T>,
  ): Promise<T> {
    const { origin, path } = this.target(call.path);
    // One deadline over the whole attempt: connect, headers and every chunk of the body.
    const deadline = AbortSignal.timeout(this.timeouts.totalMs);
    const failure = (err: unknown) =>
      deadline.aborted
        ? new JumioTimeoutError(call.operation, 'total', { cause: err })
        : transportError(call.operation, err);
    let res: Dispatcher.ResponseData;
    try {
      res = await this.dispatcher.request({
        signal: deadline,
        origin,
        path,
        method: call.method,
        headers: {
          authorization: call.admin ? this.adminAuth : this.mainAuth,
          accept: call.accept,
          'user-agent': this.userAgent,
          ...(call.body ? { 'content-type': call.body.contentType } : {}),
        },
        body: call.body?.bytes ?? null,
        headersTimeout: this.timeouts.headersMs,
        bodyTimeout: this.timeouts.bodyMs,
      });
    } catch (err) {
      throw failure(err);
    }
    try {
      return await read(res);
    } catch (err) {
      discard(res.body);
      if (err instanceof JumioError) throw err;
      throw failure(err);
    }
  }

  private async readJson<S extends z.ZodType>(
    operation: Operation,
    res: Dispatcher.ResponseData,
    schema: S,
  ): Promise<z.output<S>> {
    if (res.statusCode < 200 || res.statusCode >= 300) {
      throw await this.statusError(operation, res);
    }
    const bytes = await readCapped(
      res.body,
      MAX_JSON_BYTES,
      () => new JumioInvalidResponseError(operation, `body over ${MAX_JSON_BYTES} bytes`),
    );
    let json: unknown;
    try {
      json = JSON.parse(Buffer.from(bytes).toString('utf8'));
    } catch {
      throw new JumioInvalidResponseError(operation, 'body is not JSON');
    }
    const parsed = schema.safeParse(json);
    if (!parsed.success) {
      throw new JumioInvalidResponseError(operation, describeIssues(parsed.error).join('; '));
    }
    return parsed.data;
  }

  /** The typed error for a non-2xx answer; of a 4xx refusal only Jumio's code is read out. */
  private async statusError(
    operation: Operation,
    res: Dispatcher.ResponseData,
  ): Promise<JumioError> {
    const status = res.statusCode;
    const rejected = status >= 400 && status < 500 && ![401, 403, 404, 429].includes(status);
    let jumioCode: string | null = null;
    if (rejected) jumioCode = await errorCodeOf(res.body);
    else await drain(res.body);
    const retryAfter = parseRetryAfter(res.headers['retry-after']);
    if (retryAfter !== null && (status === 429 || status >= 500)) {
      this.notBefore = Math.max(this.notBefore, Date.now() + retryAfter);
    }
    if (status === 404) return new JumioNotFoundError(operation);
    if (status === 401 || status === 403) return new JumioUnauthorizedError(operation, status);
    if (status === 429) return new JumioRateLimitedError(operation, retryAfter);
    if (status >= 500) return new JumioUpstreamError(operation, status, retryAfter);
    if (status >= 400) return new JumioRequestRejectedError(operation, status, jumioCode);
    // Redirects are not followed: credentials would go wherever Location points.
    return new JumioInvalidResponseError(operation, `unexpected HTTP ${status}`);
  }
}

/** Jumio's `code` from an error body, when it looks like one (never free text, never values). */
async function errorCodeOf(body: Dispatcher.ResponseData['body']): Promise<string | null> {
  try {
    const bytes = await readCapped(
      body,
      MAX_DRAIN_BYTES,
      () => new JumioInvalidResponseError('error', 'error body too large'),
    );
    const code = (JSON.parse(Buffer.from(bytes).toString('utf8')) as { code?: unknown }).code;
    return typeof code === 'string' && /^[A-Z][A-Z0-9_]{0,63}$/.test(code) ? code : null;
  } catch {
    discard(body);
    return null;
  }
}

interface Part {
  name: string;
  filename: string;
  type: string;
  bytes: Uint8Array;
}

/**
 * A multipart/form-data body (RFC 7578) in one buffer. Built here rather than with FormData,
 * whose Blob parts keep copies of the facemap that nobody can zero.
 */
function multipart(parts: Part[]): { bytes: Buffer; contentType: string } {
  const boundary = `vault-${randomBytes(16).toString('hex')}`;
  const chunks: Uint8Array[] = [];
  for (const part of parts) {
    chunks.push(
      Buffer.from(
        `--${boundary}\r\nContent-Disposition: form-data; name="${part.name}"; ` +
          `filename="${part.filename}"\r\nContent-Type: ${part.type}\r\n\r\n`,
      ),
      part.bytes,
      Buffer.from('\r\n'),
    );
  }
  chunks.push(Buffer.from(`--${boundary}--\r\n`));
  return { bytes: Buffer.concat(chunks), contentType: `multipart/form-data; boundary=${boundary}` };
}

function isRetriable(err: unknown): boolean {
  return (
    err instanceof JumioRateLimitedError ||
    err instanceof JumioUpstreamError ||
    err instanceof JumioTimeoutError ||
    err instanceof JumioNetworkError
  );
}

function retryAfterOf(err: unknown): number | null {
  if (err instanceof JumioRateLimitedError || err instanceof JumioUpstreamError) {
    return err.retryAfterMs;
  }
  return null;
}
