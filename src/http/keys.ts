import { Router } from 'express';
import { z } from 'zod';
import { type KeyEntry, keyReport } from '../core/keys/report';
import type { Envelope, Ledger } from '../core/ports';
import { defineRoute, type RouteAuth, type RouteRegistry } from './route';

const keyReportSchema = z
  .object({
    currentKeyId: z.string(),
    keys: z.array(
      z.object({
        keyId: z.string(),
        status: z.enum(['current', 'previous', 'unknown']),
        facemaps: z.number().int(),
        vaultKeys: z.number().int(),
        readable: z.boolean(),
        note: z.string().optional(),
      }),
    ),
    facemaps: z.object({
      total: z.number().int(),
      underCurrentKey: z.number().int(),
      toRewrap: z.number().int(),
      unreadable: z.number().int(),
    }),
    vaultKeys: z.object({
      total: z.number().int(),
      underCurrentKey: z.number().int(),
      toRewrap: z.number().int(),
    }),
  })
  .meta({ id: 'KeyReport' });

/** What an operator does about a key, by its status. */
function noteOf(k: KeyEntry): string | undefined {
  if (k.status === 'unknown') {
    return (
      'not configured: these facemaps cannot be decrypted by this vault. Add the key to ' +
      'KMS_PREVIOUS_KEY_IDS or VAULT_LOCAL_PREVIOUS_KEY_FILES'
    );
  }
  if (k.status !== 'previous') return undefined;
  return k.facemaps + k.vaultKeys > 0
    ? 'accepted for decrypt only: vault rewrap moves what it wraps to the current key'
    : 'nothing left under it: it can be retired';
}

/** `GET /v1/keys`: facemaps (and wrapped vault keys) per wrapping key. Never key material. */
export function keyRoutes(deps: {
  ledger: Ledger;
  envelope: Envelope;
  auth: RouteAuth;
  routes: RouteRegistry;
}): Router {
  const router = Router();
  defineRoute(
    router,
    deps.routes,
    deps.auth,
    {
      method: 'get',
      path: '/v1/keys',
      summary:
        'Facemaps per wrapping key, each key current, previous (rewrap pending) or unknown (unreadable)',
      tags: ['keys'],
      roles: ['admin', 'auditor'],
      responses: {
        200: { description: 'the keys and what each protects', schema: keyReportSchema },
      },
    },
    async (_input, _req, res) => {
      const report = await keyReport(deps);
      res.json({
        ...report,
        keys: report.keys.map((k) => {
          const note = noteOf(k);
          return note === undefined ? k : { ...k, note };
        }),
      });
    },
  );
  return router;
}
