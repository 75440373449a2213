// Starting, timing, measuring and stopping the servers under test: Packr, Verdaccio and the ceiling.
// Every server process is started through `taskset -c CPU` (taskset execs it, so the PID is the
// server's own) with its output in a log file.

import { spawn, execFileSync } from 'node:child_process';
import { openSync, closeSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import http from 'node:http';
import { join } from 'node:path';
import { request } from './http.mjs';

export const USER = 'bench';
export const PASSWORD = 'bench-password-123456';

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function probe(url) {
  return new Promise((resolve) => {
    const req = http.get(url, { agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
      res.on('error', () => resolve(0));
    });
    req.on('error', () => resolve(0));
    req.setTimeout(2000, () => req.destroy());
  });
}

/** Polls `url` until it answers 200; returns ms since `t0` (a process.hrtime.bigint()). */
export async function waitReady(url, t0, proc, timeoutMs = 60000) {
  for (;;) {
    if (proc && proc.exitCode !== null) throw new Error(`${url}: server exited with ${proc.exitCode} before it was ready`);
    if ((await probe(url)) === 200) return Number(process.hrtime.bigint() - t0) / 1e6;
    if (Number(process.hrtime.bigint() - t0) / 1e6 > timeoutMs) throw new Error(`${url}: not ready after ${timeoutMs} ms`);
    await sleep(1);
  }
}

/** {rssKiB, hwmKiB} of a live process. */
export function memory(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (key) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return { rssKiB: kib('VmRSS'), hwmKiB: kib('VmHWM') };
}

/** Samples VmRSS every `everyMs`; `stop()` returns the highest sample in KiB. */
export function rssSampler(pid, everyMs = 100) {
  let max = 0;
  const tick = () => {
    try {
      max = Math.max(max, memory(pid).rssKiB);
    } catch {
      /* process gone */
    }
  };
  tick();
  const timer = setInterval(tick, everyMs);
  return { stop: () => (clearInterval(timer), tick(), max) };
}

class Server {
  constructor({ kind, port, cpu, logFile, readyPath }) {
    Object.assign(this, { kind, port, cpu, logFile, readyPath });
    this.url = `http://127.0.0.1:${port}`;
    this.proc = null;
  }

  /** Spawns the server and waits until it is ready; returns the start-to-ready time in ms. */
  async start() {
    const [cmd, args, env] = this.command();
    const fd = openSync(this.logFile, 'a');
    const t0 = process.hrtime.bigint();
    this.proc = spawn('taskset', ['-c', String(this.cpu), cmd, ...args], {
      stdio: ['ignore', fd, fd],
      env: { ...process.env, ...env },
    });
    closeSync(fd);
    this.stopping = false;
    const proc = this.proc;
    this.exited = new Promise((resolve) => proc.once('exit', resolve));
    proc.once('exit', (code, signal) => {
      if (!this.stopping) process.stderr.write(`!! ${this.kind} (pid ${proc.pid}) exited unexpectedly: code ${code}, signal ${signal}\n`);
    });
    const ms = await waitReady(this.url + this.readyPath, t0, this.proc);
    this.pid = this.proc.pid;
    return ms;
  }

  async stop() {
    if (!this.proc || this.proc.exitCode !== null) return;
    this.stopping = true;
    this.proc.kill('SIGTERM');
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), 10000);
    await this.exited;
    clearTimeout(timer);
    this.proc = null;
  }

  memory() {
    return memory(this.pid);
  }

  /** The processes whose CPU is the server's (the PostgreSQL column adds the database's). */
  pids() {
    return [this.pid];
  }
}

export class Packr extends Server {
  /** `kind` names its column (`packr`, or `pg` on PostgreSQL: `env` then has PACKR_DATABASE_URL and
   * `cluster` is the PgCluster, whose processes count as the server's CPU). */
  constructor({ bin, dataDir, port, cpu, logFile, env = {}, kind = 'packr', cluster = null }) {
    super({ kind, port, cpu, logFile, readyPath: '/-/health' });
    Object.assign(this, { bin, dataDir, env, cluster });
  }

  pids() {
    return this.cluster ? [this.pid, ...this.cluster.pids()] : [this.pid];
  }

  command() {
    return [this.bin, ['serve', '--listen', `127.0.0.1:${this.port}`, '--data-dir', this.dataDir], this.env];
  }

  /** Creates the admin user and a token with the CLI (before the first start). */
  setup() {
    mkdirSync(this.dataDir, { recursive: true });
    const env = { ...process.env, ...this.env };
    execFileSync(this.bin, ['user', 'add', USER, '--password-stdin', '--role', 'admin', '--data-dir', this.dataDir], {
      input: PASSWORD + '\n',
      stdio: ['pipe', 'ignore', 'inherit'],
      env,
    });
    const out = execFileSync(this.bin, ['token', 'create', '--user', USER, '--role', 'admin', '--data-dir', this.dataDir], {
      stdio: ['ignore', 'pipe', 'inherit'],
      env,
    });
    this.token = out.toString('utf8').trim().split('\n').pop().trim();
    return this.token;
  }
}

export class Verdaccio extends Server {
  constructor({ nodeModules, dir, port, cpu, logFile }) {
    super({ kind: 'verdaccio', port, cpu, logFile, readyPath: '/-/ping' });
    Object.assign(this, { nodeModules, dir });
    this.config = join(dir, 'config.yaml');
    mkdirSync(join(dir, 'storage'), { recursive: true });
    // Storage in the run's directory, htpasswd auth with registration allowed, JWT API tokens (the
    // legacy AES tokens would re-check the bcrypt password on every request), no uplinks, big bodies,
    // and the log level of Verdaccio's shipped default config (`http`: one line per request).
    writeFileSync(
      this.config,
      [
        `storage: ${join(dir, 'storage')}`,
        'auth:',
        '  htpasswd:',
        `    file: ${join(dir, 'htpasswd')}`,
        '    max_users: 1000',
        'security:',
        '  api:',
        '    jwt:',
        '      sign:',
        '        expiresIn: 7d',
        'uplinks: {}',
        'packages:',
        "  '@*/*':",
        '    access: $authenticated',
        '    publish: $authenticated',
        "  '**':",
        '    access: $authenticated',
        '    publish: $authenticated',
        'max_body_size: 100mb',
        'log: { type: stdout, format: json, level: http }',
        '',
      ].join('\n'),
    );
  }

  command() {
    return [
      process.execPath,
      [join(this.nodeModules, 'verdaccio/bin/verdaccio'), '--config', this.config, '--listen', `127.0.0.1:${this.port}`],
      {},
    ];
  }

  /** Registers the user over HTTP (`npm adduser`'s request); needs the server running. */
  async setup() {
    const body = Buffer.from(JSON.stringify({ _id: `org.couchdb.user:${USER}`, name: USER, password: PASSWORD, type: 'user', roles: [] }));
    const res = await request(`${this.url}/-/user/org.couchdb.user:${USER}`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json', 'content-length': body.length },
      body,
    });
    if (res.status !== 201 && res.status !== 200) throw new Error(`verdaccio adduser: HTTP ${res.status} ${res.body}`);
    this.token = JSON.parse(res.body.toString('utf8')).token;
    return this.token;
  }
}

export class Ceiling extends Server {
  constructor({ bin, index, port, cpu, logFile }) {
    super({ kind: 'ceiling', port, cpu, logFile, readyPath: '/-/ping' });
    Object.assign(this, { bin, index });
    this.token = 'unused';
  }

  command() {
    return [this.bin, ['--listen', `127.0.0.1:${this.port}`, '--index', this.index], {}];
  }
}

/** s3s-fs (the S3 server the test suite uses): one bucket, a directory under `dir`; ready once it
 * accepts connections (it answers unsigned requests 403, so there is no 200 to wait for). */
export class S3sFs {
  static ACCESS_KEY = 'AKIAPACKRBENCH';
  static SECRET_KEY = 'packr-bench-secret-key';
  static REGION = 'us-east-1';

  constructor({ bin, dir, port, cpu, logFile, bucket = 'packr-bench' }) {
    Object.assign(this, { bin, dir, port, cpu, logFile, bucket });
    this.endpoint = `http://127.0.0.1:${port}`;
  }

  async start() {
    // s3s-fs serves each directory under its root as a bucket.
    mkdirSync(join(this.dir, this.bucket), { recursive: true });
    const fd = openSync(this.logFile, 'a');
    this.proc = spawn(
      'taskset',
      ['-c', String(this.cpu), this.bin, '--host', '127.0.0.1', '--port', String(this.port),
        '--access-key', S3sFs.ACCESS_KEY, '--secret-key', S3sFs.SECRET_KEY, this.dir],
      { stdio: ['ignore', fd, fd] },
    );
    closeSync(fd);
    this.exited = new Promise((resolve) => this.proc.once('exit', resolve));
    const t0 = Date.now();
    for (;;) {
      if (this.proc.exitCode !== null) throw new Error(`s3s-fs exited with ${this.proc.exitCode} (see ${this.logFile})`);
      if ((await probe(this.endpoint + '/')) !== 0) return;
      if (Date.now() - t0 > 20000) throw new Error('s3s-fs did not listen within 20 s');
      await sleep(20);
    }
  }

  /** The PACKR_* variables that put Packr's tarballs in this bucket. */
  env(prefix = 'tarballs') {
    return {
      PACKR_STORAGE: 's3',
      PACKR_S3_BUCKET: this.bucket,
      PACKR_S3_ENDPOINT: this.endpoint,
      PACKR_S3_REGION: S3sFs.REGION,
      PACKR_S3_PATH_STYLE: 'true',
      PACKR_S3_PREFIX: prefix,
      PACKR_S3_ACCESS_KEY_ID: S3sFs.ACCESS_KEY,
      PACKR_S3_SECRET_ACCESS_KEY: S3sFs.SECRET_KEY,
    };
  }

  async stop() {
    if (!this.proc || this.proc.exitCode !== null) return;
    this.proc.kill('SIGTERM');
    await this.exited;
  }
}
