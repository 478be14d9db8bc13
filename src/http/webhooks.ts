import express, { Router } from 'express';
import { z } from 'zod';
import {
  receiveAuthenticationCallback,
  recordIgnoredCallback,
} from '../core/authentication/callback';
import { CallbackFormatError, type FormFields, single } from '../core/enrollment/callback';
import { receiveIdVerificationCallback, type IntakeOptions } from '../core/enrollment/intake';
import type { FinalizePolicy } from '../core/authentication/record';
import type { Clock, Ledger, Logger } from '../core/ports';
import { callbackOrigin, type CidrAllowlist, sourceAddressOf } from './callback-origin';
import { HttpError } from './errors';

export interface WebhookDeps {
  ledger: Ledger;
  clock: Clock;
  logger: Logger;
  intake: IntakeOptions;
  callbackAllowlist: CidrAllowlist;
  /** How a final authentication state is recorded (deletion at Jumio, notifications). */
  authentications: { settings: FinalizePolicy };
}

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

/**
 * `POST /webhooks/jumio`: the portal's one callback URL, for both callback types.
 * Jumio retries until it gets a 200, so a 200 is sent only once the callback is
 * committed (invariant 1); any failure to commit is a 5xx.
 */
export function webhookRoutes(deps: WebhookDeps): Router {
  const router = Router();
  const form = express.urlencoded({
    extended: false,
    limit: CALLBACK_BODY_LIMIT,
    parameterLimit: 5000,
    type: () => true,
  });

  router.post(
    '/webhooks/jumio',
    callbackOrigin({
      allowlist: deps.callbackAllowlist,
      logger: deps.logger,
      onRefused: async (event) => {
        deps.logger.warn(
          {
            sourceAddress: event.sourceAddress,
            socketAddress: event.socketAddress,
            requestId: event.requestId,
          },
          'callback refused: source address not allowed',
        );
        await deps.ledger.transaction((tx) =>
          tx.audit.append({
            type: 'callback.refused',
            actor: 'unknown',
            details: {
              sourceAddress: event.sourceAddress ?? null,
              socketAddress: event.socketAddress ?? null,
              path: event.path,
              requestId: event.requestId ?? null,
            },
          }),
        );
      },
    }),
    (req, _res, next) => {
      if (!req.is('application/x-www-form-urlencoded')) {
        next(
          new HttpError(
            415,
            'unsupported_media_type',
            'callbacks must be application/x-www-form-urlencoded',
          ),
        );
        return;
      }
      next();
    },
    form,
    async (req, res) => {
      const fields = (req.body ?? {}) as FormFields;
      if (Object.keys(fields).length === 0) {
        throw new HttpError(400, 'invalid_request', 'empty callback body');
      }
      const type = single(fields, 'callBackType');
      const sourceAddress = sourceAddressOf(req);
      try {
        if (type === 'NETVERIFYID') {
          const result = await receiveIdVerificationCallback(
            deps,
            deps.intake,
            fields,
            sourceAddress,
          );
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
          throw new CallbackFormatError('callBackType is missing');
        } else {
          await recordIgnoredCallback(deps, type, sourceAddress);
          deps.logger.warn({ sourceAddress }, 'callback of an unknown type ignored');
        }
      } catch (error) {
        if (error instanceof CallbackFormatError) {
          throw new HttpError(400, 'invalid_request', error.message);
        }
        throw error;
      }
      res.status(200).json({ status: 'received' });
    },
  );
  return router;
}
