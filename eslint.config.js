// Lint rules. The pure cores (consensus, subscriptions) must not reach the outside world:
// no node:* modules, no clock, no randomness, no timers, so the simulator can drive them.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const pureCoreBans = {
  'no-restricted-imports': ['error', { patterns: [{ group: ['node:*', 'fs', 'net', 'http2', 'crypto'], message: 'Pure cores do no I/O: pass effects out instead.' }] }],
  'no-restricted-properties': ['error',
    { object: 'Date', property: 'now', message: 'Time arrives as ticks.' },
    { object: 'Math', property: 'random', message: 'Randomness arrives as a seeded source.' },
    { object: 'performance', property: 'now', message: 'Time arrives as ticks.' },
  ],
  'no-restricted-globals': ['error', 'setTimeout', 'setInterval', 'setImmediate', 'queueMicrotask', 'process'],
};

export default tseslint.config(
  { ignores: ['dist/**', 'dist-dev/**', 'node_modules/**', 'data/**', 'bench/.data/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
      'no-constant-condition': ['error', { checkLoops: false }],
    },
  },
  { files: ['src/consensus/**/*.ts', 'src/subscriptions/core/**/*.ts'], rules: pureCoreBans },
  { files: ['bin/*', 'scripts/*.js'], languageOptions: { globals: { process: 'readonly', console: 'readonly', URL: 'readonly' } } },
);
