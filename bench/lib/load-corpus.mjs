// Publishes the real corpus (../../shared/corpus by default) into a registry the way `npm publish <tgz>`
// would: one PUT per version, package.json read from the tarball itself (whatever its top folder is
// called), integrity and shasum from the manifest, versions of a package in semver order.
//
// CLI: node bench/lib/load-corpus.mjs REGISTRY_URL TOKEN [--concurrency N] [--corpus DIR]
// Tags: `latest`, or `next` for prerelease versions (as `npm publish --tag next` would; the tarballs'
// own publishConfig.tag values are overridden, as --tag overrides them).

import { readFileSync } from 'node:fs';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readPackage } from './tar.mjs';
import { compare, isPrerelease } from './semver.mjs';
import { agent as makeAgent, request, packagePath } from './http.mjs';

export const DEFAULT_CORPUS = resolve(dirname(fileURLToPath(import.meta.url)), '../../../shared/corpus');

const NODE_VERSION = process.versions.node;
const NPM_VERSION = '11.19.1';

/** The JSON body of `npm publish` for one version, as a Buffer. */
export function publishBody({ registry, name, version, tgz, integrity, shasum, access, tag, manifest, readme, readmeFilename }) {
  if (!manifest) ({ manifest, readme, readmeFilename } = readPackage(tgz));
  const versionDoc = {
    ...manifest,
    ...(readme ? { readme, readmeFilename } : {}),
    _id: `${name}@${version}`,
    _nodeVersion: NODE_VERSION,
    _npmVersion: NPM_VERSION,
    dist: { integrity, shasum, tarball: `${registry.replace(/^https:/, 'http:')}/${name}/-/${name}-${version}.tgz` },
  };
  const doc = {
    _id: name,
    name,
    ...(manifest.description ? { description: manifest.description } : {}),
    'dist-tags': { [tag]: version },
    versions: { [version]: versionDoc },
    access: access ?? null,
    _attachments: {
      [`${name}-${version}.tgz`]: {
        content_type: 'application/octet-stream',
        data: tgz.toString('base64'),
        length: tgz.length,
      },
    },
  };
  return Buffer.from(JSON.stringify(doc));
}

/** Reads the corpus and prepares every publish body, grouped by package in semver order. */
export function prepareCorpus(registry, corpusDir = DEFAULT_CORPUS) {
  const manifest = JSON.parse(readFileSync(join(corpusDir, 'manifest.json'), 'utf8'));
  const byName = new Map();
  for (const t of manifest.tarballs) {
    if (!byName.has(t.name)) byName.set(t.name, []);
    byName.get(t.name).push(t);
  }
  const groups = [];
  for (const [name, list] of byName) {
    list.sort((a, b) => compare(a.version, b.version));
    groups.push(
      list.map((t) => {
        const tgz = readFileSync(join(corpusDir, 'tarballs', t.filename));
        const body = publishBody({
          registry,
          name,
          version: t.version,
          tgz,
          integrity: t.integrity,
          shasum: t.shasum,
          access: t.publishConfig?.access === 'public' ? 'public' : null,
          tag: isPrerelease(t.version) ? 'next' : 'latest',
        });
        return { name, version: t.version, body };
      }),
    );
  }
  return groups;
}

/** PUTs one prepared body; throws with the server's answer on anything but 2xx. */
export async function publishOne(registry, token, { name, version, body }, agent) {
  const res = await request(registry + packagePath(name), {
    method: 'PUT',
    headers: {
      'content-type': 'application/json',
      'content-length': body.length,
      authorization: `Bearer ${token}`,
      'npm-command': 'publish',
      'user-agent': `npm/${NPM_VERSION} node/v${NODE_VERSION} linux x64 workspaces/false`,
    },
    body,
    agent,
  });
  if (res.status < 200 || res.status > 299) {
    throw new Error(`publish ${name}@${version}: HTTP ${res.status} ${res.body.toString('utf8').slice(0, 300)}`);
  }
}

/** Publishes prepared groups with `concurrency` packages in flight; returns {versions, ms, errors}. */
export async function publishGroups(registry, token, groups, concurrency) {
  const agent = makeAgent(concurrency);
  const queue = groups.slice();
  const errors = [];
  let versions = 0;
  const started = process.hrtime.bigint();
  async function worker() {
    for (let group = queue.shift(); group; group = queue.shift()) {
      for (const item of group) {
        try {
          await publishOne(registry, token, item, agent);
          versions++;
        } catch (e) {
          errors.push(e.message);
          break; // later versions of the package would only fail the same way
        }
      }
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker));
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  agent.destroy();
  return { versions, ms, errors };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const opt = (flag, def) => {
    const i = args.indexOf(flag);
    return i === -1 ? def : args.splice(i, 2)[1];
  };
  const concurrency = Number(opt('--concurrency', '8'));
  const corpus = opt('--corpus', DEFAULT_CORPUS);
  const [registry, token] = args;
  if (!registry || !token) {
    console.error('usage: node bench/lib/load-corpus.mjs REGISTRY_URL TOKEN [--concurrency N] [--corpus DIR]');
    process.exit(2);
  }
  const base = registry.replace(/\/+$/, '');
  const groups = prepareCorpus(base, corpus);
  const r = await publishGroups(base, token, groups, concurrency);
  for (const e of r.errors) console.error(e);
  console.log(`published ${r.versions} versions in ${(r.ms / 1000).toFixed(2)} s (${(r.versions / (r.ms / 1000)).toFixed(1)} versions/s), ${r.errors.length} errors`);
  process.exit(r.errors.length ? 1 : 0);
}
