import path from 'node:path';
import { ESLint } from 'eslint';

/** The design's dependency rule, checked the way CI checks it: by running ESLint. */
describe('the core dependency rule', () => {
  const eslint = new ESLint({ cwd: path.resolve(__dirname, '../..') });

  async function restrictedImports(filePath: string, code: string): Promise<string[]> {
    const [result] = await eslint.lintText(code, { filePath });
    return result!.messages
      .filter((m) => m.ruleId === 'no-restricted-imports')
      .map((m) => m.message);
  }

  it.each([
    "import { PgDatabase } from '../adapters/ledger/pg-database';",
    "import { createApp } from '../app';",
    "import { errorHandler } from '../http/errors';",
    "import { startSimulator } from '../simulator/server';",
    "import express from 'express';",
    "import { Pool } from 'pg';",
    "import { PGlite } from '@electric-sql/pglite';",
    "import { S3Client } from '@aws-sdk/client-s3';",
    "import { buildClient } from '@aws-crypto/client-node';",
    "import { request } from 'undici';",
  ])('refuses `%s` inside src/core', async (line) => {
    const messages = await restrictedImports('src/core/probe.ts', `${line}\nexport {};\n`);
    expect(messages).toHaveLength(1);
    expect(messages[0]).toMatch(/src\/core must not import/);
  });

  it('allows the same imports outside the core, and zod and node built-ins inside it', async () => {
    expect(
      await restrictedImports('src/adapters/probe.ts', "import { Pool } from 'pg';\nexport {};\n"),
    ).toEqual([]);
    expect(
      await restrictedImports(
        'src/core/probe.ts',
        "import { z } from 'zod';\nimport { createHash } from 'node:crypto';\nimport type { Ledger } from './ports';\nexport {};\n",
      ),
    ).toEqual([]);
  });
});
