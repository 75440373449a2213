// A synthetic package with many versions, for "the 300th version publishes as fast as the first" and
// for reads of a ~300-version packument. Each version looks like an ordinary small library: a
// package.json with dependencies, scripts and repository, an index.js and a README.

import { createHash } from 'node:crypto';
import { makeTgz } from './tar.mjs';
import { publishBody } from './load-corpus.mjs';

export const SYNTH_NAME = 'bench-synth-300';

function readme(version, name) {
  const para =
    'A small utility library used by the Packr benchmark. It formats, parses and validates ' +
    'things, and it has a handful of options that nobody reads about. ';
  return `# ${name}\n\nVersion ${version}.\n\n${para.repeat(6)}\n\n## Usage\n\n\`\`\`js\nconst lib = require('${name}');\nlib.format('x');\n\`\`\`\n`;
}

/** The i-th version (0-based): 1.0.0, 1.0.1 … 1.0.99, 1.1.0 …, so they sort as they are numbered. */
export function synthVersion(i) {
  return `1.${Math.floor(i / 100)}.${i % 100}`;
}

/** Prepared publish bodies ({name, version, body}) for `count` versions of `name`, in order. */
export function synthBodies(registry, count = 300, name = SYNTH_NAME) {
  const out = [];
  for (let i = 0; i < count; i++) {
    const version = synthVersion(i);
    const manifest = {
      name,
      version,
      description: 'Synthetic package with many versions for the Packr benchmark',
      main: 'index.js',
      scripts: { test: 'node test.js', lint: 'eslint .' },
      repository: { type: 'git', url: `git+https://example.com/bench/${name}.git` },
      keywords: ['bench', 'synthetic', 'format', 'parse'],
      author: 'Bench <bench@example.com>',
      license: 'MIT',
      engines: { node: '>=18' },
      dependencies: { debug: '^4.3.0', ms: '^2.1.0', 'escape-string-regexp': '^4.0.0' },
      devDependencies: { eslint: '^8.0.0', jest: '^29.0.0' },
    };
    const index = `'use strict';\n// ${name}@${version}\n` +
      `module.exports.format = (x) => String(x).padStart(${(i % 17) + 3});\n`.repeat(20);
    const text = readme(version, name);
    const tgz = makeTgz({
      'package/package.json': JSON.stringify(manifest, null, 2) + '\n',
      'package/index.js': index,
      'package/README.md': text,
    });
    const integrity = 'sha512-' + createHash('sha512').update(tgz).digest('base64');
    const shasum = createHash('sha1').update(tgz).digest('hex');
    const body = publishBody({
      registry, name, version, tgz, integrity, shasum, access: null, tag: 'latest',
      manifest, readme: text, readmeFilename: 'README.md',
    });
    out.push({ name, version, body, size: tgz.length });
  }
  return out;
}
