import { nonConformingResponses } from './conformance';

// Real responses of the tests must match the API description (test/helpers/conformance.ts).
afterAll(() => {
  const problems = nonConformingResponses();
  if (problems.length > 0) {
    throw new Error(`responses that do not match /openapi.json:\n  ${problems.join('\n  ')}`);
  }
});
