// Takes a snapshot of what Packr serves, for the ceiling server: every packument in its four
// representations (full/abbreviated x plain/gzip) and every tarball, bytes and response headers as
// Packr sent them. Packuments are fetched with `Host:` set to the ceiling's address, so the tarball
// URLs inside point at the ceiling (Packr builds them from the Host header).
//
// Writes DIR/index.json ({entries: [{path, kind, gzip, file, headers}]}) and DIR/bodies/*.

import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { agent as makeAgent, request, packagePath, tarballPath } from './http.mjs';

const ABBREVIATED = 'application/vnd.npm.install-v1+json';

function pairs(rawHeaders) {
  const out = [];
  for (let i = 0; i < rawHeaders.length; i += 2) out.push([rawHeaders[i].toLowerCase(), rawHeaders[i + 1]]);
  return out;
}

/**
 * `packages`: names; `tarballs`: [{name, version}]. Returns {entries, bytes, missing}.
 * A package or tarball the source does not have (404) is listed in `missing` and left out.
 */
export async function snapshot({ source, token, hostHeader, packages, tarballs, dir, concurrency = 8 }) {
  mkdirSync(join(dir, 'bodies'), { recursive: true });
  const agent = makeAgent(concurrency);
  const jobs = [];
  for (const name of packages) {
    for (const kind of ['full', 'abbrev']) {
      for (const gzip of [false, true]) {
        jobs.push({ path: packagePath(name), key: name.replace('/', '%2f'), kind, gzip, name });
      }
    }
  }
  for (const { name, version } of tarballs) jobs.push({ path: tarballPath(name, version), kind: 'raw', gzip: false, name });
  const entries = [];
  const missing = new Set();
  let bytes = 0;
  let n = 0;
  const queue = jobs.slice();
  async function worker() {
    for (let job = queue.shift(); job; job = queue.shift()) {
      const headers = { authorization: `Bearer ${token}`, host: hostHeader };
      if (job.kind !== 'raw') {
        headers.accept = job.kind === 'abbrev' ? ABBREVIATED : 'application/json';
        headers['accept-encoding'] = job.gzip ? 'gzip' : 'identity';
      }
      const res = await request(source + job.path, { headers, agent });
      if (res.status === 404) {
        missing.add(job.kind === 'raw' ? job.path : job.name);
        continue;
      }
      if (res.status !== 200) throw new Error(`snapshot GET ${job.path}: HTTP ${res.status}`);
      const file = `bodies/${n++}`;
      writeFileSync(join(dir, file), res.body);
      bytes += res.body.length;
      entries.push({
        path: decodeURIComponent(job.path),
        kind: job.kind,
        gzip: job.gzip,
        file,
        headers: pairs(res.rawHeaders),
      });
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker));
  agent.destroy();
  writeFileSync(join(dir, 'index.json'), JSON.stringify({ entries }));
  return { entries: entries.length, bytes, missing: [...missing] };
}
