import type { ErrorRequestHandler, RequestHandler, Response } from 'express';
import { VaultError } from '../core/errors';
import type { Logger } from '../core/ports';
import { requestPathOf } from './middleware';

/** Domain error codes -> HTTP status. Codes not listed are server faults. */
const STATUS_BY_CODE: Record<string, number> = {
  invalid_request: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  conflict: 409,
  payload_too_large: 413,
  unsupported_media_type: 415,
  plaintext_too_large: 413,
  dependency_failed: 503,
};

/** Codes and messages for the client errors Express, the router and body-parser raise. */
const CLIENT_ERROR_BY_STATUS: Record<number, [code: string, message: string]> = {
  400: ['invalid_request', 'the request could not be read'],
  404: ['not_found', 'not found'],
  408: ['request_timeout', 'the request took too long to arrive'],
  413: ['payload_too_large', 'request body too large'],
  415: ['unsupported_media_type', 'unsupported content type, charset or encoding'],
};

/** body-parser's `type` values with a clearer message than their status alone gives. */
const MESSAGE_BY_PARSER_TYPE: Record<string, string> = {
  'entity.parse.failed': 'request body could not be parsed',
  'entity.verify.failed': 'request body could not be parsed',
  'parameters.too.many': 'request body has too many fields',
  'charset.unsupported': 'unsupported charset',
  'encoding.unsupported': 'unsupported content encoding',
  'request.aborted': 'request aborted by the client',
  'request.size.invalid': 'request body size does not match Content-Length',
};

export class HttpError extends VaultError {
  constructor(
    readonly status: number,
    code: string,
    message: string,
    /** Headers the answer must carry (e.g. `Allow` on a 405). */
    readonly headers: Record<string, string> = {},
  ) {
    super(code, message);
  }
}

/**
 * The one error body: `{"error": {"code", "message", "requestId"}}`. The request id lets
 * a caller's report be matched with the vault's log lines.
 */
export function errorBody(
  res: Response,
  code: string,
  message: string,
): { error: { code: string; message: string; requestId?: string } } {
  const requestId = res.locals.requestId as string | undefined;
  return { error: { code, message, ...(requestId === undefined ? {} : { requestId }) } };
}

export const notFound: RequestHandler = (req, _res, next) => {
  next(new HttpError(404, 'not_found', `no route for ${req.method} ${requestPathOf(req)}`));
};

/**
 * For `router.route(path).get(...).all(methodNotAllowed('GET'))`: a known path with
 * another method answers 405 with `Allow` (OPTIONS gets the list with 204).
 */
export function methodNotAllowed(...methods: string[]): RequestHandler {
  const allowed = methods.includes('GET') ? [...methods, 'HEAD'] : methods;
  const allow = [...new Set([...allowed, 'OPTIONS'])].join(', ');
  return (req, res, next) => {
    if (req.method === 'OPTIONS') {
      res.set('Allow', allow).status(204).end();
      return;
    }
    next(
      new HttpError(405, 'method_not_allowed', `${req.method} is not allowed here; use ${allow}`, {
        Allow: allow,
      }),
    );
  };
}

interface FrameworkError {
  type?: unknown;
  status?: unknown;
  statusCode?: unknown;
}

/**
 * A client error raised by Express, the router (malformed percent-encoding: a URIError
 * with status 400) or body-parser (too large, bad JSON, wrong charset...): its status,
 * when it is a 4xx, and a fixed message (theirs may quote the input).
 */
function clientErrorOf(err: unknown): { status: number; code: string; message: string } | null {
  if (typeof err !== 'object' || err === null || err instanceof VaultError) return null;
  const { type, status: s, statusCode } = err as FrameworkError;
  const status = typeof s === 'number' ? s : typeof statusCode === 'number' ? statusCode : NaN;
  if (!Number.isInteger(status) || status < 400 || status > 499) return null;
  const [code, fallback] = CLIENT_ERROR_BY_STATUS[status] ?? ['invalid_request', 'bad request'];
  const byType = typeof type === 'string' ? MESSAGE_BY_PARSER_TYPE[type] : undefined;
  const message = err instanceof URIError ? 'malformed percent-encoding in the path' : byType;
  return { status, code, message: message ?? fallback };
}

/**
 * Every error leaves as `{"error": {"code", "message", "requestId"}}`. A stack trace never
 * does, and the message of an unexpected error is replaced: it might quote input. 5xx is
 * kept for the vault's own failures; client errors keep their 4xx.
 */
export function errorHandler(logger: Logger): ErrorRequestHandler {
  return (err: unknown, req, res, _next) => {
    let status = 500;
    let code = 'internal_error';
    let message = 'internal error';
    let headers: Record<string, string> = {};
    let fields: unknown;
    const client = clientErrorOf(err);
    if (err instanceof HttpError) {
      ({ status, code, message, headers } = err);
      fields = (err as { fields?: unknown }).fields;
    } else if (err instanceof VaultError) {
      status = STATUS_BY_CODE[err.code] ?? 500;
      code = err.code;
      message = status < 500 ? err.message : code === 'dependency_failed' ? err.message : message;
    } else if (client !== null) {
      ({ status, code, message } = client);
    }
    if (status >= 500) {
      // The error object is logged for operators; its message never goes to the client.
      logger.error(
        { err, requestId: res.locals.requestId, method: req.method, path: requestPathOf(req) },
        'request failed',
      );
    }
    if (res.headersSent) return;
    const body = errorBody(res, code, message);
    res
      .status(status)
      .set(headers)
      .json(fields ? { error: { ...body.error, fields } } : body);
  };
}
