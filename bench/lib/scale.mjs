// The scale phase (issue 12): a registry of 50,000 packages (20 of them with 100 versions, 2 with
// 3,000), published through the HTTP API, then restarted and read the way a big registry is read:
// every packument once, cold; random reads over all of them with the default cache; a hot set of 500
// before and after the random reads; RSS after all that; start-to-ready; the 3,000-version package
// read cold and published into.
//
// Part of bench/run.sh (skip it with --skip-scale); alone, without Verdaccio or the corpus:
//   bench/run.sh --scale-only [--scale-packages 5000] ...
//   node bench/lib/scale.mjs --packr target/release/packr [--scale-packages N] [--scale-big-versions N]
//     [--scale-hot 500] [--scale-seconds 4] [--scale-random-seconds 8] [--scale-cold-seconds 15]
//     [--scale-cache-bytes N] [--scale-big-seconds 3]
//     [--work DIR] [--keep-work]

import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createHash } from 'node:crypto';
import { makeTgz } from './tar.mjs';
import { publishBody, publishOne } from './load-corpus.mjs';
import { synthVersion } from './synth.mjs';
import { agent as makeAgent, request, packagePath } from './http.mjs';
import { Packr, freePort, memory } from './servers.mjs';
import { wrk } from './wrk.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
const ABBREVIATED = 'application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8, */*';
const DEFAULT_CACHE_BYTES = 32 * 1024 * 1024;

/** Options of the phase, from `--scale-*` flags (shared by bench.mjs and the CLI below). */
export function scaleOptions(opt) {
  return {
    packages: Number(opt('scale-packages', '50000')),
    midPackages: Number(opt('scale-mid-packages', '20')),
    midVersions: Number(opt('scale-mid-versions', '100')),
    bigPackages: Number(opt('scale-big-packages', '2')),
    bigVersions: Number(opt('scale-big-versions', '3000')),
    hot: Number(opt('scale-hot', '500')),
    seconds: Number(opt('scale-seconds', '4')),
    randomSeconds: Number(opt('scale-random-seconds', '8')),
    publishConcurrency: Number(opt('scale-concurrency', '8')),
    // Long enough for a few hundred reads: with 40 (sessions 5-7) the "p99" was the slowest one.
    bigSeconds: Number(opt('scale-big-seconds', '3')),
    // Long enough to read all 50,000 once at today's cold rate; every read is a miss however long.
    coldSeconds: Number(opt('scale-cold-seconds', '15')),
    // Unset: Packr's default (32 MiB), which the RSS target is about.
    cacheBytes: opt('scale-cache-bytes', ''),
  };
}

const nameOf = (i) => `scale-${String(i).padStart(5, '0')}`;
const midName = (i) => `scale-mid-${String(i).padStart(2, '0')}`;
const bigName = (i) => `scale-big-${i}`;

/** A publish body for one version of a small library, with a tarball of its own. */
function bodyFor(name, i) {
  const version = synthVersion(i);
  const manifest = {
    name,
    version,
    description: `A small library (${name}), one of many in the Packr scale benchmark`,
    main: 'index.js',
    scripts: { test: 'node test.js' },
    repository: { type: 'git', url: `git+https://example.com/scale/${name}.git` },
    keywords: ['bench', 'scale'],
    license: 'MIT',
    dependencies: { debug: '^4.3.0', ms: '^2.1.0' },
  };
  const readme = `# ${name}\n\nVersion ${version}. A small library in the Packr scale benchmark.\n`;
  const tgz = makeTgz({
    'package/package.json': JSON.stringify(manifest, null, 2) + '\n',
    'package/index.js': `'use strict';\nmodule.exports = ${JSON.stringify(`${name}@${version}`)};\n`,
    'package/README.md': readme,
  });
  const integrity = 'sha512-' + createHash('sha512').update(tgz).digest('base64');
  const shasum = createHash('sha1').update(tgz).digest('hex');
  const body = publishBody({
    registry: 'http://registry.invalid', name, version, tgz, integrity, shasum, access: null, tag: 'latest',
    manifest, readme, readmeFilename: 'README.md',
  });
  return { name, version, body };
}

/** Publishes `groups` ([name, versions]) with `concurrency` packages in flight, bodies built as they go. */
async function publishAll(url, token, groups, concurrency, log) {
  const agent = makeAgent(concurrency);
  const queue = groups.slice();
  let versions = 0;
  const errors = [];
  const t0 = process.hrtime.bigint();
  let lastLog = Date.now();
  async function worker() {
    for (let g = queue.shift(); g; g = queue.shift()) {
      const [name, count] = g;
      for (let i = 0; i < count; i++) {
        try {
          await publishOne(url, token, bodyFor(name, i), agent);
          versions++;
        } catch (e) {
          errors.push(e.message);
          break;
        }
        if (Date.now() - lastLog > 10000) {
          lastLog = Date.now();
          log(`  ${versions} versions published, ${queue.length} packages to go`);
        }
      }
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker));
  agent.destroy();
  return { versions, errors, ms: Number(process.hrtime.bigint() - t0) / 1e6 };
}

// wrk script. SCALE_MODE=random: paths of SCALE_PATHS chosen at random. SCALE_MODE=cold: the paths
// in order, and once they are all read, again with a Host header of a new name on each pass: the
// cache keeps one rendering per package, for the base URL last asked, so every read stays a miss
// however long the run (wrk runs for its whole duration even when a script stops sending).
// SCALE_MODE=hosts: as cold, with a new Host from the first pass on.
const LUA = `
local paths = {}
for line in io.lines(os.getenv("SCALE_PATHS")) do paths[#paths + 1] = line end
local mode = os.getenv("SCALE_MODE")
local cold = mode == "cold" or mode == "hosts"
local default_host_reads = mode == "hosts" and 0 or #paths
local n = #paths
local i = 0
local headers = nil
math.randomseed(tonumber(os.getenv("SCALE_SEED") or "1"))
request = function()
  if not cold then
    return wrk.format(nil, paths[math.random(n)])
  end
  i = i + 1
  if i > default_host_reads and (i - 1) % n == 0 then
    headers = {}
    for k, v in pairs(wrk.headers) do headers[k] = v end
    headers["Host"] = "pass-" .. math.floor((i - 1) / n) .. ".scale.invalid"
  end
  return wrk.format(nil, paths[(i - 1) % n + 1], headers)
end
`;

function shuffled(xs, seed = 12) {
  const a = xs.slice();
  let x = seed;
  for (let i = a.length - 1; i > 0; i--) {
    x = (x * 1103515245 + 12345) % 2147483648;
    const j = x % (i + 1);
    [a[i], a[j]] = [a[j], a[i]];
  }
  return a;
}

const median = (xs) => {
  const s = xs.filter(Number.isFinite).sort((a, b) => a - b);
  return s.length ? s[s.length >> 1] : NaN;
};
const f = (x, d = 1) => (Number.isFinite(x) ? (Math.abs(x) >= 1000 ? Math.round(x).toLocaleString('en-US') : x.toFixed(d)) : 'n/a');

/**
 * Runs the phase. `bin`: a Packr binary; `work`: a directory for its data; servers on `serverCpu`,
 * wrk and the loader on `clientCpu`. Returns rows in bench.mjs's shape ({section, figure, values,
 * cells, target, note, noRatio}).
 */
export async function scalePhase({ bin, work, serverCpu = 0, clientCpu = 1, options: S, log = console.error }) {
  const section = `Scale: ${S.packages.toLocaleString('en-US')} packages (Packr alone)`;
  const rows = [];
  const add = (r) => {
    rows.push({ section, noRatio: true, ...r });
    log(`  ${r.figure}: ${r.cells?.packr ?? f(r.values.packr)}${r.target ? ` (${r.target.text}: ${r.target.check(r.values) ? 'PASS' : 'FAIL'})` : ''}`);
  };
  const env = S.cacheBytes ? { PACKR_CACHE_BYTES: String(S.cacheBytes) } : {};
  const cacheBytes = S.cacheBytes ? Number(S.cacheBytes) : DEFAULT_CACHE_BYTES;
  const dataDir = join(work, 'packr-scale');
  const port = await freePort();
  const newServer = () => new Packr({ bin, dataDir, port, cpu: serverCpu, logFile: join(work, 'packr-scale.log'), env: { RUST_LOG: 'warn', ...env } });

  // 1. Generate and publish.
  const small = S.packages - S.midPackages - S.bigPackages;
  const groups = [];
  for (let i = 0; i < S.bigPackages; i++) groups.push([bigName(i), S.bigVersions]);
  for (let i = 0; i < S.midPackages; i++) groups.push([midName(i), S.midVersions]);
  for (let i = 0; i < small; i++) groups.push([nameOf(i), 1]);
  const total = groups.reduce((n, [, c]) => n + c, 0);
  let server = newServer();
  const token = server.setup();
  await server.start();
  log(`scale: publishing ${S.packages} packages (${total} versions) at concurrency ${S.publishConcurrency}`);
  const published = await publishAll(server.url, token, groups, S.publishConcurrency, log);
  if (published.errors.length) log(`  ${published.errors.length} publishes refused: ${published.errors.slice(0, 3).join(' | ')}`);
  add({
    figure: `publish ${S.packages.toLocaleString('en-US')} packages, ${total.toLocaleString('en-US')} versions (versions/s)`,
    values: { packr: published.versions / (published.ms / 1000) },
    target: { text: `all ${total} accepted`, check: () => published.versions === total },
    note: `${published.versions} accepted in ${f(published.ms / 1000)} s at concurrency ${S.publishConcurrency}`,
  });

  // 2. Restart: start-to-ready with everything loaded.
  await server.stop();
  const ready = [];
  for (let i = 0; i < 3; i++) {
    server = newServer();
    ready.push(await server.start());
    if (i < 2) await server.stop();
  }
  add({
    figure: `start-to-ready at ${S.packages.toLocaleString('en-US')} packages (ms, median of 3)`,
    values: { packr: median(ready) },
    cells: { packr: `${f(median(ready))} (${ready.map((x) => f(x)).join(', ')})` },
    lowerIsBetter: true,
    target: { text: '< 100 ms', check: (v) => v.packr < 100 },
  });
  await new Promise((r) => setTimeout(r, 1000));
  const idleRss = memory(server.pid).rssKiB / 1024;

  const headers = { authorization: `Bearer ${token}`, accept: ABBREVIATED, 'accept-encoding': 'gzip' };
  const lua = join(work, 'scale.lua');
  writeFileSync(lua, LUA);
  const pathsFile = (label, names) => {
    const file = join(work, `scale-${label}.txt`);
    writeFileSync(file, names.map(packagePath).join('\n') + '\n');
    return file;
  };
  const run = ({ paths, mode, connections, seconds }) =>
    wrk({ url: server.url, headers, connections, seconds, cpu: clientCpu, script: lua, env: { SCALE_PATHS: paths, SCALE_MODE: mode } });
  const bad = (r) => r.non2xx3xx + r.socketErrors;

  // 3. Cold: every packument once, in shuffled order, 16 connections.
  const all = groups.map(([name]) => name);
  log(`scale: cold reads of all ${all.length} packuments, c16`);
  const cold = await run({ paths: pathsFile('all-shuffled', shuffled(all)), mode: 'cold', connections: 16, seconds: S.coldSeconds });

  // 4. The warm reference: one small package, cached, on this server (c16 and c64).
  const refName = nameOf(Math.max(0, small - 1));
  const refPaths = pathsFile('ref', [refName]);
  const warm = {};
  for (const c of [16, 64]) {
    await run({ paths: refPaths, mode: 'random', connections: c, seconds: 1 });
    const rounds = [];
    for (let i = 0; i < 2; i++) rounds.push(await run({ paths: refPaths, mode: 'random', connections: c, seconds: S.seconds }));
    warm[c] = rounds.sort((a, b) => b.rps - a.rps)[0];
  }
  add({
    figure: 'reference: one cached small packument, abbreviated+gzip, c16 / c64 (req/s)',
    values: { packr: warm[64].rps },
    cells: { packr: `${f(warm[16].rps)} (p99 ${f(warm[16].p99ms, 2)} ms) / ${f(warm[64].rps)} (p99 ${f(warm[64].p99ms, 2)} ms)` },
    note: 'the cached rate the scale targets compare with: best of 2 rounds, same server, same run',
  });
  add({
    figure: 'cold: every packument once, abbreviated+gzip, c16 (req/s)',
    values: { packr: cold.rps },
    cells: { packr: `${f(cold.rps)} (p50 ${f(cold.p50ms, 2)} ms, p99 ${f(cold.p99ms, 2)} ms)` },
    target: {
      text: '≥ 0.5x the cached rate at c16, p99 < 5 ms',
      check: (v) => v.packr >= 0.5 * warm[16].rps && cold.p99ms < 5,
    },
    note: `${cold.requests} reads in ${S.coldSeconds} s, all misses (${cold.requests >= all.length ? 'every packument read at least once; later passes with a new Host each' : `${f((100 * cold.requests) / all.length, 0)}% of the packuments`}); ${bad(cold)} bad statuses or socket errors; ${f(cold.rps / warm[16].rps, 2)}x the cached rate at c16`,
  });

  // 5. Hot set before, random over everything, hot set after (c64).
  const hotNames = shuffled(all.filter((n) => /^scale-\d+$/.test(n)), 99).slice(0, S.hot);
  const hotPaths = pathsFile('hot', hotNames);
  const allPaths = pathsFile('all', all);
  log(`scale: hot set of ${hotNames.length}, then random reads over all, then the hot set again (c64)`);
  await run({ paths: hotPaths, mode: 'random', connections: 64, seconds: 1 });
  const hotBefore = await run({ paths: hotPaths, mode: 'random', connections: 64, seconds: S.seconds });
  const random = await run({ paths: allPaths, mode: 'random', connections: 64, seconds: S.randomSeconds });
  const hotAfter = await run({ paths: hotPaths, mode: 'random', connections: 64, seconds: S.seconds });
  const hotAgain = await run({ paths: hotPaths, mode: 'random', connections: 64, seconds: S.seconds });
  add({
    figure: `random reads over all ${all.length} packuments, c64, ${S.randomSeconds} s (req/s)`,
    values: { packr: random.rps },
    cells: { packr: `${f(random.rps)} (p99 ${f(random.p99ms, 2)} ms)` },
    target: { text: '≥ 0.5x the cached rate at c64', check: (v) => v.packr >= 0.5 * warm[64].rps },
    note: `${f(random.rps / warm[64].rps, 2)}x the cached rate; ${bad(random)} bad statuses or socket errors`,
  });
  add({
    figure: `hot set of ${hotNames.length}: before the random reads / right after / again (req/s)`,
    values: { packr: hotAfter.rps },
    cells: { packr: `${f(hotBefore.rps)} / ${f(hotAfter.rps)} / ${f(hotAgain.rps)} (p99 ${f(hotBefore.p99ms, 2)} / ${f(hotAfter.p99ms, 2)} / ${f(hotAgain.p99ms, 2)} ms)` },
    target: { text: '≥ 0.9x before, right after', check: (v) => v.packr >= 0.9 * hotBefore.rps },
    note: `right after the random reads: ${f(hotAfter.rps / hotBefore.rps, 2)}x before; each pass ${S.seconds} s`,
  });

  // 6. RSS after the read phases, and again once the idle blocking threads have exited (tokio keeps
  //    them 10 s) and the allocator has returned freed pages.
  const mem = memory(server.pid);
  const rss = mem.rssKiB / 1024;
  const detail = () => {
    const status = readFileSync(`/proc/${server.pid}/status`, 'utf8');
    const field = (k) => new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(status)?.[1];
    return `anon ${f(Number(field('RssAnon')) / 1024)}, file ${f(Number(field('RssFile')) / 1024)} MiB, ${field('Threads')} threads`;
  };
  const rightAfter = detail();
  await new Promise((r) => setTimeout(r, 12000));
  const settled = memory(server.pid).rssKiB / 1024;
  const settledDetail = detail();
  const limit = cacheBytes / 2 ** 20 + 40;
  add({
    figure: `RSS after the read phases (MiB), PACKR_CACHE_BYTES ${f(cacheBytes / 2 ** 20, 0)} MiB`,
    values: { packr: rss },
    cells: { packr: `${f(rss)} (12 s later ${f(settled)}; peak ${f(mem.hwmKiB / 1024)}; idle after restart ${f(idleRss)})` },
    note: `right after the reads: ${rightAfter}; 12 s later: ${settledDetail}`,
    lowerIsBetter: true,
    target: {
      text: `< cache + 40 MiB (${f(limit, 0)})${cacheBytes === DEFAULT_CACHE_BYTES ? ', < 100 MiB' : ''}`,
      check: (v) => v.packr < limit && (cacheBytes !== DEFAULT_CACHE_BYTES || v.packr < 100),
    },
  });

  // 7. The 3,000-version packages: cold reads, one at a time through wrk (a Host the cache has no
  //    rendering for makes every read a miss), and publishing into them.
  if (S.bigPackages > 0) {
    const bigPaths = pathsFile('big', Array.from({ length: S.bigPackages }, (_, i) => bigName(i)));
    const big = await run({ paths: bigPaths, mode: 'hosts', connections: 1, seconds: S.bigSeconds });
    if (bad(big)) throw new Error(`cold reads of the ${S.bigVersions}-version packages: ${bad(big)} bad statuses or socket errors`);
    add({
      figure: `${S.bigVersions}-version package, cold abbreviated+gzip read (ms, p99 of ${big.requests})`,
      values: { packr: big.p99ms },
      cells: { packr: `${f(big.p99ms, 2)} (p50 ${f(big.p50ms, 2)})` },
      lowerIsBetter: true,
      target: { text: '< 20 ms', check: (v) => v.packr < 20 },
      note: `wrk, one connection for ${S.bigSeconds} s, each request with a Host header the cache holds no rendering for`,
    });

    const publishTimes = async (name, from, count) => {
      const agent = makeAgent(1);
      const out = [];
      for (let i = from; i < from + count; i++) {
        const t = process.hrtime.bigint();
        await publishOne(server.url, token, bodyFor(name, i), agent);
        out.push(Number(process.hrtime.bigint() - t) / 1e6);
      }
      agent.destroy();
      return out;
    };
    const fresh = 'scale-fresh';
    await publishTimes(fresh, 0, 1);
    const second = await publishTimes(fresh, 1, 5);
    const next = await publishTimes(bigName(0), S.bigVersions, 5);
    add({
      figure: `publish version ${S.bigVersions + 1} vs version 2 (ms, median of 5)`,
      values: { packr: median(next) },
      cells: { packr: `${f(median(next), 2)} vs ${f(median(second), 2)}` },
      lowerIsBetter: true,
      target: { text: '≤ 2x version 2', check: (v) => v.packr <= 2 * median(second) },
      note: `versions ${S.bigVersions + 1}-${S.bigVersions + 5} of ${bigName(0)} vs versions 2-6 of a new package; ${f(median(next) / median(second), 2)}x`,
    });
  }
  await server.stop();
  return rows;
}

// ---------------------------------------------------------------- CLI

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const argv = process.argv.slice(2);
  const opt = (name, def) => {
    const i = argv.indexOf(`--${name}`);
    if (i === -1) return def;
    if (typeof def === 'boolean') return true;
    return argv[i + 1];
  };
  const packr = resolve(opt('packr', resolve(HERE, '../../target/release/packr')));
  const work = opt('work', '') ? resolve(opt('work', '')) : mkdtempSync(join(tmpdir(), 'packr-scale-'));
  mkdirSync(work, { recursive: true });
  // A private copy, so a rebuild during the run cannot swap it (see bench.mjs).
  const bin = join(work, 'packr_bench');
  copyFileSync(packr, bin);
  execFileSync('chmod', ['+x', bin]);
  execFileSync('taskset', ['-a', '-p', '-c', '1', String(process.pid)], { stdio: 'ignore' });
  const T0 = Date.now();
  const log = (m) => process.stderr.write(`[${((Date.now() - T0) / 1000).toFixed(0).padStart(4)}s] ${m}\n`);
  const rows = await scalePhase({ bin, work, options: scaleOptions(opt), log });
  const lines = ['| figure | Packr | target: result |', '|---|---|---|'];
  for (const r of rows) {
    const verdict = r.target ? `${r.target.text}: **${r.target.check(r.values) ? 'PASS' : 'FAIL'}**` : '';
    lines.push(`| ${r.figure} | ${r.cells?.packr ?? f(r.values.packr)} | ${verdict} |`);
  }
  const notes = rows.filter((r) => r.note).map((r) => `- ${r.figure}: ${r.note}`);
  process.stdout.write(`\n${rows[0]?.section ?? 'Scale'}\n\n${lines.join('\n')}\n\nNotes:\n${notes.join('\n')}\n`);
  if (!opt('keep-work', false)) rmSync(work, { recursive: true, force: true });
}
