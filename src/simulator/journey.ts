import express, { type Response, type Router } from 'express';
import type { SimContext } from './context';
import { completeAuthentication } from './jumio';
import {
  AUTHENTICATION_RESULTS,
  FINAL_AUTHENTICATION_STATES,
  type SimAuthentication,
} from './state';

/**
 * A stand-in for Jumio's web journey behind `redirectUrl`, so a demo can click through
 * an authentication: opening the link marks it STARTED, a button completes it.
 */
export function journeyRouter(ctx: SimContext): Router {
  const router = express.Router();
  router.use(express.urlencoded({ extended: false, limit: '4kb' }));

  const find = (token: unknown): SimAuthentication | undefined =>
    typeof token === 'string' && token !== ''
      ? [...ctx.state.authentications.values()].find(
          (a) => a.authorizationToken === token && !a.deleted,
        )
      : undefined;

  /** Why the journey cannot (or can no longer) be used, or null. */
  const refusal = (auth: SimAuthentication | undefined): [number, string] | null => {
    if (!auth) return [404, 'Unknown or deleted authentication link.'];
    if (FINAL_AUTHENTICATION_STATES.includes(auth.state)) {
      return [409, `This authentication is already final: ${auth.state}.`];
    }
    const lifetime = auth.tokenLifetimeInMinutes;
    if (lifetime !== undefined) {
      const expiresAt = auth.createdAt.getTime() + lifetime * 60_000;
      if (ctx.clock.now().getTime() > expiresAt) return [410, 'This link has expired.'];
    }
    return null;
  };

  router.get('/', (req, res) => {
    const auth = find(req.query.authorizationToken);
    const refused = refusal(auth);
    if (refused || !auth) return page(res, refused?.[0] ?? 404, refused?.[1] ?? '');
    if (auth.state === 'CREATED') auth.state = 'STARTED';
    const buttons = AUTHENTICATION_RESULTS.map(
      (r) => `<button name="result" value="${r}">${r}</button>`,
    ).join(' ');
    page(
      res,
      200,
      `Authentication <code>${escape(auth.transactionReference)}</code> (simulated face capture).`,
      `<form method="post" action="/web/v4/app/complete">
         <input type="hidden" name="authorizationToken" value="${escape(auth.authorizationToken)}">
         ${buttons}
       </form>`,
    );
  });

  router.post('/complete', async (req, res) => {
    const body = (req.body ?? {}) as Record<string, unknown>;
    const auth = find(body.authorizationToken);
    const refused = refusal(auth);
    if (refused || !auth) return page(res, refused?.[0] ?? 404, refused?.[1] ?? '');
    const result = AUTHENTICATION_RESULTS.find((r) => r === body.result);
    if (!result) return page(res, 400, 'Choose PASSED, FAILED or INVALID.');
    await completeAuthentication(ctx, auth, result, ctx.baseUrl(req));
    // Jumio sends the person to successUrl once the journey is done, errorUrl on error.
    const target = result === 'INVALID' ? auth.errorUrl : auth.successUrl;
    if (target !== undefined) {
      const url = new URL(target);
      url.searchParams.set('transactionReference', auth.transactionReference);
      return res.redirect(303, url.toString());
    }
    page(res, 200, `Authentication finished: ${result}.`);
  });
  return router;
}

function escape(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function page(res: Response, status: number, message: string, extra = ''): void {
  res
    .status(status)
    .type('html')
    .send(
      `<!doctype html><meta charset="utf-8"><title>Jumio simulator</title>
<h1>Jumio simulator: authentication</h1><p>${message}</p>${extra}`,
    );
}
