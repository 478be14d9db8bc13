import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import type { Express, Request, Response } from 'express';
import { Ajv2020 } from 'ajv/dist/2020';
import addFormats from 'ajv-formats';
import { buildOpenApiDocument } from '../../src/http/openapi';
import type { RouteRegistry } from '../../src/http/route';

/**
 * Every response a test vault sends on a declared route is recorded, and checked against
 * the OpenAPI description when the test file ends (test/helpers/conformance-setup.ts):
 * the integration tests' real responses are the conformance suite.
 */
interface Recorded {
  method: string;
  path: string;
  status: number;
  body: unknown;
}

type Document = {
  paths: Record<string, Record<string, { responses: Record<string, ResponseSpec> }>>;
  components: unknown;
};
type ResponseSpec = { content?: Record<string, { schema: object }> };

const recorded: Recorded[] = [];
let document: Document | undefined;

/** Wraps a vault app so its responses are recorded. */
export function recordingResponses(app: Express): RequestListener {
  document ??= buildOpenApiDocument(app.locals.routes as RouteRegistry) as unknown as Document;
  return (rawReq: IncomingMessage, rawRes: ServerResponse) => {
    const req = rawReq as Request;
    const res = rawRes as Response;
    let body: unknown;
    // Express gives `res` its prototype (with json) once the app runs: look it up then.
    res.json = function (this: Response, value: unknown) {
      body = value;
      return (Object.getPrototypeOf(this) as Response).json.call(this, value);
    };
    res.on('finish', () => {
      const template = (req.route as { path?: unknown } | undefined)?.path;
      if (typeof template !== 'string') return;
      recorded.push({
        method: req.method.toLowerCase(),
        path: `${req.baseUrl}${template}`.replace(/:([A-Za-z0-9_]+)/g, '{$1}'),
        status: res.statusCode,
        body,
      });
    });
    app(req, res);
  };
}

/** The mismatches between the recorded responses and the description; empties the record. */
export function nonConformingResponses(): string[] {
  const doc = document;
  const taken = recorded.splice(0);
  if (!doc) return [];
  const ajv = new Ajv2020({ strict: false, allErrors: true });
  addFormats(ajv);
  const problems: string[] = [];
  const compiled = new Map<string, ReturnType<typeof ajv.compile>>();
  for (const r of taken) {
    const operation = doc.paths[r.path]?.[r.method];
    // A method the path does not declare (405) or a path served by hand is not checked.
    if (!operation) continue;
    const response = operation.responses[String(r.status)];
    const where = `${r.method.toUpperCase()} ${r.path} -> ${r.status}`;
    if (!response) {
      problems.push(`${where}: status not documented`);
      continue;
    }
    const schema = response.content?.['application/json']?.schema;
    if (!schema) {
      if (r.body !== undefined) problems.push(`${where}: documented without a body`);
      continue;
    }
    const key = `${r.path} ${r.method} ${r.status}`;
    let validate = compiled.get(key);
    if (!validate) {
      validate = ajv.compile({ ...schema, components: doc.components });
      compiled.set(key, validate);
    }
    if (!validate(r.body)) {
      problems.push(`${where}: ${ajv.errorsText(validate.errors)}`);
    }
  }
  return problems;
}
