// ESLint flat config. Besides the recommended TypeScript rules it enforces docs/design.md's dependency
// direction: src/protocol is pure (no I/O modules, nothing of ours outside protocol/ and errors.ts).
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const ioModules = ['node:net', 'node:dgram', 'node:fs', 'node:fs/promises', 'node:child_process', 'node:http'];

export default tseslint.config(
  { ignores: ['node_modules/**', 'build/**', 'data/**', 'artifacts/**', 'native/build/**', '.tmp/**', 'dist/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  {
    files: ['src/protocol/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: ioModules.map((name) => ({ name, message: 'src/protocol is sans-I/O (docs/style.md §1)' })),
          patterns: [
            {
              group: ['../broker/*', '../store/*', '../transport/*', '../dataplane/*', '../admin/*', '../cli/*'],
              message: 'src/protocol imports nothing of ours outside protocol/ (docs/design.md)',
            },
          ],
        },
      ],
      'no-restricted-globals': ['error', { name: 'setTimeout', message: 'no timers in src/protocol' }],
      'no-restricted-properties': ['error', { object: 'Date', property: 'now', message: 'pass nowMs in' }],
    },
  },
  {
    files: ['src/store/**/*.ts', 'src/dataplane/**/*.ts', 'src/transport/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['../broker/*', '../admin/*', '../cli/*', '../client/*'],
              message: 'dependencies point one way (docs/design.md)',
            },
          ],
        },
      ],
    },
  },
);
