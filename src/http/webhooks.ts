import express, {
  Router,
  type ErrorRequestHandler,
  type NextFunction,
  type Request,
  type Response,
} from 'express';
import { z } from 'zod';
import {
  receiveAuthenticationCallback,
  recordIgnoredCallback,
} from '../core/authentication/callback';
import type { DenialAggregator } from '../core/denials';
import { CallbackFormatError, type FormFields, single } from '../core/enrollment/callback';
import { IntakeBatcher, type IntakeOptions } from '../core/enrollment/intake';
import type { GroupCommitOptions } from '../core/group-commit';
import type { FinalizePolicy } from '../core/authentication/record';
import type { Clock, Ledger, Logger } from '../core/ports';
import { callbackOrigin, type CidrAllowlist, sourceAddressOf } from './callback-origin';
import { HttpError, methodNotAllowed } from './errors';
import { requestPathOf } from './middleware';

export interface WebhookDeps {
  ledger: Ledger;
  clock: Clock;
  logger: Logger;
  intake: IntakeOptions;
  callbackAllowlist: CidrAllowlist;
  denials: DenialAggregator;
  /** How a final authentication state is recorded (deletion at Jumio, notifications). */
  authentications: { settings: FinalizePolicy };
  /** Group commit of ID verification callbacks (CALLBACK_BATCH_MAX, CALLBACK_QUEUE_MAX). */
  callbackBatch?: GroupCommitOptions;
  /** The intake itself (the container's, so tests can see what waits); else built here. */
  callbackIntake?: IntakeBatcher;
}

export const DEFAULT_CALLBACK_BATCH: GroupCommitOptions = { maxBatch: 200, maxQueued: 2000 };

/**
 * The callback fields the vault reads (for the API description). Every other field Jumio
 * sends is PII and is dropped unread.
 */
export const callbackFormSchema = z
  .object({
    callBackType: z.enum(['NETVERIFYID', 'NETVERIFY_AUTHENTICATION']),
    jumioIdScanReference: z.string().max(36).optional(),
    verificationStatus: z.string().optional(),
    idScanStatus: z.string().optional(),
    idScanSource: z.string().optional(),
    identityVerification: z.string().optional().describe('a JSON document as a string'),
    facemap: z.string().max(2048).optional(),
    customerId: z.string().max(100).optional(),
    merchantIdScanReference: z.string().max(100).optional(),
    transactionDate: z.string().optional(),
    callbackDate: z.string().optional(),
    transactionReference: z.string().max(36).optional(),
    enrollmentTransactionReference: z.string().max(36).optional(),
    transactionResult: z.enum(['PASSED', 'FAILED', 'INVALID', 'EXPIRED']).optional(),
    scanSource: z.string().optional(),
  })
  .catchall(z.string())
  .meta({ id: 'JumioCallback' });

/** Real Jumio callbacks run to a few tens of kilobytes; this leaves ample room. */
export const CALLBACK_BODY_LIMIT = '1mb';

/** A callback answered 4xx because it cannot be read; `reason` is what the record keeps. */
class UnreadableCallbackError extends HttpError {
  constructor(
    status: number,
    code: string,
    message: string,
    readonly reason: string,
  ) {
    super(status, code, message);
  }
}

/** body-parser's error types -> the reason recorded for an unreadable callback. */
const REASON_BY_PARSER_TYPE: Record<string, string> = {
  'entity.too.large': 'body_too_large',
  'parameters.too.many': 'too_many_fields',
  'entity.parse.failed': 'unparsable_body',
  'charset.unsupported': 'unsupported_charset',
  'encoding.unsupported': 'unsupported_encoding',
  'request.aborted': 'aborted',
  'request.size.invalid': 'size_mismatch',
};

/** The media type alone (no parameters), printable ASCII, bounded: a key, not a payload. */
function mediaTypeOf(req: Request): string {
  const header = req.get('content-type');
  if (header === undefined || header.trim() === '') return 'none';
  const type = header.split(';')[0]!.trim().toLowerCase().slice(0, 100);
  return type.replace(/[^\x21-\x7e]/g, '?') || 'none';
}

/** The size the client announced, else what body-parser counted, when known. */
function sizeOf(req: Request, err: unknown): number | undefined {
  const announced = req.get('content-length');
  if (announced !== undefined && /^\d{1,15}$/.test(announced)) return Number(announced);
  const { received, length } = (err ?? {}) as { received?: unknown; length?: unknown };
  if (typeof received === 'number' && received > 0) return received;
  return typeof length === 'number' ? length : undefined;
}

/**
 * `POST /webhooks/jumio`: the portal's one callback URL, for both callback types.
 * Jumio retries until it gets a 200, so a 200 is sent only once the callback is
 * committed (invariant 1); any failure to commit is a 5xx.
 */
export function webhookRoutes(deps: WebhookDeps): Router {
  const router = Router();
  // The container's intake, unless this app was given another ledger, clock or options.
  const intake = deps.callbackIntake?.serves(deps, deps.intake)
    ? deps.callbackIntake
    : new IntakeBatcher(deps, deps.intake, deps.callbackBatch ?? DEFAULT_CALLBACK_BATCH);
  const form = express.urlencoded({
    extended: false,
    limit: CALLBACK_BODY_LIMIT,
    parameterLimit: 5000,
    type: () => true,
  });

  /**
   * A callback refused as unreadable is kept as a bounded, PII-free record (invariant 9's
   * aggregation: counts per source, reason and content type, the largest size seen) and a
   * warning without the body, so that a callback Jumio keeps retrying is seen.
   */
  const recordUnreadable: ErrorRequestHandler = (err: unknown, req, res, next) => {
    const status =
      err instanceof HttpError ? err.status : Number((err as { status?: unknown }).status);
    if (!(status >= 400 && status < 500)) {
      next(err);
      return;
    }
    const type = (err as { type?: unknown }).type;
    const reason =
      err instanceof UnreadableCallbackError
        ? err.reason
        : ((typeof type === 'string' ? REASON_BY_PARSER_TYPE[type] : undefined) ??
          'unreadable_body');
    const record = {
      sourceAddress: sourceAddressOf(req),
      reason,
      status,
      contentType: mediaTypeOf(req),
      bytes: sizeOf(req, err),
    };
    deps.logger.warn(record, 'callback unreadable: answered 4xx, body not kept');
    deps.denials.record({
      type: 'callback.unreadable',
      ...record,
      path: requestPathOf(req),
      ...(typeof res.locals.requestId === 'string' ? { requestId: res.locals.requestId } : {}),
    });
    next(err);
  };

  router
    .route('/webhooks/jumio')
    .post(
      callbackOrigin({
        allowlist: deps.callbackAllowlist,
        logger: deps.logger,
        onRefused: (event) => {
          deps.logger.warn(
            { sourceAddress: event.sourceAddress, socketAddress: event.socketAddress },
            'callback refused: source address not allowed',
          );
          // Counted, not written: one summary per source per interval.
          deps.denials.record({
            type: 'callback.refused',
            sourceAddress: event.sourceAddress,
            reason: 'source_not_allowed',
            status: 403,
            path: event.path,
            ...(event.requestId === undefined ? {} : { requestId: event.requestId }),
          });
        },
      }),
      (req: Request, _res: Response, next: NextFunction) => {
        if (!req.is('application/x-www-form-urlencoded')) {
          next(
            new UnreadableCallbackError(
              415,
              'unsupported_media_type',
              'callbacks must be application/x-www-form-urlencoded',
              'unsupported_media_type',
            ),
          );
          return;
        }
        next();
      },
      form,
      async (req: Request, res: Response) => {
        const fields = (req.body ?? {}) as FormFields;
        if (Object.keys(fields).length === 0) {
          throw new UnreadableCallbackError(
            400,
            'invalid_request',
            'empty callback body',
            'empty_body',
          );
        }
        const type = single(fields, 'callBackType');
        const sourceAddress = sourceAddressOf(req);
        try {
          if (type === 'NETVERIFYID') {
            // Committed with the callbacks that arrive meanwhile; settles after the commit.
            const result = await intake.receive(fields, sourceAddress);
            deps.logger.info(
              {
                enrollmentReference: result.enrollmentReference,
                created: result.created,
                state: result.state,
                reason: result.reason,
              },
              'ID verification callback committed',
            );
          } else if (type === 'NETVERIFY_AUTHENTICATION') {
            const result = await receiveAuthenticationCallback(
              { ...deps, policy: deps.authentications.settings },
              fields,
              sourceAddress,
            );
            deps.logger.info(
              {
                authenticationReference: single(fields, 'transactionReference'),
                created: result.created,
                outcome: result.outcome,
              },
              'authentication callback committed',
            );
          } else if (type === undefined) {
            throw new CallbackFormatError('callBackType is missing', 'missing_callback_type');
          } else {
            await recordIgnoredCallback(deps, type, sourceAddress);
            deps.logger.warn({ sourceAddress }, 'callback of an unknown type ignored');
          }
        } catch (error) {
          if (error instanceof CallbackFormatError) {
            throw new UnreadableCallbackError(400, 'invalid_request', error.message, error.reason);
          }
          throw error;
        }
        res.status(200).json({ status: 'received' });
      },
      recordUnreadable,
    )
    .all(methodNotAllowed('POST'));
  return router;
}
