import { Router, type Request, type RequestHandler, type Response } from 'express';
import { z } from 'zod';
import type { Role } from './api-keys';
import { HttpError, methodNotAllowed } from './errors';

/**
 * Routes are declared once, with the zod schemas they validate with; the same declaration
 * is what `/openapi.json` describes (src/http/openapi.ts). A route cannot be served without
 * being documented, nor documented differently from how it validates.
 */

export interface RouteResponse {
  description: string;
  /** The JSON body; absent for an empty body. */
  schema?: z.ZodType;
  /** Defaults to application/json. */
  contentType?: string;
}

export interface RouteSpec {
  method: 'get' | 'post' | 'put' | 'delete';
  /** OpenAPI path template, e.g. `/v1/enrollments/{userReference}`. */
  path: string;
  summary: string;
  description?: string;
  tags: string[];
  /** Roles allowed (bearer token required); null for a public route. */
  roles: readonly Role[] | null;
  params?: z.ZodObject;
  query?: z.ZodObject;
  body?: z.ZodType;
  /** Defaults to application/json. */
  bodyContentType?: string;
  /** Request headers the route reads, documented (e.g. Idempotency-Key). */
  headers?: z.ZodObject;
  responses: Record<number, RouteResponse>;
}

/** What a handler receives: the parsed (validated, transformed) inputs. */
export interface RouteInput<S extends RouteSpec> {
  params: S['params'] extends z.ZodObject ? z.output<S['params']> : Record<string, never>;
  query: S['query'] extends z.ZodObject ? z.output<S['query']> : Record<string, never>;
  body: S['body'] extends z.ZodType ? z.output<S['body']> : undefined;
  headers: S['headers'] extends z.ZodObject ? z.output<S['headers']> : Record<string, never>;
}

/** The role check; the bearer token itself is checked once for all of `/v1`. */
export interface RouteAuth {
  requireRole(...roles: Role[]): RequestHandler;
}

/** Every declared route; the OpenAPI document is built from it. */
export class RouteRegistry {
  readonly routes: RouteSpec[] = [];
  /** The routes `defineRoute` mounted (the others answer 405 themselves). */
  readonly mounted: RouteSpec[] = [];

  /** Documents a route served by hand (the webhook, health probes). */
  document(spec: RouteSpec): void {
    this.routes.push(spec);
  }

  /**
   * 405 with `Allow` for a known path and another method. Mounted after every router, so
   * that a path two routers share reaches the route with its method first.
   */
  methodNotAllowed(): Router {
    const router = Router();
    const methods = new Map<string, string[]>();
    for (const spec of this.mounted) {
      const path = expressPath(spec.path);
      methods.set(path, [...(methods.get(path) ?? []), spec.method.toUpperCase()]);
    }
    for (const [path, allowed] of methods) router.all(path, methodNotAllowed(...allowed));
    return router;
  }
}

/** `/v1/x/{id}` -> `/v1/x/:id` */
export function expressPath(path: string): string {
  return path.replace(/\{([A-Za-z0-9_]+)\}/g, ':$1');
}

export interface InvalidField {
  /** `body.userReference`, `query.limit`, `params.scanReference`, `headers.idempotency-key` */
  field: string;
  message: string;
}

/** Zod 4's messages name the expectation, never the received value: safe to return. */
function fieldsOf(location: string, error: z.ZodError): InvalidField[] {
  return error.issues.map((issue) => {
    const path = issue.path.map(String).join('.');
    if (issue.code === 'unrecognized_keys') {
      return {
        field: [location, path].filter(Boolean).join('.'),
        message: `unknown field(s): ${issue.keys.join(', ')}`,
      };
    }
    return { field: [location, path].filter(Boolean).join('.'), message: issue.message };
  });
}

/** 400 listing every invalid field. */
export class ValidationError extends HttpError {
  constructor(readonly fields: InvalidField[]) {
    super(
      400,
      'invalid_request',
      `invalid request: ${fields.map((f) => `${f.field}: ${f.message}`).join('; ')}`,
    );
  }
}

function parseInputs(spec: RouteSpec, req: Request): RouteInput<RouteSpec> {
  const fields: InvalidField[] = [];
  const parse = (location: string, schema: z.ZodType | undefined, value: unknown) => {
    if (!schema) return location === 'body' ? undefined : {};
    const result = schema.safeParse(value);
    if (result.success) return result.data;
    fields.push(...fieldsOf(location, result.error));
    return undefined;
  };
  const headers = spec.headers
    ? Object.fromEntries(Object.keys(spec.headers.shape).map((name) => [name, req.get(name)]))
    : {};
  const input = {
    params: parse('params', spec.params, req.params),
    query: parse('query', spec.query, req.query),
    body: parse('body', spec.body, req.body),
    headers: parse('headers', spec.headers, headers),
  };
  if (fields.length > 0) throw new ValidationError(fields);
  return input as RouteInput<RouteSpec>;
}

/**
 * Mounts `spec` on `router` (authentication and role check first, then validation of every
 * input at once) and registers it for the API description.
 */
export function defineRoute<S extends RouteSpec>(
  router: Router,
  registry: RouteRegistry,
  auth: RouteAuth,
  spec: S,
  handler: (input: RouteInput<S>, req: Request, res: Response) => Promise<void>,
): void {
  registry.routes.push(spec);
  registry.mounted.push(spec);
  const guards = spec.roles ? [auth.requireRole(...spec.roles)] : [];
  router[spec.method](expressPath(spec.path), ...guards, async (req, res) => {
    const input = parseInputs(spec, req) as RouteInput<S>;
    await handler(input, req, res);
  });
}

/**
 * A router and the function that declares routes on it (validated, role-checked, and
 * registered for /openapi.json): what every route module starts with.
 */
export function declaredRouter(deps: { routes: RouteRegistry; auth: RouteAuth }) {
  const router = Router();
  const route = <S extends RouteSpec>(
    spec: S,
    handler: (input: RouteInput<S>, req: Request, res: Response) => Promise<void>,
  ): void => defineRoute(router, deps.routes, deps.auth, spec, handler);
  return { router, route };
}

/** The error body every route answers with. */
export const errorBodySchema = z
  .object({
    error: z.object({
      code: z.string(),
      message: z.string(),
      requestId: z.string().optional(),
      fields: z.array(z.object({ field: z.string(), message: z.string() })).optional(),
    }),
  })
  .meta({ id: 'Error' });
