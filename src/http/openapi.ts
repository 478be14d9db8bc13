import { z } from 'zod';
import { errorBodySchema, type RouteRegistry, type RouteSpec } from './route';

type JsonSchema = Record<string, unknown>;

/**
 * The OpenAPI 3.1 description of the vault's HTTP API, built from the route declarations
 * (the same zod schemas the routes validate with). OpenAPI 3.1 uses JSON Schema 2020-12,
 * which is zod 4's own output.
 */
export function buildOpenApiDocument(registry: RouteRegistry): JsonSchema {
  const components: Record<string, JsonSchema> = {};
  /** Converts a schema; named ones (`.meta({id})`) go to components and are referenced. */
  const convert = (schema: z.ZodType, io: 'input' | 'output'): JsonSchema => {
    const json = z.toJSONSchema(schema, {
      io,
      unrepresentable: 'any',
      reused: 'inline',
    }) as JsonSchema;
    delete json.$schema;
    const defs = (json.$defs ?? {}) as Record<string, JsonSchema>;
    for (const [name, def] of Object.entries(defs)) components[name] = def;
    delete json.$defs;
    return JSON.parse(
      JSON.stringify(json).replaceAll('"#/$defs/', '"#/components/schemas/'),
    ) as JsonSchema;
  };
  const errorRef = convert(errorBodySchema, 'output');

  const paths: Record<string, Record<string, JsonSchema>> = {};
  for (const spec of registry.routes) {
    (paths[spec.path] ??= {})[spec.method] = operation(spec, convert, errorRef);
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'Facemap vault',
      // The version of the /v1 API this document describes.
      version: '1.0.0',
      description:
        'Keeps Jumio facemaps on the customer premises, envelope-encrypted and audited. ' +
        'No route ever returns facemap bytes.',
    },
    paths,
    components: {
      schemas: components,
      securitySchemes: {
        bearerAuth: {
          type: 'http',
          scheme: 'bearer',
          description: 'An API key from VAULT_API_KEYS; its role decides what it may do.',
        },
      },
    },
  };
}

function operation(
  spec: RouteSpec,
  convert: (schema: z.ZodType, io: 'input' | 'output') => JsonSchema,
  errorSchema: JsonSchema,
): JsonSchema {
  const parameters: JsonSchema[] = [];
  const addParameters = (location: 'path' | 'query' | 'header', schema?: z.ZodObject) => {
    if (!schema) return;
    const json = convert(schema, 'input');
    const required = new Set((json.required as string[] | undefined) ?? []);
    for (const [name, property] of Object.entries(
      (json.properties ?? {}) as Record<string, JsonSchema>,
    )) {
      parameters.push({
        name,
        in: location,
        required: location === 'path' || required.has(name),
        schema: property,
      });
    }
  };
  addParameters('path', spec.params);
  addParameters('query', spec.query);
  addParameters('header', spec.headers);

  const errors: Record<number, string> = {};
  if (spec.params || spec.query || spec.body || spec.headers) {
    errors[400] = 'invalid input: every invalid field is listed in `error.fields`';
  }
  if (spec.body) errors[413] = 'request body too large';
  if (spec.roles) {
    errors[401] = 'missing or unknown bearer token';
    errors[403] = "the key's role may not use this route";
  }
  errors[500] = 'the vault failed';
  errors[503] = 'a dependency (ledger, blob store, KMS, Jumio) is unavailable';
  const responses: Record<string, JsonSchema> = {};
  for (const [status, description] of Object.entries(errors)) {
    responses[status] = {
      description,
      content: { 'application/json': { schema: errorSchema } },
    };
  }
  for (const [status, response] of Object.entries(spec.responses)) {
    const isError = Number(status) >= 400;
    const schema = response.schema
      ? convert(response.schema, 'output')
      : isError
        ? errorSchema
        : undefined;
    responses[status] = {
      description: response.description,
      ...(schema ? { content: { [response.contentType ?? 'application/json']: { schema } } } : {}),
    };
  }
  return {
    summary: spec.summary,
    ...(spec.description ? { description: spec.description } : {}),
    tags: spec.tags,
    operationId: `${spec.method}${spec.path.replace(/[{}]/g, '').replace(/[^A-Za-z0-9]+(.)?/g, (_m, c: string | undefined) => (c ? c.toUpperCase() : ''))}`,
    ...(spec.roles
      ? {
          security: [{ bearerAuth: [] }],
          'x-roles': spec.roles,
        }
      : { security: [] }),
    ...(parameters.length ? { parameters } : {}),
    ...(spec.body
      ? {
          requestBody: {
            required: true,
            content: {
              [spec.bodyContentType ?? 'application/json']: { schema: convert(spec.body, 'input') },
            },
          },
        }
      : {}),
    responses,
  };
}
