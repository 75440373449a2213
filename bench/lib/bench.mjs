// The Packr benchmark: Packr vs Verdaccio vs a bare hyper server (the ceiling), same machine, same run.
// Run through bench/run.sh, which builds and installs everything first. See BENCHMARKS.md.
//
// node bench/lib/bench.mjs [--packr BIN] [--ceiling BIN] [--node-modules DIR] [--seconds 3] [--rounds 3]
//   [--warmup 1] [--connections 64] [--install-reps 3] [--ready-reps 5] [--skip-installs]
//   [--wait-quiet 300] [--busy-limit 10] [--install-dir /dev/shm] [--corpus DIR] [--out DIR]
//   [--work DIR] [--keep-work] [--skip-scale] [--scale-packages 50000 and the other --scale-* options
//   of lib/scale.mjs]

import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir, cpus, loadavg, totalmem } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEFAULT_CORPUS, prepareCorpus, publishGroups, publishOne } from './load-corpus.mjs';
import { SYNTH_NAME, synthBodies } from './synth.mjs';
import { agent as makeAgent, request, packagePath, tarballPath } from './http.mjs';
import { Packr, Verdaccio, Ceiling, freePort, rssSampler } from './servers.mjs';
import { snapshot } from './snapshot.mjs';
import { wrk } from './wrk.mjs';
import { npmCi, pnpmInstall } from './install.mjs';
import { cpuWindow, waitQuiet } from './cpu.mjs';
import { scaleOptions, scalePhase } from './scale.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
const BENCH = resolve(HERE, '..');
const SERVER_CPU = 0;
const CLIENT_CPU = 1;
const ABBREVIATED = 'application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8, */*';

// ---------------------------------------------------------------- options

const argv = process.argv.slice(2);
function opt(name, def) {
  const i = argv.indexOf(`--${name}`);
  if (i === -1) return def;
  if (typeof def === 'boolean') return true;
  return argv[i + 1];
}
const O = {
  packr: opt('packr', resolve(BENCH, '../target/release/packr')),
  ceiling: opt('ceiling', resolve(BENCH, '.cache/ceiling-target/release/packr-ceiling')),
  nodeModules: opt('node-modules', resolve(BENCH, '.cache/node/node_modules')),
  corpus: opt('corpus', DEFAULT_CORPUS),
  seconds: Number(opt('seconds', '3')),
  warmup: Number(opt('warmup', '1')),
  connections: Number(opt('connections', '64')),
  installReps: Number(opt('install-reps', '3')),
  readyReps: Number(opt('ready-reps', '5')),
  skipInstalls: opt('skip-installs', false),
  out: opt('out', resolve(BENCH, 'results')),
  work: opt('work', ''),
  keepWork: opt('keep-work', false),
  installDir: opt('install-dir', existsSync('/dev/shm') ? '/dev/shm' : ''),
  waitQuiet: Number(opt('wait-quiet', '300')),
  rounds: Number(opt('rounds', '3')),
  busyLimit: Number(opt('busy-limit', '10')),
  skipScale: opt('skip-scale', false),
  scale: scaleOptions(opt),
};

const T0 = Date.now();
function log(msg) {
  const s = ((Date.now() - T0) / 1000).toFixed(0).padStart(4);
  process.stderr.write(`[${s}s] ${msg}\n`);
}

const median = (xs) => {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (!s.length) return NaN;
  return s.length % 2 ? s[s.length >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

// ---------------------------------------------------------------- results

const rows = []; // {section, figure, values: {packr, verdaccio, ceiling}, cells?, target?, note?, others?}
const othersAll = []; // % of one core used by other processes during each measured window
const stealAll = []; // % of one core stolen by the hypervisor during each measured window
const restarts = [];
function row(r) {
  rows.push(r);
  for (const v of Object.values(r.others ?? {})) if (Number.isFinite(v)) othersAll.push(v);
  const v = r.values;
  log(`  ${r.figure}: packr=${fmt(v.packr)} verdaccio=${fmt(v.verdaccio)} ceiling=${fmt(v.ceiling)}`);
  return r;
}

function fmt(x, digits) {
  if (x === undefined || x === null) return '—';
  if (typeof x === 'string') return x;
  if (!Number.isFinite(x)) return 'n/a';
  if (digits !== undefined) return x.toFixed(digits);
  if (Math.abs(x) >= 1000) return Math.round(x).toLocaleString('en-US');
  if (Math.abs(x) >= 100) return x.toFixed(0);
  if (Math.abs(x) >= 10) return x.toFixed(1);
  return x.toFixed(2);
}

function ratio(a, b) {
  return Number.isFinite(a) && Number.isFinite(b) && b !== 0 ? a / b : NaN;
}

// A target: {text, check(values) → boolean|undefined}
const vsVerdaccio = (k) => ({ text: `≥ ${k}x Verdaccio`, check: (v) => ratio(v.packr, v.verdaccio) >= k });
const vsCeiling = (k) => ({ text: `≥ ${k}x ceiling`, check: (v) => ratio(v.packr, v.ceiling) >= k });
const both = (a, b) => ({ text: `${a.text}, ${b.text}`, check: (v) => a.check(v) && b.check(v) });
const timeVsCeiling = (k) => ({ text: `≤ ${k}x ceiling's time`, check: (v) => ratio(v.packr, v.ceiling) <= k });
const below = (limit, unit) => ({ text: `< ${limit} ${unit}`, check: (v) => v.packr < limit });
const p99VsCeiling = (k) => ({ text: `≤ ${k}x ceiling's p99`, check: (v) => ratio(v.packr, v.ceiling) <= k });

// ---------------------------------------------------------------- setup

const machine = {
  date: new Date().toISOString(),
  cpu: `${cpus().length} x ${cpus()[0]?.model ?? '?'}`,
  memGiB: (totalmem() / 2 ** 30).toFixed(1),
  kernel: execFileSync('uname', ['-sr']).toString().trim(),
  node: process.version,
  loadavgStart: loadavg().map((x) => x.toFixed(2)).join(' '),
};
try {
  machine.os = /PRETTY_NAME="([^"]+)"/.exec(readFileSync('/etc/os-release', 'utf8'))?.[1];
} catch {}
try {
  machine.packrCommit = execFileSync('git', ['-C', resolve(BENCH, '..'), 'rev-parse', '--short', 'HEAD']).toString().trim();
  const dirty = execFileSync('git', ['-C', resolve(BENCH, '..'), 'status', '--porcelain', '--', 'src', 'Cargo.toml', 'Cargo.lock']).toString().trim();
  if (dirty) machine.packrCommit += ' (+ uncommitted changes in src/)';
} catch {}
const versionOf = (pkg) => JSON.parse(readFileSync(join(O.nodeModules, pkg, 'package.json'), 'utf8')).version;
machine.verdaccio = versionOf('verdaccio');
machine.pnpm = versionOf('pnpm');
machine.npm = execFileSync('npm', ['--version'], { env: { ...process.env, npm_config_loglevel: 'silent' } }).toString().trim();
machine.wrk = execFileSync('sh', ['-c', 'wrk --version 2>&1 | head -1 || true']).toString().trim();

const work = O.work ? resolve(O.work) : mkdtempSync(join(tmpdir(), 'packr-bench-'));
mkdirSync(work, { recursive: true });
// Publish figures include Packr's syncs to disk (the tarball, its directory entry and the database
// log, before each 201); on tmpfs those cost nothing and the figures would leave out durability.
machine.workFs = execFileSync('stat', ['-f', '-c', '%T', work]).toString().trim();
log(`work directory ${work} (${machine.workFs})`);
if (machine.workFs === 'tmpfs') log('  warning: the work directory is on tmpfs: publish figures leave out the cost of syncing to disk');
// A private copy of the binaries, so a rebuild during the run cannot swap them. The copy has another
// name: on a shared machine, `killall packr` / `pkill -x packr` by someone else must not stop it.
const packrBin = join(work, 'packr_bench');
copyFileSync(O.packr, packrBin);
const ceilingBin = join(work, 'packr-ceiling');
copyFileSync(O.ceiling, ceilingBin);
execFileSync('chmod', ['+x', packrBin, ceilingBin]);

const ports = { packr: await freePort(), verdaccio: await freePort(), ceiling: await freePort() };

async function settle(maxSeconds) {
  const q = await waitQuiet({ maxSeconds, log });
  if (!q.quiet) log(`  still busy after ${q.waited.toFixed(0)} s (${q.busyPct.toFixed(0)}% of one core); going on`);
  return q;
}
log(`waiting for a quiet machine (other processes under 15% of one core), at most ${O.waitQuiet} s`);
const quietAtStart = await settle(O.waitQuiet);
machine.quietAtStart = `${quietAtStart.quiet ? 'quiet' : 'BUSY'} after ${quietAtStart.waited.toFixed(0)} s of waiting (${quietAtStart.busyPct.toFixed(0)}% of one core busy)`;
const manifest = JSON.parse(readFileSync(join(O.corpus, 'manifest.json'), 'utf8'));
const corpusNames = [...new Set(manifest.tarballs.map((t) => t.name))];

function newPackr(dataDir, env = {}, logName = 'packr.log') {
  return new Packr({ bin: packrBin, dataDir, port: ports.packr, cpu: SERVER_CPU, logFile: join(work, logName), env });
}
function newVerdaccio(dir) {
  return new Verdaccio({ nodeModules: O.nodeModules, dir, port: ports.verdaccio, cpu: SERVER_CPU, logFile: join(work, 'verdaccio.log') });
}

const cleanup = [];
const cleanupDirs = [];
async function stopAll() {
  for (const s of cleanup.splice(0)) await s.stop().catch(() => {});
}
process.on('SIGINT', async () => {
  await stopAll();
  process.exit(130);
});

// The loader runs in this process; pin it to the client CPU, away from the servers.
execFileSync('taskset', ['-p', '-c', String(CLIENT_CPU), String(process.pid)], { stdio: 'ignore' });

// ---------------------------------------------------------------- 1. publish throughput

log('preparing publish bodies from the corpus');
const groups = prepareCorpus('http://registry.invalid', O.corpus);
const totalVersions = groups.reduce((n, g) => n + g.length, 0);

async function loadInto(server, concurrency) {
  const w = cpuWindow([server.pid]);
  const r = await publishGroups(server.url, server.token, groups, concurrency);
  const { othersPct, serverSeconds, stealPct } = w.stop();
  stealAll.push(stealPct);
  return { ...r, perSec: r.versions / (r.ms / 1000), othersPct, serverCpuMsPerVersion: (serverSeconds * 1000) / r.versions };
}

// `rounds` rounds, each on fresh data directories: concurrency 1 then 8, Packr then Verdaccio. A
// figure is the best round. The last round's concurrency-8 servers stay up: they are the loaded ones.
const publish = { 1: {}, 8: {} };
const refused = {};
const allPublish = [];
for (let round = 0; round < O.rounds; round++) {
  for (const c of [1, 8]) {
    log(`publish the corpus at concurrency ${c} (round ${round + 1}/${O.rounds})`);
    const last = round === O.rounds - 1 && c === 8;
    const p = newPackr(join(work, `packr-r${round}-c${c}`));
    p.setup();
    await p.start();
    cleanup.push(p);
    const pr = await loadInto(p, c);
    const v = newVerdaccio(join(work, `verdaccio-r${round}-c${c}`));
    await v.start();
    cleanup.push(v);
    await v.setup();
    const vr = await loadInto(v, c);
    allPublish.push({ round, c, packr: pr.perSec, verdaccio: vr.perSec, packrOthers: pr.othersPct, verdaccioOthers: vr.othersPct });
    for (const [k, r] of Object.entries({ packr: pr, verdaccio: vr })) {
      if (!publish[c][k] || r.perSec > publish[c][k].perSec) publish[c][k] = r;
      refused[k] = r.errors;
      if (r.errors.length && round === 0) log(`  ${k} refused ${r.errors.length}: ${r.errors.map((e) => e.slice(0, 160)).join(' | ')}`);
    }
    if (last) {
      publish[c].servers = { packr: p, verdaccio: v };
    } else {
      // The data directories stay until the end of the run (about 25 MB each): deleting thousands of
      // files just before the next round made that round's file creation slow (ext4 skips inodes
      // freed in the last 30 s, scanning for free ones; this VM's ext4 has no journal, where that
      // check applies), a cost of the benchmark's cleanup that fell on whichever server came next.
      for (const srv of [p, v]) {
        await srv.stop();
        cleanup.splice(cleanup.indexOf(srv), 1);
      }
    }
  }
}
const packrP = publish[8].servers.packr;
const verdP = publish[8].servers.verdaccio;

const refusedNames = (errors) =>
  [...new Set(errors.map((e) => /^publish (\S+)@/.exec(e)?.[1]).filter(Boolean))];
row({
  section: 'Publish',
  figure: `corpus versions accepted (of ${totalVersions})`,
  values: { packr: publish[8].packr.versions, verdaccio: publish[8].verdaccio.versions },
  noRatio: true,
  target: { text: `all ${totalVersions}`, check: (v) => v.packr === totalVersions },
  note: publish[8].packr.errors.length ? `Packr refused: ${refusedNames(publish[8].packr.errors).join(', ')}` : undefined,
});
for (const c of [1, 8]) {
  row({
    section: 'Publish',
    figure: `publish corpus, concurrency ${c} (versions/s)`,
    values: { packr: publish[c].packr.perSec, verdaccio: publish[c].verdaccio.perSec },
    others: { packr: publish[c].packr.othersPct, verdaccio: publish[c].verdaccio.othersPct },
    note: `best of ${O.rounds}; server CPU per version: Packr ${fmt(publish[c].packr.serverCpuMsPerVersion)} ms, Verdaccio ${fmt(publish[c].verdaccio.serverCpuMsPerVersion)} ms; data on ${machine.workFs} (Packr syncs each publish to disk before answering)`,
    target: c === 8 ? vsVerdaccio(5) : undefined,
  });
}

// ---------------------------------------------------------------- 2. 300 versions of one package

log(`publish ${SYNTH_NAME}: 300 versions one after another`);
const synth = synthBodies('http://registry.invalid', 300);
const synthTimes = {};
const synthOthers = {};
for (const s of [packrP, verdP]) {
  const w = cpuWindow([s.pid]);
  const a = makeAgent(1);
  const times = [];
  for (const item of synth) {
    const t = process.hrtime.bigint();
    await publishOne(s.url, s.token, item, a);
    times.push(Number(process.hrtime.bigint() - t) / 1e6);
  }
  a.destroy();
  synthTimes[s.kind] = times;
  const cw = w.stop();
  synthOthers[s.kind] = cw.othersPct;
  stealAll.push(cw.stealPct);
}
const first10 = (k) => median(synthTimes[k].slice(0, 10));
const last10 = (k) => median(synthTimes[k].slice(-10));
row({
  section: 'Publish',
  figure: 'versions 1-10 of one package, median ms per publish',
  values: { packr: first10('packr'), verdaccio: first10('verdaccio') },
  lowerIsBetter: true,
  others: synthOthers,
});
row({
  section: 'Publish',
  figure: 'versions 291-300 of the same package, median ms per publish',
  values: { packr: last10('packr'), verdaccio: last10('verdaccio') },
  lowerIsBetter: true,
  target: {
    text: '≤ 1.25x versions 1-10',
    check: () => last10('packr') <= 1.25 * first10('packr'),
  },
  note: `last/first: Packr ${fmt(last10('packr') / first10('packr'))}x, Verdaccio ${fmt(last10('verdaccio') / first10('verdaccio'))}x`,
});

// ---------------------------------------------------------------- 3. memory at rest after the load

log('idle RSS after the load (3 s at rest)');
await new Promise((r) => setTimeout(r, 3000));
const idleAfterLoad = { packr: packrP.memory().rssKiB / 1024, verdaccio: verdP.memory().rssKiB / 1024 };

// ---------------------------------------------------------------- 4. snapshot for the ceiling

log('snapshot of Packr for the ceiling');
const snapDir = join(work, 'snapshot');
const snap = await snapshot({
  source: packrP.url,
  token: packrP.token,
  hostHeader: `127.0.0.1:${ports.ceiling}`,
  packages: [...corpusNames, SYNTH_NAME],
  tarballs: manifest.tarballs,
  dir: snapDir,
});
log(`  ${snap.entries} responses, ${(snap.bytes / 2 ** 20).toFixed(1)} MiB; not in Packr: ${snap.missing.join(', ') || 'none'}`);
const missingInPackr = new Set(snap.missing.filter((m) => !m.startsWith('/')));

// ---------------------------------------------------------------- 5. start-to-ready

await packrP.stop();
await verdP.stop();
cleanup.length = 0;
const packr = newPackr(packrP.dataDir);
packr.token = packrP.token;
const verd = newVerdaccio(verdP.dir);
verd.token = verdP.token;
const ceil = new Ceiling({ bin: ceilingBin, index: join(snapDir, 'index.json'), port: ports.ceiling, cpu: SERVER_CPU, logFile: join(work, 'ceiling.log') });
const servers = [packr, verd, ceil];

log(`start-to-ready with the corpus loaded, ${O.readyReps} starts each`);
const ready = { packr: [], verdaccio: [], ceiling: [] };
for (let i = 0; i < O.readyReps; i++) {
  for (const s of servers) {
    ready[s.kind].push(await s.start());
    await s.stop();
  }
}
for (const s of servers) {
  ready[s.kind].push(await s.start());
  cleanup.push(s);
}
row({
  section: 'Memory and start',
  figure: `start-to-ready with the corpus loaded (ms, median of ${O.readyReps + 1})`,
  values: { packr: median(ready.packr), verdaccio: median(ready.verdaccio), ceiling: median(ready.ceiling) },
  lowerIsBetter: true,
  target: below(100, 'ms'),
  note: 'spawn → first 200 from /-/health (Verdaccio and the ceiling: /-/ping); the ceiling loads its whole snapshot into memory first',
});
await new Promise((r) => setTimeout(r, 1000));
const idleRestart = Object.fromEntries(servers.map((s) => [s.kind, s.memory().rssKiB / 1024]));

// ---------------------------------------------------------------- 6. reads

const samplers = Object.fromEntries(servers.map((s) => [s.kind, rssSampler(s.pid)]));
const auth = (s) => ({ authorization: `Bearer ${s.token}` });

async function preflight(s, path, headers) {
  const res = await request(s.url + path, { headers: { ...auth(s), ...headers } });
  return { status: res.status, bytes: res.body.length, etag: res.headers.etag, encoding: res.headers['content-encoding'] };
}

/** Restarts a server that died (another process on a shared machine may kill it); counts restarts. */
async function alive(s) {
  if (s.proc && s.proc.exitCode === null && s.proc.signalCode === null) return;
  restarts.push(`${s.kind} before "${currentFigure}"`);
  log(`  !! ${s.kind} is not running; restarting it`);
  await s.start();
}
let currentFigure = '';

/**
 * One read figure: a preflight request and a warm-up on each server, then `rounds` rounds of one
 * measured wrk run per server (interleaved: Packr, Verdaccio, ceiling, Packr, ...). A server's figure
 * is its best round: other processes on a shared machine can only make a round slower.
 */
/** Before measuring a figure again because other processes were busy: wait (≤ 90 s) for quiet. */
async function settleBeforeRetry(figure) {
  log(`  other processes were busy during "${figure}"; waiting for quiet, then ${O.rounds} more rounds`);
  await settle(90);
  return true;
}

async function readFigure({ section, figure, path, headers = {}, expect = 200, target, conditional = false, servers: list = servers }) {
  currentFigure = figure;
  const values = {};
  const cells = {};
  const notes = [];
  const bytes = {};
  const others = {};
  const best = {};
  const all = {};
  const ready = [];
  for (const s of list) {
    await alive(s);
    const h = { ...headers };
    let pf = await preflight(s, path, h);
    if (conditional) {
      if (!pf.etag) {
        values[s.kind] = NaN;
        cells[s.kind] = 'no ETag';
        continue;
      }
      h['if-none-match'] = pf.etag;
      pf = await preflight(s, path, h);
    }
    if (pf.status !== expect) {
      values[s.kind] = NaN;
      cells[s.kind] = `HTTP ${pf.status}`;
      notes.push(`${s.kind} answered ${pf.status}`);
      continue;
    }
    bytes[s.kind] = pf.bytes;
    const wh = { ...auth(s), ...h };
    if (O.warmup > 0) await wrk({ url: s.url + path, headers: wh, connections: O.connections, seconds: O.warmup, cpu: CLIENT_CPU });
    ready.push([s, wh]);
  }
  const measureRounds = async () => {
    for (let round = 0; round < O.rounds; round++) {
      for (const [s, wh] of ready) {
        await alive(s);
        const w = cpuWindow([s.pid]);
        const r = await wrk({ url: s.url + path, headers: wh, connections: O.connections, seconds: O.seconds, cpu: CLIENT_CPU });
        const cw = w.stop({ childSeconds: r.cpuSeconds });
        r.othersPct = cw.othersPct;
        stealAll.push(cw.stealPct);
        r.serverCpuUsPerReq = (cw.serverSeconds * 1e6) / r.requests;
        delete r.raw;
        (all[s.kind] ??= []).push(r);
        if (!best[s.kind] || r.rps > best[s.kind].rps) best[s.kind] = r;
      }
    }
  };
  await measureRounds();
  if (Object.values(best).some((r) => r.othersPct > O.busyLimit)) {
    await settleBeforeRetry(figure);
    await measureRounds();
  }
  for (const [kind, r] of Object.entries(best)) {
    values[kind] = r.rps;
    others[kind] = r.othersPct;
    cells[kind] = `${fmt(r.rps)} (p99 ${fmt(r.p99ms)} ms)`;
    const bad = all[kind].reduce((n, x) => n + x.non2xx3xx + x.socketErrors, 0);
    if (bad) notes.push(`${kind}: ${bad} bad statuses or socket errors`);
  }
  const sizes = Object.entries(bytes).map(([k, b]) => `${k} ${b < 10240 ? b + ' B' : (b / 1024).toFixed(0) + ' KiB'}`).join(', ');
  const cpuPerReq = Object.entries(all)
    .map(([k, rs]) => `${k} ${fmt(median(rs.map((x) => x.serverCpuUsPerReq)))} µs`)
    .join(', ');
  if (cpuPerReq) notes.unshift(`server CPU per request: ${cpuPerReq}`);
  if (sizes && !conditional) notes.unshift(`body: ${sizes}`);
  return row({ section, figure, values, cells, target, others, rounds: all, note: notes.join('; ') || undefined });
}

const small = 'express';
const smallPath = packagePath(small);
const bigPath = packagePath(SYNTH_NAME);
const packTarget = both(vsVerdaccio(20), vsCeiling(0.5));
log(`packument reads: ${O.warmup} s warm-up, ${O.rounds} x ${O.seconds} s measured, ${O.connections} connections, wrk on CPU ${CLIENT_CPU}, servers on CPU ${SERVER_CPU}`);
for (const [label, path] of [[`${small} (1 version)`, smallPath], [`${SYNTH_NAME} (300 versions)`, bigPath]]) {
  for (const [form, accept] of [['full', 'application/json'], ['abbreviated', ABBREVIATED]]) {
    for (const gzip of [false, true]) {
      const headers = { accept };
      if (gzip) headers['accept-encoding'] = 'gzip';
      await readFigure({
        section: 'Packument GET (req/s)',
        figure: `${label}, ${form}, ${gzip ? 'gzip' : 'plain'}`,
        path,
        headers,
        target: packTarget,
      });
    }
  }
}
// Tail latency of cached reads (issue 12): each server's p99 at c64, the median over its measured
// rounds (a single round's p99 moves with whatever else the machine did in those seconds).
for (const r of rows.filter((x) => x.section === 'Packument GET (req/s)')) {
  const p99 = Object.fromEntries(Object.entries(r.rounds).map(([k, rs]) => [k, median(rs.map((x) => x.p99ms))]));
  row({
    section: 'Packument GET p99 latency at c64 (ms)',
    figure: r.figure,
    values: p99,
    cells: Object.fromEntries(Object.entries(r.rounds).map(([k, rs]) => [k, `${fmt(p99[k])} (${rs.map((x) => fmt(x.p99ms)).join(', ')})`])),
    lowerIsBetter: true,
    target: p99VsCeiling(1.5),
    others: r.others,
    note: 'median of the p99 of each measured round (in brackets), same rounds as the req/s figure',
  });
}
log('304 Not Modified');
for (const [label, path] of [[`${small}`, smallPath], [`${SYNTH_NAME}`, bigPath]]) {
  await readFigure({
    section: '304 (req/s)',
    figure: `If-None-Match, ${label}, abbreviated, gzip`,
    path,
    headers: { accept: ABBREVIATED, 'accept-encoding': 'gzip' },
    expect: 304,
    conditional: true,
    target: vsCeiling(0.5),
  });
}
log('tarballs');
const tenK = manifest.tarballs
  .filter((t) => !t.name.startsWith('@'))
  .sort((a, b) => Math.abs(a.size - 10240) - Math.abs(b.size - 10240))[0];
const biggest = manifest.tarballs.slice().sort((a, b) => b.size - a.size)[0];
await readFigure({
  section: 'Tarball GET (req/s)',
  figure: `${tenK.name}@${tenK.version} (${(tenK.size / 1024).toFixed(1)} KiB)`,
  path: tarballPath(tenK.name, tenK.version),
  target: vsVerdaccio(10),
});
await readFigure({
  section: 'Tarball GET (req/s)',
  figure: `${biggest.name}@${biggest.version} (${(biggest.size / 2 ** 20).toFixed(1)} MiB)`,
  path: tarballPath(biggest.name, biggest.version),
  target: vsCeiling(0.8),
});

const peak = Object.fromEntries(servers.map((s) => [s.kind, Math.max(samplers[s.kind].stop(), s.memory().hwmKiB) / 1024]));
row({
  section: 'Memory and start',
  figure: 'idle RSS after loading the corpus + 300 versions (MiB)',
  values: { packr: idleAfterLoad.packr, verdaccio: idleAfterLoad.verdaccio },
  lowerIsBetter: true,
  target: below(30, 'MiB'),
  note: 'VmRSS of the process that did the publishing, 3 s after the last publish',
});
row({
  section: 'Memory and start',
  figure: 'idle RSS after a restart, before the reads (MiB)',
  values: idleRestart,
  lowerIsBetter: true,
  note: 'the ceiling holds its whole snapshot (all packuments and tarballs) in memory',
});
row({
  section: 'Memory and start',
  figure: 'peak RSS during the read benchmarks (MiB)',
  values: peak,
  lowerIsBetter: true,
  target: below(100, 'MiB'),
  note: 'max of VmRSS sampled every 100 ms and VmHWM',
});

// ---------------------------------------------------------------- 7. installs

if (!O.skipInstalls) {
  const prune = missingInPackr;
  const appDir = join(O.corpus, 'app');
  const pnpm = join(O.nodeModules, 'pnpm/bin/pnpm.cjs');
  const kinds = [
    ['npm ci, lockfile with resolved URLs (s)', (s, w) => npmCi({ appDir, work: w, registry: s.url, token: s.token, resolved: true, prune, cpu: CLIENT_CPU })],
    ['npm ci, lockfile as is: packument + tarball per package (s)', (s, w) => npmCi({ appDir, work: w, registry: s.url, token: s.token, resolved: false, prune, cpu: CLIENT_CPU })],
    ['pnpm install --frozen-lockfile (s)', (s, w) => pnpmInstall({ appDir, work: w, registry: s.url, token: s.token, prune, cpu: CLIENT_CPU, pnpm })],
  ];
  const installRoot = O.installDir ? mkdtempSync(join(O.installDir, 'packr-bench-installs-')) : join(work, 'installs');
  cleanupDirs.push(installRoot);
  log(`installs of the corpus app in ${installRoot}, ${O.installReps} runs each, client on CPU ${CLIENT_CPU}${prune.size ? `; without ${[...prune].join(', ')} (not in Packr)` : ''}`);
  for (const [name, fn] of kinds) {
    const times = { packr: [], verdaccio: [], ceiling: [] };
    const counts = {};
    const others = { packr: [], verdaccio: [], ceiling: [] };
    currentFigure = name;
    for (let rep = 0; rep < O.installReps; rep++) {
      const order = servers.slice(rep % 3).concat(servers.slice(0, rep % 3));
      for (const s of order) {
        const w = join(installRoot, `${s.kind}`);
        await alive(s);
        execFileSync('sync'); // no write-back of an earlier run's files during this one
        try {
          const win = cpuWindow([s.pid]);
          const r = await fn(s, w);
          const cw = win.stop({ childSeconds: r.cpuSeconds });
          others[s.kind].push(cw.othersPct);
          stealAll.push(cw.stealPct);
          times[s.kind].push(r.ms / 1000);
          counts[s.kind] = r.installed;
        } catch (e) {
          log(`  ${name} against ${s.kind} failed: ${e.message.slice(0, 600)}`);
          times[s.kind].push(NaN);
        }
        rmSync(w, { recursive: true, force: true });
      }
    }
    const values = Object.fromEntries(Object.entries(times).map(([k, t]) => [k, t.some((x) => !Number.isFinite(x)) ? NaN : Math.min(...t)]));
    row({
      section: 'Install of shared/corpus/app, empty cache (s)',
      figure: name,
      values,
      lowerIsBetter: true,
      others: Object.fromEntries(Object.entries(others).map(([k, o]) => [k, Math.max(...o)])),
      cells: Object.fromEntries(Object.entries(times).map(([k, t]) => [k, `${fmt(values[k])} (${t.map((x) => fmt(x, 1)).join(', ')})`])),
      target: timeVsCeiling(1.1),
      note: `best of ${O.installReps} (all runs in brackets); packages installed: ${Object.entries(counts).map(([k, n]) => `${k} ${n}`).join(', ')}`,
    });
  }
}

// ---------------------------------------------------------------- 8. Packr variants (diagnostics)

log('Packr variants: RUST_LOG=warn, anonymous reads');
await packr.stop();
cleanup.splice(cleanup.indexOf(packr), 1);
const variants = [];
const variantServers = [];
for (const [label, env, useToken] of [
  ['default (RUST_LOG unset, i.e. info), token', {}, true],
  ['RUST_LOG=warn, token', { RUST_LOG: 'warn' }, true],
  ['PACKR_ANONYMOUS_READ=true, no Authorization header, RUST_LOG=warn', { RUST_LOG: 'warn', PACKR_ANONYMOUS_READ: 'true' }, false],
]) {
  const s = new Packr({ bin: packrBin, dataDir: packrP.dataDir, port: await freePort(), cpu: SERVER_CPU, logFile: join(work, 'packr-variants.log'), env });
  await s.start();
  cleanup.push(s);
  const headers = { accept: ABBREVIATED, 'accept-encoding': 'gzip', ...(useToken ? { authorization: `Bearer ${packrP.token}` } : {}) };
  variantServers.push({ s, headers });
  variants.push({ label });
}
for (const [what, path] of [['small', smallPath], ['big', bigPath], ['tgz10k', tarballPath(tenK.name, tenK.version)]]) {
  for (const { s, headers } of variantServers) {
    if (O.warmup > 0) await wrk({ url: s.url + path, headers, connections: O.connections, seconds: O.warmup, cpu: CLIENT_CPU });
  }
  for (let round = 0; round < O.rounds; round++) {
    for (const [i, { s, headers }] of variantServers.entries()) {
      const w = cpuWindow([s.pid]);
      const r = await wrk({ url: s.url + path, headers, connections: O.connections, seconds: O.seconds, cpu: CLIENT_CPU });
      const cw = w.stop({ childSeconds: r.cpuSeconds });
      r.othersPct = cw.othersPct;
      stealAll.push(cw.stealPct);
      delete r.raw;
      othersAll.push(r.othersPct);
      if (!variants[i][what] || r.rps > variants[i][what].rps) variants[i][what] = r;
    }
  }
}
for (const v of variants) log(`  ${v.label}: small ${fmt(v.small.rps)}, big ${fmt(v.big.rps)}, 10k tarball ${fmt(v.tgz10k.rps)} req/s`);
const ceilRef = rows.find((r) => r.figure === `${small} (1 version), abbreviated, gzip`)?.values.ceiling;
const ceilRefBig = rows.find((r) => r.figure === `${SYNTH_NAME} (300 versions), abbreviated, gzip`)?.values.ceiling;
const ceilRefTgz = rows.find((r) => r.figure.startsWith(`${tenK.name}@`))?.values.ceiling;

await stopAll();

// ---------------------------------------------------------------- 9. scale (Packr alone)

if (!O.skipScale) {
  log(`scale phase: ${O.scale.packages} packages (lib/scale.mjs; --skip-scale skips it)`);
  await settle(90);
  const scaleRows = await scalePhase({ bin: packrBin, work, serverCpu: SERVER_CPU, clientCpu: CLIENT_CPU, options: O.scale, log });
  for (const r of scaleRows) rows.push(r);
}
machine.loadavgEnd = loadavg().map((x) => x.toFixed(2)).join(' ');
machine.minutes = ((Date.now() - T0) / 60000).toFixed(1);

// ---------------------------------------------------------------- report

function cell(r, k) {
  const busy = r.others?.[k] > O.busyLimit ? ' ⚠' : '';
  if (r.cells?.[k] !== undefined) return r.cells[k] + busy;
  return fmt(r.values[k]) + (r.values[k] === undefined ? '' : busy);
}
function ratioCell(r, k) {
  if (r.noRatio) return '';
  const x = ratio(r.values.packr, r.values[k]);
  return Number.isFinite(x) ? `${fmt(x, 2)}x` : '';
}
function verdict(r) {
  if (!r.target) return '';
  const ok = r.target.check(r.values);
  return `${r.target.text}: **${ok ? 'PASS' : 'FAIL'}**`;
}

const lines = [];
lines.push('| figure | Packr | Verdaccio | ceiling | Packr/Verdaccio | Packr/ceiling | target: result |');
lines.push('|---|---|---|---|---|---|---|');
let section = '';
for (const r of rows) {
  if (r.section !== section) {
    section = r.section;
    lines.push(`| **${section}** | | | | | | |`);
  }
  lines.push(`| ${r.figure} | ${cell(r, 'packr')} | ${cell(r, 'verdaccio')} | ${cell(r, 'ceiling')} | ${ratioCell(r, 'verdaccio')} | ${ratioCell(r, 'ceiling')} | ${verdict(r)} |`);
}
const notes = rows.filter((r) => r.note).map((r) => `- ${r.figure}: ${r.note}`);

const vlines = [];
vlines.push('| Packr variant (abbreviated + gzip, 64 connections) | express packument | bench-synth-300 packument | 10 KiB tarball |');
vlines.push('|---|---|---|---|');
for (const v of variants) {
  const c = (x, ref) => `${fmt(x.rps)} (p99 ${fmt(x.p99ms)} ms${ref ? `, ${fmt(x.rps / ref, 2)}x ceiling` : ''})${x.othersPct > O.busyLimit ? ' ⚠' : ''}`;
  vlines.push(`| ${v.label} | ${c(v.small, ceilRef)} | ${c(v.big, ceilRefBig)} | ${c(v.tgz10k, ceilRefTgz)} |`);
}

const passes = rows.filter((r) => r.target).map((r) => r.target.check(r.values));
const header = [
  `Packr benchmark — ${machine.date}`,
  `machine: ${machine.cpu}, ${machine.memGiB} GiB, ${machine.os ?? ''}, ${machine.kernel}`,
  `packr ${machine.packrCommit ?? '?'}; Verdaccio ${machine.verdaccio} on Node ${machine.node}; npm ${machine.npm}; pnpm ${machine.pnpm}; ${machine.wrk}`,
  `servers pinned to CPU ${SERVER_CPU}, load generator / loader / installers pinned to CPU ${CLIENT_CPU} (taskset); installs run in ${O.installDir || 'the work directory'}; wrk -t1 -c${O.connections}; each read figure: ${O.warmup} s warm-up, then ${O.rounds} rounds of ${O.seconds} s per server interleaved, best round reported; publish: best of ${O.rounds} rounds on fresh data directories; installs: best of ${O.installReps}`,
  `load average at start ${machine.loadavgStart}, at end ${machine.loadavgEnd}; run took ${machine.minutes} min`,
  `machine at start: ${machine.quietAtStart}; CPU used by other processes during the measured windows: median ${fmt(median(othersAll), 1)}%, max ${fmt(Math.max(...othersAll), 1)}% of one core (⚠ marks a figure measured while others used more than ${O.busyLimit}%); CPU stolen by the hypervisor: median ${fmt(median(stealAll), 1)}%, max ${fmt(Math.max(...stealAll), 1)}% of one core${restarts.length ? `; servers found dead and restarted: ${restarts.join(', ')}` : ''}`,
  `targets: ${passes.filter(Boolean).length} PASS, ${passes.filter((x) => !x).length} FAIL`,
];
const report = [...header, '', ...lines, '', 'Notes:', ...notes, '', ...vlines, ''].join('\n');
process.stdout.write('\n' + report + '\n');

mkdirSync(O.out, { recursive: true });
const stamp = machine.date.replace(/[:.]/g, '-');
writeFileSync(join(O.out, `bench-${stamp}.md`), report);
writeFileSync(
  join(O.out, `bench-${stamp}.json`),
  JSON.stringify({ machine, options: O, othersAll, stealAll, restarts, allPublish, rows: rows.map(({ target, ...r }) => ({ ...r, target: target?.text, pass: target?.check(r.values) })), variants, synthTimes, ready, refused, snapshot: snap }, null, 1),
);
log(`report written to ${join(O.out, `bench-${stamp}.md`)}`);
if (!O.keepWork) for (const d of [work, ...cleanupDirs]) rmSync(d, { recursive: true, force: true });
