// ESLint flat config. Besides the recommended TypeScript rules it enforces the dependency direction of every
// layer (docs/architecture.md "Dependency direction"):
//   cli -> (admin, client) -> broker -> (protocol, store, dataplane, transport) -> nothing of ours,
// with errors.ts, clock.ts, address.ts, tunnel-model.ts and config/ usable by all (config/ imports only
// errors.ts and the pure parts of dns/), dns/ importing nothing of ours, and src/protocol pure: no I/O modules, no timers, no clock reads, nothing of ours outside
// protocol/ but errors.ts and tunnel-model.ts.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const ioModules = ['node:net', 'node:dgram', 'node:fs', 'node:fs/promises', 'node:child_process', 'node:http'];

/** What each layer (a folder of src/) may not import. */
const forbidden = {
  protocol: ['broker', 'store', 'transport', 'dataplane', 'admin', 'cli', 'client', 'cluster', 'config'],
  store: ['broker', 'protocol', 'transport', 'dataplane', 'admin', 'cli', 'client', 'cluster'],
  dataplane: ['broker', 'protocol', 'store', 'transport', 'admin', 'cli', 'client', 'cluster'],
  transport: ['broker', 'store', 'admin', 'cli', 'client', 'cluster'],
  broker: ['admin', 'cli', 'client'],
  cluster: ['admin', 'cli', 'client'],
  admin: ['cli', 'client'],
  client: ['broker', 'store', 'admin', 'cli', 'cluster'],
  config: ['broker', 'protocol', 'store', 'transport', 'dataplane', 'admin', 'cli', 'client', 'cluster'],
  dns: ['broker', 'protocol', 'store', 'transport', 'dataplane', 'admin', 'cli', 'client', 'cluster', 'config'],
};

/** Import patterns naming a folder of src/ from any depth below src/. */
const patternsFor = (layers) => layers.flatMap((l) => [`../${l}/*`, `../../${l}/*`, `../../../${l}/*`]);

const layerRules = Object.entries(forbidden).map(([layer, layers]) => ({
  files: [`src/${layer}/**/*.ts`],
  rules: {
    'no-restricted-imports': [
      'error',
      {
        ...(layer === 'protocol'
          ? { paths: ioModules.map((name) => ({ name, message: 'src/protocol is sans-I/O (docs/style.md §1)' })) }
          : {}),
        patterns: [
          {
            group: patternsFor(layers),
            message: `dependencies point one way: src/${layer} may not import ${layers.join(', ')} (docs/architecture.md)`,
          },
        ],
      },
    ],
  },
}));

export default tseslint.config(
  { ignores: ['node_modules/**', 'build/**', 'data/**', 'artifacts/**', 'native/build/**', '.tmp/**', 'dist/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  ...layerRules,
  {
    files: ['src/protocol/**/*.ts'],
    rules: {
      'no-restricted-globals': [
        'error',
        { name: 'setTimeout', message: 'no timers in src/protocol' },
        { name: 'setInterval', message: 'no timers in src/protocol' },
      ],
      'no-restricted-properties': ['error', { object: 'Date', property: 'now', message: 'pass nowMs in' }],
    },
  },
  {
    // the shared modules import nothing of ours but each other
    files: ['src/errors.ts', 'src/clock.ts', 'src/address.ts', 'src/tunnel-model.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        { patterns: [{ group: ['./*/*'], message: 'shared modules import no layer' }] },
      ],
    },
  },
);
