import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import prettier from 'eslint-config-prettier';
import globals from 'globals';

export default tseslint.config(
  { ignores: ['dist/**', 'libs/*/dist/**', 'node_modules/**', 'bench/results/**', 'conformance-results/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  prettier,
  {
    languageOptions: { globals: { ...globals.node } },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/no-explicit-any': 'off',
      'no-console': ['error', { allow: ['error', 'warn'] }],
    },
  },
  {
    // Transports see sessions, never the outbox (CONVENTIONS 17): Session.lastSeq and
    // Session.checkResumable() say what a transport needs of it.
    files: ['src/transports/**/*.ts'],
    rules: {
      'no-restricted-syntax': [
        'error',
        {
          selector: "MemberExpression[property.name='outbox']",
          message: "Transports don't read a session's outbox: ask the Session (lastSeq, checkResumable).",
        },
      ],
    },
  },
  {
    files: ['scripts/**', 'test/**', 'bench/**', 'docker/**'],
    rules: { 'no-console': 'off' },
  },
);
