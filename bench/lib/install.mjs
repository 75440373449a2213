// Installs of the corpus app (shared/corpus/app) against a registry: `npm ci` and
// `pnpm install --frozen-lockfile`, each in a fresh copy of the app with an empty cache/store.
//
// npm: the corpus lockfile has no `resolved` URLs. With `resolved: true`, a copy of it gets
// `resolved` URLs on the registry under test (npm's usual case: tarballs only, no packument
// requests); with `resolved: false` it is used as is (npm fetches each packument, then its tarball).
// pnpm's lockfile stores only integrity, so it is used as is; pnpm builds the tarball URLs itself.
//
// `prune`: package names to drop from both lockfiles (with the edges to them), for registries that
// do not hold every package of the corpus; applied to every registry alike.

import { spawn } from 'node:child_process';
import { cpSync, mkdirSync, readFileSync, rmSync, writeFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { tarballPath } from './http.mjs';

function lockName(key, entry) {
  return entry.name || key.slice(key.lastIndexOf('node_modules/') + 'node_modules/'.length);
}

export function editNpmLock(lock, { registry, resolved, prune }) {
  const out = structuredClone(lock);
  for (const [key, entry] of Object.entries(out.packages)) {
    if (!key) continue;
    const name = lockName(key, entry);
    if (prune.has(name)) {
      delete out.packages[key];
      continue;
    }
    for (const field of ['dependencies', 'optionalDependencies', 'peerDependencies', 'devDependencies']) {
      if (entry[field]) for (const p of prune) delete entry[field][p];
    }
    if (resolved && entry.integrity && !entry.link) entry.resolved = registry + tarballPath(name, entry.version);
  }
  return out;
}

export function editPnpmLock(text, prune) {
  if (!prune.size) return text;
  const lines = text.split('\n');
  const out = [];
  let skipping = false;
  for (const line of lines) {
    const indent = line.length - line.trimStart().length;
    if (skipping) {
      if (line.trim() === '' || indent > 2) continue;
      skipping = false;
    }
    const key = /^ {2}'?(@?[^@'\s]+)@[^:]*'?:\s*(\{\})?$/.exec(line);
    if (key && prune.has(key[1])) {
      skipping = !key[2];
      continue;
    }
    const dep = /^ {6,}'?(@?[^'\s:]+)'?: /.exec(line);
    if (dep && indent >= 6 && prune.has(dep[1])) continue;
    out.push(line);
  }
  return out.join('\n');
}

function run(cmd, args, { cwd, env, cpu, logFile, timeoutMs = 600000 }) {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const child = spawn('/usr/bin/time', ['-f', '__CPU__ %U %S', 'taskset', '-c', String(cpu), cmd, ...args], {
      cwd,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const chunks = [];
    child.stdout.on('data', (c) => chunks.push(c));
    child.stderr.on('data', (c) => chunks.push(c));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      const log = Buffer.concat(chunks).toString('utf8');
      if (logFile) writeFileSync(logFile, log);
      if (code !== 0) return reject(new Error(`${cmd} ${args.join(' ')} exited ${code}:\n${log.slice(-2000)}`));
      const m = /__CPU__ ([\d.]+) ([\d.]+)/.exec(log);
      resolve({ ms, cpuSeconds: m ? Number(m[1]) + Number(m[2]) : 0 });
    });
  });
}

function cleanEnv(extra) {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) if (!/^npm_|^NPM_CONFIG_|^PNPM_/i.test(k)) env[k] = v;
  return { ...env, ...extra };
}

function countInstalled(dir) {
  let n = 0;
  const walk = (nm) => {
    let names;
    try {
      names = readdirSync(nm);
    } catch {
      return;
    }
    for (const e of names) {
      if (e.startsWith('.')) continue;
      if (e.startsWith('@')) {
        for (const s of readdirSync(join(nm, e))) {
          n++;
          walk(join(nm, e, s, 'node_modules'));
        }
      } else {
        n++;
        walk(join(nm, e, 'node_modules'));
      }
    }
  };
  walk(join(dir, 'node_modules'));
  return n;
}

function prepare({ appDir, work, registry, token }) {
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  cpSync(join(appDir, 'package.json'), join(work, 'package.json'));
  const host = new URL(registry).host;
  const npmrc = join(work, '.npmrc');
  writeFileSync(
    npmrc,
    [`registry=${registry}/`, `//${host}/:_authToken=${token}`, 'audit=false', 'fund=false', 'update-notifier=false', ''].join('\n'),
  );
  return npmrc;
}

/** `npm ci` in a fresh copy of the app with an empty cache; returns {ms, installed}. */
export async function npmCi({ appDir, work, registry, token, resolved, prune = new Set(), cpu = 1, npm = 'npm' }) {
  const npmrc = prepare({ appDir, work, registry, token });
  const lock = JSON.parse(readFileSync(join(appDir, 'package-lock.json'), 'utf8'));
  writeFileSync(join(work, 'package-lock.json'), JSON.stringify(editNpmLock(lock, { registry, resolved, prune }), null, 2));
  const cache = join(work, '.npm-cache');
  const { ms, cpuSeconds } = await run(npm, ['ci', '--userconfig', npmrc, '--cache', cache, '--no-audit', '--no-fund', '--loglevel=warn'], {
    cwd: work,
    env: cleanEnv({}),
    cpu,
    logFile: join(work, '..', `${work.split('/').pop()}.log`),
  });
  return { ms, cpuSeconds, installed: countInstalled(work) };
}

/** `pnpm install --frozen-lockfile` in a fresh copy of the app with an empty store; returns {ms, installed}. */
export async function pnpmInstall({ appDir, work, registry, token, prune = new Set(), cpu = 1, pnpm }) {
  const npmrc = prepare({ appDir, work, registry, token });
  writeFileSync(join(work, 'pnpm-lock.yaml'), editPnpmLock(readFileSync(join(appDir, 'pnpm-lock.yaml'), 'utf8'), prune));
  const { ms, cpuSeconds } = await run(
    process.execPath,
    [pnpm, 'install', '--frozen-lockfile', '--store-dir', join(work, '.pnpm-store'), '--cache-dir', join(work, '.pnpm-cache'), '--reporter=append-only'],
    {
      cwd: work,
      env: cleanEnv({ NPM_CONFIG_USERCONFIG: npmrc, PNPM_HOME: join(work, '.pnpm-home') }),
      cpu,
      logFile: join(work, '..', `${work.split('/').pop()}.log`),
    },
  );
  return { ms, cpuSeconds, installed: readdirSync(join(work, 'node_modules', '.pnpm')).filter((e) => !e.startsWith('.') && e !== 'node_modules' && e !== 'lock.yaml').length };
}
