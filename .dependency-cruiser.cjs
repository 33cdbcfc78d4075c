// The import order of DESIGN §2, checked by `npm run lint` (dependency-cruiser):
//
//   libs → core → config → telemetry → vsm → upstream → routing → pool → session → cluster
//        → policy → transports → ops → app
//
// A file may import its own layer and the layers to its left, never one to its right; nothing
// may form an import cycle (type-only imports count: they shape the design just the same);
// libs/ never imports src/ or test/; unit specs in src/ never import test/ (what they share is in
// a testing/ folder, which only specs import).
//
// No exceptions are listed: a new upward import or cycle fails `npm run lint` (npm run layers).

// Each layer and the paths that belong to it (a path belongs to the first layer that matches).
const layers = [
  ['libs', '^libs/'],
  ['core', '^src/core/'],
  ['config', '^src/config/'],
  ['telemetry', '^src/telemetry/'],
  ['vsm', '^src/vsm/'],
  ['upstream', '^src/upstream/'],
  ['routing', '^src/routing/'],
  ['pool', '^src/pool/'],
  ['session', '^src/session/'],
  ['cluster', '^src/cluster/'],
  ['policy', '^src/policy/'],
  ['transports', '^src/transports/'],
  ['ops', '^src/ops/'],
  ['app', '^src/[^/]+\\.ts$'],
];

const pathsOf = (list) => list.map(([, pattern]) => pattern);

const upwardRules = layers.slice(0, -1).map(([name, pattern], i) => {
  const below = layers.slice(0, i);
  const allowed = layers.slice(0, i + 1);
  return {
    name: `layer-${name}`,
    severity: 'error',
    comment: `${name} may import only: ${allowed.map(([n]) => n).join(', ')}`,
    from: { path: pattern, pathNot: pathsOf(below) },
    to: { path: pathsOf(layers.slice(i + 1)), pathNot: pathsOf(allowed) },
  };
});

module.exports = {
  forbidden: [
    ...upwardRules,
    {
      name: 'no-cycles',
      severity: 'error',
      comment: 'an import cycle: the files cannot be understood, tested or loaded one at a time',
      from: { path: '^(src|libs)/' },
      to: { circular: true },
    },
    {
      name: 'libs-stand-alone',
      severity: 'error',
      comment: 'libs/ packages are published on their own: they never import the gateway or its tests',
      from: { path: '^libs/' },
      to: { path: '^(src|test|bench)/' },
    },
    {
      name: 'testing-kit-for-specs-only',
      severity: 'error',
      comment: 'testing/ folders hold what unit specs share; the gateway itself never imports them',
      from: { path: '^src/', pathNot: ['\\.spec\\.ts$', '^src/testing/|^src/[a-z-]+/testing/'] },
      to: { path: '^src/testing/|^src/[a-z-]+/testing/' },
    },
    {
      name: 'testing-kit-stands-alone',
      severity: 'error',
      comment: "the spec kit imports only libs/, so any layer's specs can use it",
      from: { path: '^src/testing/' },
      to: { path: '^(src|test|bench)/', pathNot: '^src/testing/' },
    },
    {
      name: 'specs-stay-in-src',
      severity: 'error',
      comment: 'unit specs beside the code use only src/ and libs/; servers and fixtures belong to test/',
      from: { path: '^src/' },
      to: { path: '^(test|bench)/' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '(^|/)(dist|node_modules)/' },
    tsConfig: { fileName: 'tsconfig.json' },
    tsPreCompilationDeps: true,
    // The gateway's own code only: node_modules and node: builtins are not layered.
    includeOnly: '^(src|libs|test|bench)/',
  },
};
