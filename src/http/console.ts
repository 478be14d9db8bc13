import { existsSync } from 'node:fs';
import path from 'node:path';
import express, { type RequestHandler, Router } from 'express';
import helmet from 'helmet';
import { errorBody, methodNotAllowed } from './errors';

/**
 * The compliance console (issue 12): static files built by `npm run build` (Vite, from
 * console/) into dist/console, served at /console from the vault's own origin. The page
 * talks to /v1 with the bearer token the user pasted; it holds no secret of its own.
 */

/** dist/console of this package, whether running from src/ (tests) or dist/ (built). */
export function defaultConsoleDir(): string {
  let dir = __dirname;
  while (!existsSync(path.join(dir, 'package.json'))) {
    const parent = path.dirname(dir);
    if (parent === dir) return path.resolve('dist', 'console');
    dir = parent;
  }
  return path.join(dir, 'dist', 'console');
}

/**
 * Stricter than the API's headers: only this origin's scripts, styles, images and fonts;
 * requests to this origin only; no inline script, style or event handler; never framed;
 * forms never submit (the sign-in form is handled in script: a token must not end up in a
 * URL); Trusted Types forbid HTML string sinks, so a stored value cannot become markup.
 */
export const consoleSecurityHeaders: RequestHandler = helmet({
  contentSecurityPolicy: {
    useDefaults: false,
    directives: {
      defaultSrc: ["'none'"],
      scriptSrc: ["'self'"],
      scriptSrcAttr: ["'none'"],
      styleSrc: ["'self'"],
      styleSrcAttr: ["'none'"],
      imgSrc: ["'self'"],
      fontSrc: ["'self'"],
      connectSrc: ["'self'"],
      baseUri: ["'none'"],
      formAction: ["'none'"],
      frameAncestors: ["'none'"],
      objectSrc: ["'none'"],
      requireTrustedTypesFor: ["'script'"],
      trustedTypes: ["'none'"],
    },
  },
  frameguard: { action: 'deny' },
  referrerPolicy: { policy: 'no-referrer' },
});

/** Vite names built assets by content hash: a changed file is a new URL. */
const IMMUTABLE = 'public, max-age=31536000, immutable';

export function consoleRoutes(dir: string): Router {
  const router = Router();
  router.use(consoleSecurityHeaders);
  const index = path.join(dir, 'index.html');
  router
    .route('/')
    .get((_req, res) => {
      if (!existsSync(index)) {
        res
          .status(404)
          .json(errorBody(res, 'not_found', 'the console is not built: run `npm run build`'));
        return;
      }
      // Always revalidated: a deploy's new asset names reach the browser at once.
      res.set('Cache-Control', 'no-cache');
      res.sendFile(index);
    })
    .all(methodNotAllowed('GET'));
  router.use(
    express.static(dir, {
      index: false,
      redirect: false,
      cacheControl: false,
      dotfiles: 'ignore',
      setHeaders: (res, file) => {
        const hashed = path.relative(dir, file).startsWith(`assets${path.sep}`);
        res.setHeader('Cache-Control', hashed ? IMMUTABLE : 'no-cache');
      },
    }),
  );
  return router;
}
