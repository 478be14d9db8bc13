import { Router } from 'express';
import { z } from 'zod';
import { type Caller, ROLES } from './api-keys';
import { defineRoute, type RouteAuth, type RouteRegistry } from './route';

/** `GET /v1/me`: which API key the bearer token is (the console shows it after sign-in). */
export function meRoutes(deps: { auth: RouteAuth; routes: RouteRegistry }): Router {
  const router = Router();
  defineRoute(
    router,
    deps.routes,
    deps.auth,
    {
      method: 'get',
      path: '/v1/me',
      summary: "The calling API key's name and role",
      tags: ['operations'],
      roles: ROLES,
      responses: {
        200: {
          description: 'the caller',
          schema: z.object({ name: z.string(), role: z.enum(ROLES) }),
        },
      },
    },
    async (_input, _req, res) => {
      const { name, role } = res.locals.caller as Caller;
      res.json({ name, role });
    },
  );
  return router;
}
