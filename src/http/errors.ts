import type { ErrorRequestHandler, RequestHandler } from 'express';
import { VaultError } from '../core/errors';
import type { Logger } from '../core/ports';

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

export class HttpError extends VaultError {
  constructor(
    readonly status: number,
    code: string,
    message: string,
  ) {
    super(code, message);
  }
}

export const notFound: RequestHandler = (req, _res, next) => {
  next(new HttpError(404, 'not_found', `no route for ${req.method} ${req.path}`));
};

interface BodyParserError {
  type?: string;
  status?: number;
}

/**
 * Every error leaves as `{"error": {"code", "message"}}`. A stack trace never does, and
 * the message of an unexpected error is replaced: it might quote input.
 */
export function errorHandler(logger: Logger): ErrorRequestHandler {
  return (err: unknown, req, res, _next) => {
    let status = 500;
    let code = 'internal_error';
    let message = 'internal error';
    let fields: unknown;
    const parserType = (err as BodyParserError | null)?.type;
    if (err instanceof HttpError) {
      ({ status, code, message } = err);
      fields = (err as { fields?: unknown }).fields;
    } else if (err instanceof VaultError) {
      status = STATUS_BY_CODE[err.code] ?? 500;
      code = err.code;
      message = status < 500 ? err.message : code === 'dependency_failed' ? err.message : message;
    } else if (parserType === 'entity.too.large') {
      [status, code, message] = [413, 'payload_too_large', 'request body too large'];
    } else if (parserType === 'entity.parse.failed') {
      [status, code, message] = [400, 'invalid_request', 'request body could not be parsed'];
    } else if (typeof parserType === 'string') {
      const s = (err as BodyParserError).status;
      status = s && s >= 400 && s < 500 ? s : 400;
      [code, message] = ['invalid_request', 'request body rejected'];
    }
    const requestId = res.locals.requestId as string | undefined;
    if (status >= 500) {
      // The error object is logged for operators; its message never goes to the client.
      logger.error({ err, requestId, method: req.method, path: req.path }, 'request failed');
    }
    if (res.headersSent) return;
    res.status(status).json({ error: { code, message, ...(fields ? { fields } : {}) } });
  };
}
