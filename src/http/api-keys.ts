/**
 * Internal API authentication (invariant 11): bearer tokens checked against SHA-256
 * hashes from VAULT_API_KEYS, and a role check per route. Denials are reported through
 * `onDenied` so the composition root can audit them (invariant 9).
 *
 * Only hashes are configured: a leaked environment, config map or process listing does
 * not hand out working tokens. Tokens are random (32 bytes), so a plain SHA-256 suffices;
 * a slow password hash would only add latency to every internal call.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import path from 'node:path';
import type { Request, RequestHandler, Response } from 'express';
import { createSecretFile, readSecretFile, SecretFileError } from '../adapters/secret-file';
import { VaultError } from '../core/errors';
import type { Logger } from '../core/ports';
import { sourceAddressOf } from './callback-origin';
import { errorBody } from './errors';
import { requestPathOf } from './middleware';

export const ROLES = ['admin', 'authenticator', 'auditor', 'onboarding'] as const;
export type Role = (typeof ROLES)[number];

export interface ApiKey {
  name: string;
  role: Role;
  /** SHA-256 of the token, 32 bytes. */
  sha256: Buffer;
}

/** What authenticate() leaves in `res.locals.caller` for handlers and requireRole(). */
export interface Caller {
  name: string;
  role: Role;
}

export interface DeniedRequest {
  status: 401 | 403;
  /** Machine-readable: `missing_token`, `malformed_authorization`, `unknown_token`, ... */
  reason: string;
  /** The API key name, when the caller was identified (403). */
  caller?: string;
  method: string;
  path: string;
  /** req.ip (derived under the trust proxy setting), canonical or sanitized. */
  sourceAddress: string | undefined;
  /** The TCP peer (the load balancer when behind one). */
  socketAddress: string | undefined;
  requestId?: string;
}

export interface DenialOptions {
  /** Audits and logs a denial. Awaited before answering; a failure never un-denies. */
  onDenied: (event: DeniedRequest) => void | Promise<void>;
  /** Only used when onDenied itself fails. */
  logger: Logger;
}

export const API_KEY_NAME = /^[A-Za-z0-9._-]{1,64}$/;
const SHA256_HEX = /^[0-9a-fA-F]{64}$/;
const LOOKS_LIKE_HASH = /^[0-9a-fA-F]{32,}$/;
/** RFC 6750 b64token: the characters a bearer token may hold. */
const TOKEN = /^[A-Za-z0-9\-._~+/]+=*$/;
export const MAX_TOKEN_LENGTH = 512;
const BEARER = /^bearer +(\S+) *$/i;
const EMPTY_SHA256 = createHash('sha256').update('').digest('hex');
const REALM = 'Bearer realm="facemap-vault"';

/** Raised for an unusable VAULT_API_KEYS; the message never contains a hash or token. */
export class ApiKeySpecError extends VaultError {
  constructor(message: string) {
    super('invalid_api_keys', `VAULT_API_KEYS: ${message}`);
  }
}

/** SHA-256 of a token as lowercase hex: what goes into VAULT_API_KEYS. */
export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

/** True when `token` could be sent as a bearer token and accepted by authenticate(). */
export function isWellFormedToken(token: string): boolean {
  return token.length > 0 && token.length <= MAX_TOKEN_LENGTH && TOKEN.test(token);
}

/**
 * Parses `name:role:sha256hex[, ...]`. Errors name the entry by position (and by name
 * when the name itself is valid) and never quote the hash field: an operator who pasted
 * the token there by mistake must not find it in a crash log.
 */
export function parseApiKeys(spec: string): ApiKey[] {
  if (spec.trim() === '') return [];
  const keys: ApiKey[] = [];
  const byName = new Map<string, number>();
  const byHash = new Map<string, { position: number; name: string }>();

  spec.split(',').forEach((raw, index) => {
    const position = index + 1;
    const entry = raw.trim();
    if (entry === '') {
      throw new ApiKeySpecError(`entry ${position} is empty (stray comma?)`);
    }
    const fields = entry.split(':');
    const [name, role, hash] = fields;
    const nameOk = name !== undefined && API_KEY_NAME.test(name);
    // Quote the name only when it surely is one: a lone field or a hex-looking "name" may
    // be a token or a hash put in the wrong place.
    const quotable = nameOk && fields.length === 3 && !LOOKS_LIKE_HASH.test(name);
    const where = quotable ? `entry ${position} ("${name}")` : `entry ${position}`;
    if (fields.length !== 3 || name === undefined || role === undefined || hash === undefined) {
      throw new ApiKeySpecError(
        `${where} must have the form name:role:sha256hex (3 fields separated by ':'), ` +
          `found ${fields.length}`,
      );
    }
    if (!nameOk) {
      throw new ApiKeySpecError(`${where}: the name must be 1 to 64 of A-Z a-z 0-9 . _ -`);
    }
    if (!(ROLES as readonly string[]).includes(role)) {
      throw new ApiKeySpecError(`${where}: the role must be one of ${ROLES.join(', ')}`);
    }
    if (!SHA256_HEX.test(hash)) {
      throw new ApiKeySpecError(
        `${where}: the third field must be the SHA-256 of the token as 64 hex characters ` +
          '(the hash, never the token itself: npm run hash-token)',
      );
    }
    const hex = hash.toLowerCase();
    if (hex === EMPTY_SHA256) {
      throw new ApiKeySpecError(`${where}: the hash is that of an empty token`);
    }
    const sameName = byName.get(name);
    if (sameName !== undefined) {
      throw new ApiKeySpecError(`${where}: the name is already used by entry ${sameName}`);
    }
    const sameHash = byHash.get(hex);
    if (sameHash !== undefined) {
      throw new ApiKeySpecError(
        `${where}: has the same token hash as entry ${sameHash.position} ("${sameHash.name}"); ` +
          'every key needs its own token',
      );
    }
    byName.set(name, position);
    byHash.set(hex, { position, name });
    keys.push({ name, role: role as Role, sha256: Buffer.from(hex, 'hex') });
  });
  return keys;
}

/**
 * Reads `Authorization: Bearer <token>` and sets `res.locals.caller`. The token's hash is
 * compared with every configured hash in constant time, without stopping at a match, so
 * response timing reveals neither which key matched nor how much of a hash did.
 */
export function authenticate(keys: readonly ApiKey[], options: DenialOptions): RequestHandler {
  for (const key of keys) {
    if (key.sha256.length !== 32) {
      throw new TypeError(`API key "${key.name}": sha256 must be 32 bytes`);
    }
  }
  // A private copy: later changes to the caller's array do not change who may enter.
  const table = keys.map((k) => ({ ...k, sha256: Buffer.from(k.sha256) }));

  return async (req, res, next) => {
    const header = req.get('authorization');
    let reason: string | undefined;
    let found: ApiKey | undefined;
    if (header === undefined || header.trim() === '') {
      reason = 'missing_token';
    } else {
      // Length first: the regexes below never see an unbounded header.
      const token = header.length <= MAX_TOKEN_LENGTH + 16 ? BEARER.exec(header)?.[1] : undefined;
      if (token === undefined || !isWellFormedToken(token)) {
        reason = 'malformed_authorization';
      } else {
        const digest = createHash('sha256').update(token, 'utf8').digest();
        for (const key of table) {
          // Every key is compared; the branch only records the (unique) match.
          const equal = timingSafeEqual(digest, key.sha256);
          if (equal && found === undefined) found = key;
        }
        if (found === undefined) reason = 'unknown_token';
      }
    }
    if (found !== undefined) {
      res.locals.caller = { name: found.name, role: found.role } satisfies Caller;
      next();
      return;
    }
    const failure = reason ?? 'unknown_token';
    await report(options, req, res, { status: 401, reason: failure });
    res
      .status(401)
      .set(
        'WWW-Authenticate',
        failure === 'missing_token' ? REALM : `${REALM}, error="invalid_token"`,
      )
      .json(
        errorBody(
          res,
          'unauthorized',
          failure === 'missing_token'
            ? 'a bearer token is required'
            : 'the bearer token is malformed or not recognised',
        ),
      );
  };
}

/**
 * Lets the request through only when authenticate() identified a caller whose role is
 * listed. No role implies another: `admin` passes only where a route lists it.
 */
export function requireRole(roles: readonly Role[], options: DenialOptions): RequestHandler {
  if (roles.length === 0) throw new TypeError('requireRole needs at least one role');
  for (const role of roles) {
    if (!(ROLES as readonly string[]).includes(role)) {
      throw new TypeError(`unknown role "${String(role)}"`);
    }
  }
  const allowed = new Set<Role>(roles);

  return async (req, res, next) => {
    const caller = res.locals.caller as Caller | undefined;
    if (caller === undefined) {
      // Mounted without authenticate(): a wiring mistake, so fail closed.
      await report(options, req, res, { status: 401, reason: 'not_authenticated' });
      res
        .status(401)
        .set('WWW-Authenticate', REALM)
        .json(errorBody(res, 'unauthorized', 'a bearer token is required'));
      return;
    }
    if (allowed.has(caller.role)) {
      next();
      return;
    }
    await report(options, req, res, {
      status: 403,
      reason: 'role_not_allowed',
      caller: caller.name,
    });
    res.status(403).json(errorBody(res, 'forbidden', `role ${caller.role} may not use this route`));
  };
}

/** Both middlewares over one configuration, for the routes: `auth.requireRole('admin')`. */
export function apiKeyAuth(
  keys: readonly ApiKey[],
  options: DenialOptions,
): { authenticate: RequestHandler; requireRole(...roles: Role[]): RequestHandler } {
  return {
    authenticate: authenticate(keys, options),
    requireRole: (...roles: Role[]) => requireRole(roles, options),
  };
}

async function report(
  options: DenialOptions,
  req: Request,
  res: Response,
  fields: Pick<DeniedRequest, 'status' | 'reason' | 'caller'>,
): Promise<void> {
  const event: DeniedRequest = {
    ...fields,
    method: req.method,
    path: requestPathOf(req),
    sourceAddress: sourceAddressOf(req),
    socketAddress: req.socket.remoteAddress,
    requestId: res.locals.requestId as string | undefined,
  };
  if (event.caller === undefined) delete event.caller;
  if (event.requestId === undefined) delete event.requestId;
  try {
    await options.onDenied(event);
  } catch (err) {
    // The request stays denied. Log the failure's kind only: no header, no token.
    options.logger.error(
      {
        status: event.status,
        reason: event.reason,
        method: event.method,
        path: event.path,
        requestId: event.requestId,
        errorName: err instanceof Error ? err.name : typeof err,
        errorMessage: err instanceof Error ? err.message : undefined,
      },
      'recording a denied request failed',
    );
  }
}

// ---------------------------------------------------------------- embedded admin token

export const ADMIN_TOKEN_FILE = 'admin.token';
export const LOCAL_ADMIN_NAME = 'local-admin';
const TOKEN_BYTES = 32;
/** An operator may replace the generated token, but not with a short one. */
const MIN_FILE_TOKEN_LENGTH = 32;

export class AdminTokenError extends VaultError {
  constructor(file: string, reason: string, options?: { cause?: unknown }) {
    super('admin_token_invalid', `admin token file ${file}: ${reason}`, options);
  }
}

/**
 * Embedded defaults with no VAULT_API_KEYS: makes sure `<dataDir>/admin.token` exists
 * (created exclusively, mode 0600, 32 random bytes in base64url) and returns its key.
 * The log names the file, never the token.
 */
export async function ensureAdminToken(
  dataDir: string,
  logger: Logger,
): Promise<{ key: ApiKey; tokenFile: string; created: boolean }> {
  const tokenFile = path.join(dataDir, ADMIN_TOKEN_FILE);
  let token = await readTokenFile(tokenFile);
  let created = false;
  if (token === undefined) {
    const fresh = randomBytes(TOKEN_BYTES).toString('base64url');
    created = await createTokenFile(tokenFile, fresh);
    // Lost the race to another process on the same volume: use the token it wrote.
    token = created ? fresh : await readTokenFile(tokenFile);
    if (token === undefined) {
      throw new AdminTokenError(tokenFile, 'vanished right after it was created');
    }
  }
  const key: ApiKey = {
    name: LOCAL_ADMIN_NAME,
    role: 'admin',
    sha256: createHash('sha256').update(token, 'utf8').digest(),
  };
  const hint = `send it as: Authorization: Bearer $(cat ${tokenFile})`;
  if (created) {
    logger.warn(
      { tokenFile, apiKey: LOCAL_ADMIN_NAME },
      `no VAULT_API_KEYS configured: generated an admin API token into ${tokenFile}; ${hint}`,
    );
  } else {
    logger.info(
      { tokenFile, apiKey: LOCAL_ADMIN_NAME },
      `no VAULT_API_KEYS configured: using the admin API token in ${tokenFile}; ${hint}`,
    );
  }
  return { key, tokenFile, created };
}

/** The token, or undefined when the file does not exist. */
async function readTokenFile(file: string): Promise<string | undefined> {
  // A token and its newline: never read more.
  const content = await readSecretFile(file, MAX_TOKEN_LENGTH + 2).catch((err: unknown) => {
    throw asAdminTokenError(file, err);
  });
  if (content === undefined) return undefined;
  const { text } = content;
  if (!isWellFormedToken(text) || text.length < MIN_FILE_TOKEN_LENGTH) {
    // Never echo the content.
    throw new AdminTokenError(
      file,
      `must hold one bearer token of ${MIN_FILE_TOKEN_LENGTH} to ${MAX_TOKEN_LENGTH} ` +
        'characters (A-Z a-z 0-9 - . _ ~ + / =); delete it to have a new one generated',
    );
  }
  return text;
}

/** Creates the token file exclusively (see createSecretFile); false when it already existed. */
async function createTokenFile(file: string, token: string): Promise<boolean> {
  return createSecretFile(file, token).catch((err: unknown) => {
    throw asAdminTokenError(file, err);
  });
}

/** The shared file checks' reason, under this file's own error class and message prefix. */
function asAdminTokenError(file: string, err: unknown): unknown {
  if (!(err instanceof SecretFileError)) return err;
  return new AdminTokenError(file, err.reason, 'cause' in err ? { cause: err.cause } : undefined);
}
