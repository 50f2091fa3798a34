import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import local from './eslint-rules/no-cycle.js';

export default tseslint.config(
  { ignores: ['node_modules/**', '.relay/**', 'dist/**', 'sdk/dist/**', 'dashboard/dist/**', 'coverage/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
      'no-console': ['error', { allow: ['warn', 'error'] }],
    },
  },
  {
    files: ['**/*.ts'],
    plugins: { local },
    rules: { 'local/no-cycle': 'error' },
  },
  // Layering. core/ is pure domain (no config, I/O or provider code at run time; types may be
  // shared). Providers talk to vendors only: never to the gateway, the API, the database or workers.
  {
    files: ['src/core/**'],
    rules: {
      '@typescript-eslint/no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['**/providers/**', '**/config.js', '../db/**', '../api/**', '../services/**', '../gateway/**', '../self/**', '**/workers/**', '../*.js'],
              allowTypeImports: true,
              message: 'src/core/ is pure: import only from core/ (type imports excepted)',
            },
          ],
        },
      ],
    },
  },
  {
    files: ['providers/**'],
    rules: {
      '@typescript-eslint/no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['**/src/gateway/**', '**/src/api/**', '**/src/db/**', '**/src/self/**', '**/src/services/**', '**/workers/**', '**/src/config.js'],
              message: 'providers talk to vendors only; shared wire formats live in src/core/',
            },
          ],
        },
      ],
    },
  },
  {
    files: ['scripts/**', 'bench/**', 'test/**', 'src/main.ts'],
    rules: { 'no-console': 'off' },
  },
  {
    // Tests read arbitrary JSON replies from the API under test.
    files: ['test/**'],
    rules: { '@typescript-eslint/no-explicit-any': 'off' },
  },
  {
    files: ['**/*.mjs', '**/*.js'],
    languageOptions: { globals: { process: 'readonly', console: 'readonly' } },
  },
);
