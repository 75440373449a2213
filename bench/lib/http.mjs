// Small HTTP helpers on node:http: raw bytes (no automatic decompression), keep-alive agents.

import http from 'node:http';

export function agent(maxSockets = 8) {
  return new http.Agent({ keepAlive: true, maxSockets });
}

/** `request(url, {method, headers, body, agent})` → `{status, headers, rawHeaders, body: Buffer}`. */
export function request(url, { method = 'GET', headers = {}, body, agent: a, timeoutMs = 120000 } = {}) {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const req = http.request(
      { host: u.hostname, port: u.port, path: u.pathname + u.search, method, headers, agent: a ?? false },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode, headers: res.headers, rawHeaders: res.rawHeaders, body: Buffer.concat(chunks) }),
        );
        res.on('error', reject);
      },
    );
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`timeout after ${timeoutMs} ms: ${method} ${url}`)));
    req.on('error', reject);
    if (body) req.end(body);
    else req.end();
  });
}

/** The URL path of a package document: `/name` or `/@scope%2fname`. */
export function packagePath(name) {
  return '/' + name.replace('/', '%2f');
}

/** The URL path of a tarball: `/name/-/bare-version.tgz` (`/@scope/name/-/name-version.tgz`). */
export function tarballPath(name, version) {
  const bare = name.startsWith('@') ? name.slice(name.indexOf('/') + 1) : name;
  return `/${name}/-/${bare}-${version}.tgz`;
}
