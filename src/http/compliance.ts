import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { type Response, Router } from 'express';
import { type ExportFormat, exportChunks } from '../core/compliance/export';
import { z } from 'zod';
import type { BlobStores } from '../core/blobs';
import { auditStatus, verifyAndRecord, writeDigest } from '../core/compliance/audit-trail';
import type { CursorCodec } from '../core/compliance/cursor';
import {
  type ErasureService,
  markPurposeSatisfied,
  placeLegalHold,
  releaseLegalHold,
  toReceipt,
} from '../core/compliance/erasure';
import {
  facemapHistory,
  inventoryPage,
  retentionSchedule,
  toInventoryView,
} from '../core/compliance/inventory';
import { InvalidRequestError } from '../core/enrollment/admin';
import { isValidUserReference, userReferenceSchema } from '../core/enrollment/callback';
import {
  type AuditEvent,
  type AuditSigner,
  type Clock,
  ENROLLMENT_STATES,
  ERASURE_REASONS,
  type InventoryFilter,
  type InventoryPosition,
  type Ledger,
  type Logger,
} from '../core/ports';
import { caller, enrollmentViewSchema } from './enrollments';
import { type RouteAuth, type RouteRegistry, declaredRouter } from './route';

/** What the composition root gives the compliance routes. */
export interface ComplianceDeps {
  stores: BlobStores;
  signer: AuditSigner;
  cursors: CursorCodec;
  erasures: ErasureService;
  retentionDays: number;
}

interface Deps extends ComplianceDeps {
  ledger: Ledger;
  clock: Clock;
  logger: Logger;
  auth: RouteAuth;
  routes: RouteRegistry;
}

const iso = z.iso.datetime();
const isoDate = z.iso
  .datetime({ offset: true, message: 'must be an ISO 8601 date-time' })
  .transform((v) => new Date(v));
const limitSchema = (fallback: number) =>
  z
    .string()
    .regex(/^\d{1,7}$/, { message: 'must be an integer from 1 to 1000' })
    .transform(Number)
    .refine((n) => n >= 1 && n <= 1000, { message: 'must be an integer from 1 to 1000' })
    .default(fallback);
/** A count of months in a query: an integer from 1 to `max`. */
const monthsSchema = (fallback: number, max: number) =>
  z
    .string()
    .regex(/^\d{1,4}$/, { message: `must be an integer from 1 to ${max}` })
    .transform(Number)
    .refine((n) => n >= 1 && n <= max, { message: `must be an integer from 1 to ${max}` })
    .default(fallback);

/** A reference-like token (a ticket, a hold's reference): no email address, no phone. */
const referenceSchema = z.string().refine(isValidUserReference, {
  message: 'must be 1-100 characters of letters, digits, . _ : - (no email address or phone)',
});
const freeTextSchema = z
  .string()
  .min(1)
  .max(200)
  .regex(/^[^\p{Cc}]+$/u, { message: 'must be printable text' });

const inventoryFilterShape = {
  state: z.enum(ENROLLMENT_STATES).optional(),
  createdAfter: isoDate.optional(),
  createdBefore: isoDate.optional(),
  retentionDueBefore: isoDate.optional(),
  legalHold: z
    .enum(['true', 'false'])
    .transform((v) => v === 'true')
    .optional(),
};

const inventoryItemSchema = enrollmentViewSchema
  .extend({
    retentionDueAt: iso,
    lastInteractionAt: iso.nullable(),
    legalHold: z.boolean(),
    erasedAt: iso.optional(),
  })
  .meta({ id: 'InventoryItem' });

const auditEventSchema = z
  .object({
    seq: z.number().int(),
    at: iso,
    type: z.string(),
    actor: z.string(),
    enrollmentReference: z.string().nullable(),
    authenticationReference: z.string().nullable(),
    userReference: z.string().nullable(),
    details: z.record(z.string(), z.unknown()),
    prevHash: z.string(),
    hash: z.string(),
  })
  .meta({ id: 'AuditEvent' });

const receiptSchema = z
  .object({
    erasureId: z.string(),
    state: z.enum(['PENDING', 'DONE']),
    userReference: z.string(),
    enrollmentReferences: z.array(z.string()),
    blobKeysDestroyed: z.array(z.string()).nullable(),
    erasedAt: iso.nullable(),
    reason: z.enum(ERASURE_REASONS),
    ticket: z.string().nullable(),
    requestedBy: z.string(),
    requestedAt: iso,
    auditSequence: z.number().int().nullable(),
    lastError: z.string().optional(),
  })
  .meta({ id: 'ErasureReceipt' });

const verifySchema = z
  .object({
    ok: z.boolean(),
    checkedThrough: z.number().int(),
    digestsChecked: z.number().int(),
    brokenAt: z.number().int().optional(),
    reason: z.string().optional(),
    message: z.string().optional(),
  })
  .meta({ id: 'AuditVerification' });

const positionSchema = z.strictObject({
  createdAt: z.string().max(64),
  enrollmentReference: z.string().max(100),
});

function auditView(e: AuditEvent) {
  return {
    seq: e.seq,
    at: e.at.toISOString(),
    type: e.type,
    actor: e.actor,
    enrollmentReference: e.enrollmentReference,
    authenticationReference: e.authenticationReference,
    userReference: e.userReference,
    details: e.details,
    prevHash: e.prevHash,
    hash: e.hash,
  };
}

/** Compliance: inventory, audit trail, erasure, retention (issue 9). Never returns bytes. */
export function complianceRoutes(deps: Deps): Router {
  const { router, route } = declaredRouter(deps);
  const readers = ['auditor', 'admin'] as const;
  const userParams = z.strictObject({ userReference: userReferenceSchema });

  const decodePosition = (cursor: string | undefined): InventoryPosition | null => {
    if (cursor === undefined) return null;
    const parsed = positionSchema.safeParse(deps.cursors.decode('enrollments', cursor));
    if (!parsed.success) throw new InvalidRequestError('cursor: malformed');
    return parsed.data;
  };

  route(
    {
      method: 'get',
      path: '/v1/enrollments',
      summary: 'The stored-facemap inventory: every enrollment, filtered, in pages',
      description:
        'Ordered by (createdAt, enrollmentReference); `nextCursor` continues after the last item. Filters combine.',
      tags: ['compliance'],
      roles: readers,
      query: z.strictObject({
        ...inventoryFilterShape,
        limit: limitSchema(100),
        cursor: z.string().max(512).optional(),
      }),
      responses: {
        200: {
          description: 'a page of the inventory',
          schema: z.object({
            items: z.array(inventoryItemSchema),
            nextCursor: z.string().nullable(),
          }),
        },
      },
    },
    async ({ query }, _req, res) => {
      const { limit, cursor, ...filter } = query;
      const page = await inventoryPage(deps, filter, decodePosition(cursor), limit);
      res.json({
        items: page.items.map(toInventoryView),
        nextCursor: page.next ? deps.cursors.encode('enrollments', page.next) : null,
      });
    },
  );

  route(
    {
      method: 'get',
      path: '/v1/inventory/summary',
      summary: 'Counts by state, oldest ACTIVE facemap, retention deadlines, holds, bytes, keys',
      tags: ['compliance'],
      roles: readers,
      responses: {
        200: {
          description: 'the summary',
          schema: z.object({
            byState: z.record(z.string(), z.number().int()),
            oldestActive: z
              .object({ enrollmentReference: z.string(), activatedAt: iso })
              .nullable(),
            retentionPastDue: z.number().int(),
            retentionDueWithin30Days: z.number().int(),
            legalHolds: z.number().int(),
            facemapBytes: z.number().int(),
            facemapsByKey: z.array(z.object({ keyId: z.string(), facemaps: z.number().int() })),
            retentionDays: z.number().int(),
          }),
        },
      },
    },
    async (_input, _req, res) => {
      const s = await deps.ledger.transaction((tx) =>
        tx.inventory.summary(deps.clock.now(), deps.retentionDays),
      );
      res.json({
        ...s,
        oldestActive: s.oldestActive
          ? { ...s.oldestActive, activatedAt: s.oldestActive.activatedAt.toISOString() }
          : null,
        retentionDays: deps.retentionDays,
      });
    },
  );

  route(
    {
      method: 'get',
      path: '/v1/inventory/history',
      summary: 'Facemaps stored, destroyed and held, per UTC month, the current month last',
      description:
        '`held` is the count at the end of the month (now, for the current month): stored ' +
        'and neither destroyed (superseded, purged) nor erased by then.',
      tags: ['compliance'],
      roles: readers,
      query: z.strictObject({ months: monthsSchema(24, 120) }),
      responses: {
        200: {
          description: 'one entry per month, oldest first',
          schema: z.object({
            months: z.array(
              z.object({
                month: z.string().regex(/^\d{4}-\d{2}$/),
                stored: z.number().int(),
                destroyed: z.number().int(),
                held: z.number().int(),
              }),
            ),
          }),
        },
      },
    },
    async ({ query }, _req, res) => {
      res.json({ months: await facemapHistory(deps, deps.clock.now(), query.months) });
    },
  );

  route(
    {
      method: 'get',
      path: '/v1/inventory/retention-schedule',
      summary: 'Retention deadlines ahead, per UTC month, from now through `months` months',
      description:
        'Enrollments (not ERASED) whose deadline falls from `from` (now) to `to` (the start ' +
        'of the month after the window), counted in the month it falls in; `onHold` of them ' +
        'belong to users under a legal hold. Deadlines already past are in the summary.',
      tags: ['compliance'],
      roles: readers,
      query: z.strictObject({ months: monthsSchema(36, 120) }),
      responses: {
        200: {
          description: 'every month of the window, zeros included, the current month first',
          schema: z.object({
            from: iso,
            to: iso,
            retentionDays: z.number().int(),
            months: z.array(
              z.object({
                month: z.string().regex(/^\d{4}-\d{2}$/),
                due: z.number().int(),
                onHold: z.number().int(),
              }),
            ),
          }),
        },
      },
    },
    async ({ query }, _req, res) => {
      const schedule = await retentionSchedule(deps, deps.clock.now(), query.months);
      res.json({
        from: schedule.from.toISOString(),
        to: schedule.to.toISOString(),
        retentionDays: deps.retentionDays,
        months: schedule.months,
      });
    },
  );

  route(
    {
      method: 'get',
      path: '/v1/inventory/export',
      summary: 'The whole inventory (same filters), streamed as CSV or NDJSON: metadata only',
      tags: ['compliance'],
      roles: readers,
      query: z.strictObject({ ...inventoryFilterShape, format: z.enum(['csv', 'ndjson']) }),
      responses: {
        200: { description: 'the rows, streamed', contentType: 'text/csv' },
      },
    },
    async ({ query }, req, res) => {
      const { format, ...filter } = query;
      await streamInventory(deps, filter as InventoryFilter, format, res, req.socket.remoteAddress);
    },
  );

  route(
    {
      method: 'get',
      path: '/v1/audit-events',
      summary: 'The audit trail, filtered, in sequence order, in pages',
      tags: ['compliance'],
      roles: readers,
      query: z.strictObject({
        type: z
          .string()
          .regex(/^[a-z_.]{1,64}$/, { message: 'must be an entry type' })
          .optional(),
        userReference: userReferenceSchema.optional(),
        enrollmentReference: z.string().max(100).optional(),
        after: isoDate.optional(),
        before: isoDate.optional(),
        limit: limitSchema(100),
        cursor: z.string().max(512).optional(),
      }),
      responses: {
        200: {
          description: 'a page of entries',
          schema: z.object({ items: z.array(auditEventSchema), nextCursor: z.string().nullable() }),
        },
      },
    },
    async ({ query }, _req, res) => {
      const { cursor, limit, ...filter } = query;
      let afterSeq = 0;
      if (cursor !== undefined) {
        const parsed = z
          .strictObject({ seq: z.number().int().min(0) })
          .safeParse(deps.cursors.decode('audit-events', cursor));
        if (!parsed.success) throw new InvalidRequestError('cursor: malformed');
        afterSeq = parsed.data.seq;
      }
      const rows = await deps.ledger.transaction((tx) =>
        tx.audit.page({ ...filter, afterSeq, limit: limit + 1 }),
      );
      const items = rows.slice(0, limit);
      const last = items[items.length - 1];
      res.json({
        items: items.map(auditView),
        nextCursor:
          rows.length > limit && last
            ? deps.cursors.encode('audit-events', { seq: last.seq })
            : null,
      });
    },
  );

  route(
    {
      method: 'post',
      path: '/v1/audit/digests',
      summary: 'Sign and publish a digest of the audit chain now (also when nothing happened)',
      tags: ['compliance'],
      roles: ['admin'],
      responses: {
        201: {
          description: 'the digest written under audit-digests/ in the blob store',
          schema: z.object({
            digest: z.object({
              version: z.literal(1),
              number: z.number().int(),
              fromSequence: z.number().int(),
              toSequence: z.number().int(),
              chainHead: z.string(),
              previousDigestSignature: z.string().nullable(),
              createdAt: iso,
              keyId: z.string(),
            }),
            signature: z.string(),
          }),
        },
      },
    },
    async (_input, _req, res) => {
      res.status(201).json(await writeDigest({ ...deps, blobs: deps.stores }));
    },
  );

  route(
    {
      method: 'get',
      path: '/v1/audit/verify',
      summary: 'Recompute the audit chain and check it against every signed digest',
      tags: ['compliance'],
      roles: readers,
      responses: {
        200: {
          description: '`ok`, or the first broken sequence and why',
          schema: verifySchema,
        },
      },
    },
    async (_input, _req, res) => {
      res.json(await verifyAndRecord({ ...deps, blobs: deps.stores }, caller(res)));
    },
  );

  route(
    {
      method: 'get',
      path: '/v1/audit/status',
      summary: 'The chain head, the last signed digest and the last recorded verification',
      tags: ['compliance'],
      roles: readers,
      responses: {
        200: {
          description: 'the status',
          schema: z.object({
            head: z.object({ seq: z.number().int() }),
            lastDigest: z
              .object({ number: z.number().int(), toSequence: z.number().int(), createdAt: iso })
              .nullable(),
            lastVerification: verifySchema
              .extend({ seq: z.number().int(), at: iso, actor: z.string() })
              .nullable(),
          }),
        },
      },
    },
    async (_input, _req, res) => {
      const status = await auditStatus(deps);
      const { lastDigest: digest, lastVerification: verified } = status;
      res.json({
        head: status.head,
        lastDigest: digest ? { ...digest, createdAt: digest.createdAt.toISOString() } : null,
        lastVerification: verified
          ? {
              ...verified.report,
              seq: verified.seq,
              at: verified.at.toISOString(),
              actor: verified.actor,
            }
          : null,
      });
    },
  );

  route(
    {
      method: 'delete',
      path: '/v1/enrollments/{userReference}',
      summary: "Erase the user's facemaps: every blob version, every enrollment, with a receipt",
      description:
        'Answers the receipt once every blob is gone (200), or the PENDING erasure (202) that ' +
        'the worker finishes. Erasing again returns the first receipt.',
      tags: ['compliance'],
      roles: ['admin'],
      params: userParams,
      body: z.strictObject({
        reason: z.enum(ERASURE_REASONS),
        ticket: referenceSchema.optional(),
      }),
      responses: {
        200: { description: 'erased: the destruction receipt', schema: receiptSchema },
        202: {
          description: 'erasure PENDING (a blob store failed; retried)',
          schema: receiptSchema,
        },
        404: { description: 'no enrollment for this user reference' },
        409: { description: 'a legal hold is in place' },
      },
    },
    async ({ params, body }, _req, res) => {
      const { erasure } = await deps.erasures.request({
        userReference: params.userReference,
        reason: body.reason,
        ticket: body.ticket ?? null,
        actor: caller(res),
      });
      res.status(erasure.state === 'DONE' ? 200 : 202).json(toReceipt(erasure));
    },
  );

  route(
    {
      method: 'get',
      path: '/v1/erasures',
      summary: 'Erasures and their receipts, newest first, in pages',
      tags: ['compliance'],
      roles: readers,
      query: z.strictObject({
        state: z.enum(['PENDING', 'DONE']).optional(),
        userReference: userReferenceSchema.optional(),
        limit: limitSchema(50),
        cursor: z.string().max(512).optional(),
      }),
      responses: {
        200: {
          description: 'a page of erasures',
          schema: z.object({ items: z.array(receiptSchema), nextCursor: z.string().nullable() }),
        },
      },
    },
    async ({ query }, _req, res) => {
      const { cursor, limit, ...filter } = query;
      let before: { requestedAt: Date; erasureId: string } | null = null;
      if (cursor !== undefined) {
        const parsed = z
          .strictObject({ requestedAt: iso, erasureId: z.string().max(100) })
          .safeParse(deps.cursors.decode('erasures', cursor));
        if (!parsed.success) throw new InvalidRequestError('cursor: malformed');
        before = {
          requestedAt: new Date(parsed.data.requestedAt),
          erasureId: parsed.data.erasureId,
        };
      }
      const rows = await deps.ledger.transaction((tx) =>
        tx.erasures.list(filter, before, limit + 1),
      );
      const items = rows.slice(0, limit);
      const last = items[items.length - 1];
      res.json({
        items: items.map(toReceipt),
        nextCursor:
          rows.length > limit && last
            ? deps.cursors.encode('erasures', {
                requestedAt: last.requestedAt.toISOString(),
                erasureId: last.erasureId,
              })
            : null,
      });
    },
  );

  route(
    {
      method: 'get',
      path: '/v1/erasures/{erasureId}',
      summary: 'An erasure and, once DONE, its destruction receipt',
      tags: ['compliance'],
      roles: readers,
      params: z.strictObject({ erasureId: z.uuid() }),
      responses: {
        200: { description: 'the erasure', schema: receiptSchema },
        404: { description: 'no such erasure' },
      },
    },
    async ({ params }, _req, res) => {
      res.json(toReceipt(await deps.erasures.get(params.erasureId)));
    },
  );

  const holdBody = z.strictObject({ reference: referenceSchema, reason: freeTextSchema });
  const holdSchema = z
    .object({
      userReference: z.string(),
      reference: z.string(),
      reason: z.string(),
      placedBy: z.string(),
      placedAt: iso,
    })
    .meta({ id: 'LegalHold' });

  route(
    {
      method: 'get',
      path: '/v1/legal-holds',
      summary: 'The legal holds in place, by user reference, in pages',
      tags: ['compliance'],
      roles: readers,
      query: z.strictObject({ limit: limitSchema(100), cursor: z.string().max(512).optional() }),
      responses: {
        200: {
          description: 'a page of holds',
          schema: z.object({ items: z.array(holdSchema), nextCursor: z.string().nullable() }),
        },
      },
    },
    async ({ query }, _req, res) => {
      let after: string | null = null;
      if (query.cursor !== undefined) {
        const parsed = z
          .strictObject({ userReference: z.string().max(100) })
          .safeParse(deps.cursors.decode('legal-holds', query.cursor));
        if (!parsed.success) throw new InvalidRequestError('cursor: malformed');
        after = parsed.data.userReference;
      }
      const rows = await deps.ledger.transaction((tx) =>
        tx.legalHolds.list(after, query.limit + 1),
      );
      const items = rows.slice(0, query.limit);
      const last = items[items.length - 1];
      res.json({
        items: items.map((h) => ({ ...h, placedAt: h.placedAt.toISOString() })),
        nextCursor:
          rows.length > query.limit && last
            ? deps.cursors.encode('legal-holds', { userReference: last.userReference })
            : null,
      });
    },
  );

  route(
    {
      method: 'put',
      path: '/v1/enrollments/{userReference}/legal-hold',
      summary: 'Place (or replace) a legal hold: erasure and retention pause for this user',
      tags: ['compliance'],
      roles: ['admin'],
      params: userParams,
      body: holdBody,
      responses: { 200: { description: 'the hold', schema: holdSchema } },
    },
    async ({ params, body }, _req, res) => {
      const hold = await placeLegalHold(deps, { ...params, ...body }, caller(res));
      res.json({ ...hold, placedAt: hold.placedAt.toISOString() });
    },
  );

  route(
    {
      method: 'delete',
      path: '/v1/enrollments/{userReference}/legal-hold',
      summary: 'Release the legal hold: erasure and retention apply again',
      tags: ['compliance'],
      roles: ['admin'],
      params: userParams,
      body: holdBody,
      responses: {
        200: { description: 'released', schema: z.object({ released: z.literal(true) }) },
        404: { description: 'no legal hold for this user' },
      },
    },
    async ({ params, body }, _req, res) => {
      await releaseLegalHold(deps, { ...params, ...body }, caller(res));
      res.json({ released: true });
    },
  );

  route(
    {
      method: 'post',
      path: '/v1/enrollments/{userReference}/purpose-satisfied',
      summary: "The purpose is satisfied: the user's retention deadline becomes now",
      tags: ['compliance'],
      roles: ['admin'],
      params: userParams,
      responses: {
        200: {
          description: 'marked',
          schema: z.object({
            userReference: z.string(),
            purposeSatisfiedAt: iso,
            enrollments: z.number().int(),
          }),
        },
        404: { description: 'no enrollment for this user reference' },
      },
    },
    async ({ params }, _req, res) => {
      res.json(await markPurposeSatisfied(deps, params.userReference, caller(res)));
    },
  );

  return router;
}

/**
 * Streams the inventory with constant memory: one keyset batch at a time is read, formatted
 * and written; the next is read only when the socket drained (pipeline's back-pressure).
 * When the client goes away the pipeline ends the generator, so no further batch is read.
 */
async function streamInventory(
  deps: Deps,
  filter: InventoryFilter,
  format: ExportFormat,
  res: Response,
  peer: string | undefined,
): Promise<void> {
  const progress = { rows: 0, complete: false };
  res.status(200);
  res.type(format === 'csv' ? 'text/csv; charset=utf-8' : 'application/x-ndjson');
  res.setHeader('Content-Disposition', `attachment; filename="inventory.${format}"`);
  res.setHeader('Cache-Control', 'no-store');
  try {
    // highWaterMark 1: one chunk (one batch) is formatted ahead of the socket, no more.
    await pipeline(
      Readable.from(exportChunks(deps, filter, format, progress), { highWaterMark: 1 }),
      res,
    );
    deps.logger.info({ rows: progress.rows, format }, 'inventory exported');
  } catch (error) {
    if (progress.complete && res.writableFinished) return;
    deps.logger.warn(
      {
        rows: progress.rows,
        format,
        peer,
        err: (error as { code?: string } | null)?.code ?? 'unknown',
      },
      'inventory export stopped: the client went away or the ledger failed',
    );
  }
}
