// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import prettier from 'eslint-config-prettier';

// The dependency rule of the design: the core is pure TypeScript. It may not reach
// outwards into adapters, HTTP, CLI or the simulator, nor into any SDK or driver.
export const coreForbidden = {
  patterns: [
    {
      group: ['**/adapters', '**/adapters/**', '**/http', '**/http/**', '**/cli', '**/cli/**'],
      message: 'src/core must not import adapters, HTTP or CLI code (ports and adapters).',
    },
    {
      group: ['**/simulator', '**/simulator/**', '**/container', '**/app', '**/main'],
      message: 'src/core must not import the simulator or the composition root.',
    },
    {
      group: [
        'express',
        'express/**',
        'pg',
        'pg/**',
        '@electric-sql/pglite',
        '@electric-sql/pglite/**',
      ],
      message: 'src/core must not import HTTP frameworks or database drivers.',
    },
    {
      group: ['@aws-sdk/*', '@aws-crypto/*', 'undici', 'undici/**'],
      message: 'src/core must not import SDKs or HTTP clients.',
    },
  ],
};

export default tseslint.config(
  {
    ignores: [
      'dist/**',
      'node_modules/**',
      'coverage/**',
      'data/**',
      '**/cdk.out/**',
      '**/*.js',
      '**/*.cjs',
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_' },
      ],
      'no-console': 'error',
    },
  },
  {
    files: ['src/core/**/*.ts'],
    rules: { 'no-restricted-imports': ['error', coreForbidden] },
  },
  {
    // Scripts and the simulator's CLI print to the terminal on purpose.
    files: ['scripts/**/*.ts', 'src/cli/**/*.ts', 'src/simulator/main.ts'],
    rules: { 'no-console': 'off' },
  },
  prettier,
);
