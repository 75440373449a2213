// The Packr benchmark: Packr vs Verdaccio vs a bare hyper server (the ceiling), same machine, same run.
// Run through bench/run.sh, which builds and installs everything first. See BENCHMARKS.md.
//
// node bench/lib/bench.mjs [--packr BIN] [--ceiling BIN] [--node-modules DIR] [--seconds 3] [--rounds 3]
//   [--warmup 1] [--connections 64] [--install-reps 3] [--ready-reps 5] [--skip-installs]
//   [--wait-quiet 300] [--busy-limit 10] [--install-dir /dev/shm] [--corpus DIR] [--out DIR]
//   [--work DIR] [--keep-work] [--skip-scale] [--scale-packages 50000 and the other --scale-* options
//   of lib/scale.mjs] [--skip-postgres] [--s3s-fs BIN] [--signing-cost BIN] [--visibility-publishes 250]
//   [--pg-stat-statements]

import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { tmpdir, cpus, loadavg, totalmem } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEFAULT_CORPUS, prepareCorpus, publishGroups, publishOne } from './load-corpus.mjs';
import { SYNTH_NAME, synthBodies } from './synth.mjs';
import { agent as makeAgent, request, packagePath, tarballPath } from './http.mjs';
import { Packr, Verdaccio, Ceiling, freePort, rssSampler } from './servers.mjs';
import { PgCluster } from './postgres.mjs';
import { visibilityPhase } from './visibility.mjs';
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
  // The PostgreSQL column (issue 10) and the registry signature's share (issue 11).
  skipPostgres: opt('skip-postgres', false),
  s3sFs: opt('s3s-fs', ''),
  signingCost: opt('signing-cost', ''),
  visibilityPublishes: Number(opt('visibility-publishes', '250')),
  pgStatStatements: opt('pg-stat-statements', false),
};
const withPg = !O.skipPostgres;

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

const rows = []; // {section, figure, values: {packr, pg, verdaccio, ceiling}, cells?, target?, note?, others?}
const othersAll = []; // % of one core used by other processes during each measured window
const stealAll = []; // % of one core stolen by the hypervisor during each measured window
const restarts = [];
function row(r) {
  rows.push(r);
  for (const v of Object.values(r.others ?? {})) if (Number.isFinite(v)) othersAll.push(v);
  const v = r.values;
  log(`  ${r.figure}: packr=${fmt(v.packr)}${withPg ? ` pg=${fmt(v.pg)}` : ''} verdaccio=${fmt(v.verdaccio)} ceiling=${fmt(v.ceiling)}`);
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
// PostgreSQL column targets: the PostgreSQL figure against SQLite's (higher is better), or alone.
const pgVsSqlite = (k) => ({ text: `PostgreSQL ≥ ${k}x SQLite`, check: (v) => ratio(v.pg, v.packr) >= k });
const pgBelow = (limit, unit) => ({ text: `< ${limit} ${unit}`, check: (v) => v.pg < limit });

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

const ports = { packr: await freePort(), pg: await freePort(), verdaccio: await freePort(), ceiling: await freePort() };

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

// The PostgreSQL column: a throwaway cluster on the server CPU (lib/postgres.mjs), a database per
// Packr data directory, tarballs in files (PACKR_ALLOW_LOCAL_BLOBS), so that the column differs from
// SQLite's by the metadata store alone. Secrets are given, as every instance on PostgreSQL needs.
let pg = null;
const pgEnv = withPg
  ? {
      PACKR_JWT_SECRET: randomBytes(32).toString('hex'),
      PACKR_SESSION_SECRET: randomBytes(32).toString('hex'),
      PACKR_SECRET_KEY: randomBytes(32).toString('hex'),
      // A P-256 private scalar; below the group order whatever the other bytes are.
      PACKR_SIGNING_KEY: '7f' + randomBytes(31).toString('hex'),
    }
  : {};
if (withPg) {
  pg = new PgCluster({ dir: join(work, 'postgresql'), cpu: SERVER_CPU, statStatements: O.pgStatStatements });
  await pg.start();
  machine.postgresql = `PostgreSQL ${pg.version}: ${Object.entries(pg.settings).map(([k, v]) => `${k}=${v}`).join(', ')}`;
  log(`PostgreSQL ${pg.version} on 127.0.0.1:${pg.port} (${pg.dir}), pinned to CPU ${SERVER_CPU}`);
}
function newPackrPg(dataDir, database, logName = 'packr-pg.log') {
  return new Packr({
    kind: 'pg',
    bin: packrBin,
    dataDir,
    port: ports.pg,
    cpu: SERVER_CPU,
    logFile: join(work, logName),
    cluster: pg,
    env: { ...pgEnv, PACKR_DATABASE_URL: pg.url(database), PACKR_ALLOW_LOCAL_BLOBS: 'true' },
  });
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
  pg?.stop();
  process.exit(130);
});

// The loader runs in this process; pin it to the client CPU, away from the servers.
execFileSync('taskset', ['-a', '-p', '-c', String(CLIENT_CPU), String(process.pid)], { stdio: 'ignore' });

// ---------------------------------------------------------------- 1. publish throughput

log('preparing publish bodies from the corpus');
const groups = prepareCorpus('http://registry.invalid', O.corpus);
const totalVersions = groups.reduce((n, g) => n + g.length, 0);

async function loadInto(server, concurrency) {
  const w = cpuWindow(() => server.pids());
  const r = await publishGroups(server.url, server.token, groups, concurrency);
  const { othersPct, serverSeconds, stealPct } = w.stop();
  stealAll.push(stealPct);
  return { ...r, perSec: r.versions / (r.ms / 1000), othersPct, serverCpuMsPerVersion: (serverSeconds * 1000) / r.versions };
}

// `rounds` rounds, each on fresh data directories: concurrency 1 then 8, Packr then Verdaccio. A
// figure is the best round. The last round's concurrency-8 servers stay up: they are the loaded ones.
const publish = { 1: {}, 8: {} };
const pgTop = {}; // with --pg-stat-statements: the slowest statements of the last round, per concurrency
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
    let g = null;
    let gr = null;
    if (withPg) {
      const database = `bench_r${round}_c${c}`;
      pg.createDatabase(database);
      g = newPackrPg(join(work, `packrpg-r${round}-c${c}`), database);
      g.database = database;
      g.setup();
      await g.start();
      cleanup.push(g);
      gr = await loadInto(g, c);
      if (O.pgStatStatements) pgTop[c] = pg.topStatements(database);
    }
    const v = newVerdaccio(join(work, `verdaccio-r${round}-c${c}`));
    await v.start();
    cleanup.push(v);
    await v.setup();
    const vr = await loadInto(v, c);
    allPublish.push({ round, c, packr: pr.perSec, pg: gr?.perSec, verdaccio: vr.perSec, packrOthers: pr.othersPct, pgOthers: gr?.othersPct, verdaccioOthers: vr.othersPct });
    for (const [k, r] of Object.entries({ packr: pr, ...(gr ? { pg: gr } : {}), verdaccio: vr })) {
      if (!publish[c][k] || r.perSec > publish[c][k].perSec) publish[c][k] = r;
      refused[k] = r.errors;
      if (r.errors.length && round === 0) log(`  ${k} refused ${r.errors.length}: ${r.errors.map((e) => e.slice(0, 160)).join(' | ')}`);
    }
    if (last) {
      publish[c].servers = { packr: p, pg: g, verdaccio: v };
    } else {
      // The data directories stay until the end of the run (about 25 MB each): deleting thousands of
      // files just before the next round made that round's file creation slow (ext4 skips inodes
      // freed in the last 30 s, scanning for free ones; this VM's ext4 has no journal, where that
      // check applies), a cost of the benchmark's cleanup that fell on whichever server came next.
      for (const srv of [p, g, v].filter(Boolean)) {
        await srv.stop();
        cleanup.splice(cleanup.indexOf(srv), 1);
      }
    }
  }
}
const packrP = publish[8].servers.packr;
const pgP = publish[8].servers.pg;
const verdP = publish[8].servers.verdaccio;

const refusedNames = (errors) =>
  [...new Set(errors.map((e) => /^publish (\S+)@/.exec(e)?.[1]).filter(Boolean))];
row({
  section: 'Publish',
  figure: `corpus versions accepted (of ${totalVersions})`,
  values: { packr: publish[8].packr.versions, pg: publish[8].pg?.versions, verdaccio: publish[8].verdaccio.versions },
  noRatio: true,
  target: { text: `all ${totalVersions}`, check: (v) => v.packr === totalVersions && (!withPg || v.pg === totalVersions) },
  note:
    [
      publish[8].packr.errors.length ? `Packr refused: ${refusedNames(publish[8].packr.errors).join(', ')}` : '',
      publish[8].pg?.errors.length ? `Packr on PostgreSQL refused: ${refusedNames(publish[8].pg.errors).join(', ')}` : '',
    ].filter(Boolean).join('; ') || undefined,
});
for (const c of [1, 8]) {
  const pgCpu = withPg ? `, Packr on PostgreSQL ${fmt(publish[c].pg.serverCpuMsPerVersion)} ms (Packr and PostgreSQL's processes)` : '';
  row({
    section: 'Publish',
    figure: `publish corpus, concurrency ${c} (versions/s)`,
    values: { packr: publish[c].packr.perSec, pg: publish[c].pg?.perSec, verdaccio: publish[c].verdaccio.perSec },
    others: { packr: publish[c].packr.othersPct, pg: publish[c].pg?.othersPct, verdaccio: publish[c].verdaccio.othersPct },
    note: `best of ${O.rounds}; server CPU per version: Packr ${fmt(publish[c].packr.serverCpuMsPerVersion)} ms${pgCpu}, Verdaccio ${fmt(publish[c].verdaccio.serverCpuMsPerVersion)} ms; data on ${machine.workFs} (Packr syncs each publish to disk before answering${withPg ? '; PostgreSQL with fsync and synchronous_commit on' : ''})`,
    target: c === 8 ? vsVerdaccio(5) : undefined,
  });
}

// ---------------------------------------------------------------- 2. 300 versions of one package

log(`publish ${SYNTH_NAME}: 300 versions one after another`);
const synth = synthBodies('http://registry.invalid', 300);
const synthTimes = {};
const synthOthers = {};
for (const s of [packrP, pgP, verdP].filter(Boolean)) {
  const w = cpuWindow(() => s.pids());
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
  values: { packr: first10('packr'), pg: withPg ? first10('pg') : undefined, verdaccio: first10('verdaccio') },
  lowerIsBetter: true,
  others: synthOthers,
});
row({
  section: 'Publish',
  figure: 'versions 291-300 of the same package, median ms per publish',
  values: { packr: last10('packr'), pg: withPg ? last10('pg') : undefined, verdaccio: last10('verdaccio') },
  lowerIsBetter: true,
  target: {
    text: '≤ 1.25x versions 1-10',
    check: () => last10('packr') <= 1.25 * first10('packr'),
  },
  note: `last/first: Packr ${fmt(last10('packr') / first10('packr'))}x${withPg ? `, Packr on PostgreSQL ${fmt(last10('pg') / first10('pg'))}x` : ''}, Verdaccio ${fmt(last10('verdaccio') / first10('verdaccio'))}x`,
});

// ---------------------------------------------------------------- 3. memory at rest after the load

log('idle RSS after the load (3 s at rest)');
await new Promise((r) => setTimeout(r, 3000));
const idleAfterLoad = { packr: packrP.memory().rssKiB / 1024, pg: pgP ? pgP.memory().rssKiB / 1024 : undefined, verdaccio: verdP.memory().rssKiB / 1024 };

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
await pgP?.stop();
await verdP.stop();
cleanup.length = 0;
const packr = newPackr(packrP.dataDir);
packr.token = packrP.token;
let packrPg = null;
if (withPg) {
  packrPg = newPackrPg(pgP.dataDir, pgP.database);
  packrPg.token = pgP.token;
}
const verd = newVerdaccio(verdP.dir);
verd.token = verdP.token;
const ceil = new Ceiling({ bin: ceilingBin, index: join(snapDir, 'index.json'), port: ports.ceiling, cpu: SERVER_CPU, logFile: join(work, 'ceiling.log') });
const servers = [packr, packrPg, verd, ceil].filter(Boolean);

log(`start-to-ready with the corpus loaded, ${O.readyReps} starts each`);
const ready = Object.fromEntries(servers.map((s) => [s.kind, []]));
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
  values: Object.fromEntries(Object.entries(ready).map(([k, t]) => [k, median(t)])),
  lowerIsBetter: true,
  target: below(100, 'ms'),
  note: `spawn → first 200 from /-/health (Verdaccio and the ceiling: /-/ping); the ceiling loads its whole snapshot into memory first${withPg ? '; Packr on PostgreSQL connects to its database and checks the schema version first' : ''}`,
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
        const w = cpuWindow(() => s.pids());
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
  values: { packr: idleAfterLoad.packr, pg: idleAfterLoad.pg, verdaccio: idleAfterLoad.verdaccio },
  lowerIsBetter: true,
  target: below(30, 'MiB'),
  note: `VmRSS of the process that did the publishing, 3 s after the last publish${withPg ? " (on PostgreSQL: Packr's process alone)" : ''}`,
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
    const times = Object.fromEntries(servers.map((s) => [s.kind, []]));
    const counts = {};
    const others = Object.fromEntries(servers.map((s) => [s.kind, []]));
    currentFigure = name;
    for (let rep = 0; rep < O.installReps; rep++) {
      const at = rep % servers.length;
      const order = servers.slice(at).concat(servers.slice(0, at));
      for (const s of order) {
        const w = join(installRoot, `${s.kind}`);
        await alive(s);
        execFileSync('sync'); // no write-back of an earlier run's files during this one
        try {
          const win = cpuWindow(() => s.pids());
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

// ---------------------------------------------------------------- 9. PostgreSQL targets (issue 10)

let visibility = null;
if (withPg) {
  const section = 'PostgreSQL metadata store (issue 10)';
  row({
    section,
    figure: 'publish corpus, concurrency 8 (versions/s)',
    values: { packr: publish[8].packr.perSec, pg: publish[8].pg.perSec },
    others: { packr: publish[8].packr.othersPct, pg: publish[8].pg.othersPct },
    target: pgVsSqlite(0.5),
    note: `PostgreSQL/SQLite of every round: ${allPublish.filter((x) => x.c === 8).map((x) => `${fmt(ratio(x.pg, x.packr), 2)}x`).join(', ')}`,
  });
  const packuments = rows.filter((r) => r.section === 'Packument GET (req/s)' && Number.isFinite(ratio(r.values.pg, r.values.packr)));
  const worst = packuments.reduce((a, r) => (!a || ratio(r.values.pg, r.values.packr) < ratio(a.values.pg, a.values.packr) ? r : a), null);
  if (worst) {
    row({
      section,
      figure: `cached packument GETs, lowest PostgreSQL/SQLite of ${packuments.length}: ${worst.figure} (req/s)`,
      values: { packr: worst.values.packr, pg: worst.values.pg },
      others: { packr: worst.others?.packr, pg: worst.others?.pg },
      target: pgVsSqlite(0.9),
      note: `PostgreSQL/SQLite of each packument GET figure: ${packuments.map((r) => fmt(ratio(r.values.pg, r.values.packr), 2) + 'x').join(', ')}`,
    });
  }
  if (O.s3sFs) {
    log(`publish on one instance → visible on another: ${O.visibilityPublishes} publishes, instances A and B on one database and one s3s-fs bucket`);
    await settle(60);
    visibility = await visibilityPhase({ bin: packrBin, s3sBin: O.s3sFs, pg, work, cpu: SERVER_CPU, count: O.visibilityPublishes, env: pgEnv, log, groups });
    row({
      section,
      figure: "acknowledged publish on instance A → the version in instance B's abbreviated packument, p99 (ms)",
      values: { pg: visibility.p99 },
      others: { pg: visibility.othersPct },
      cells: { pg: `${fmt(visibility.p99)} (p50 ${fmt(visibility.p50)}, max ${fmt(visibility.max)})` },
      noRatio: true,
      target: pgBelow(50, 'ms'),
      note: `${visibility.count} versions published on A one at a time, B's packument read (cached) before each; from A's 201 to the end of B's first answer listing the version; B's first read after the 201 already listed it ${visibility.firstPollFresh} times of ${visibility.count} (mean ${fmt(visibility.meanPolls)} reads); ${visibility.timeouts} never listed within 5 s; B's abbreviated packument was ${(visibility.bytes / 1024).toFixed(0)} KiB at the end`,
    });
    const cluster = visibility.publish;
    row({
      section,
      figure: 'publish corpus, concurrency 8, into instance A of a cluster of two (versions/s)',
      values: { packr: publish[8].packr.perSec, pg: cluster.perSec },
      others: { pg: cluster.othersPct },
      note: `for comparison, no target: the same corpus into A while B listens, tarballs in s3s-fs, every process on the server's CPU; unlike the PostgreSQL column above (one instance, tarballs in its data directory), each publish claims its blob in the database and waits for B's acknowledgement of its change (README "Running more than one instance"); ${cluster.versions} versions accepted${cluster.errors.length ? `, refused: ${cluster.errors.slice(0, 3).join(' | ')}` : ''}`,
    });
  } else {
    log('  no --s3s-fs: the publish-to-visible figure is left out');
  }
}

// The scale phase is Packr on SQLite alone: the cluster stops here.
pg?.stop();

// ---------------------------------------------------------------- 10. the registry signature's share of a publish (issue 11)

let signing = null;
if (O.signingCost) {
  log('registry signature cost (examples/signing_cost.rs, pinned to the server CPU)');
  const w = cpuWindow([]);
  const out = execFileSync('taskset', ['-c', String(SERVER_CPU), O.signingCost, '2000', '5'], { stdio: ['ignore', 'pipe', 'inherit'] }).toString();
  const cw = w.stop();
  signing = JSON.parse(out.trim().split('\n').pop());
  const section = 'Registry signatures (issue 11)';
  const us = signing.median_us;
  row({
    section,
    figure: 'registry signature per version (µs)',
    values: { packr: us },
    noRatio: true,
    note: `median of ${signing.rounds} rounds of ${signing.signatures} calls of Signing::sign, the publish path's own call (examples/signing_cost.rs): ${signing.us_per_signature.map((x) => fmt(x)).join(', ')} µs; CPU used meanwhile by other processes, the measurement included: ${fmt(cw.othersPct, 0)}% of one core`,
  });
  // The server is pinned to one core and publishing at concurrency 8 keeps it busy: 1/rate is its
  // time per version.
  const share = (perSec) => (Number.isFinite(perSec) ? (us / 1e6) * perSec * 100 : undefined);
  const shares = { packr: share(publish[8].packr.perSec), pg: withPg ? share(publish[8].pg.perSec) : undefined };
  row({
    section,
    figure: 'its share of the time per published version at concurrency 8 (%)',
    values: shares,
    cells: Object.fromEntries(Object.entries(shares).filter(([, v]) => v !== undefined).map(([k, v]) => [k, `${fmt(v, 1)}%`])),
    noRatio: true,
    target: { text: '< 10%', check: (v) => v.packr < 10 && (!withPg || v.pg < 10) },
    note: `signature time × versions/s at concurrency 8 (1/rate is the time per version of a server pinned to one core); against the server CPU per version instead: ${fmt((100 * us) / 1000 / publish[8].packr.serverCpuMsPerVersion, 1)}% on SQLite`,
  });
} else {
  log('no --signing-cost binary: the signature figures are left out');
}

// ---------------------------------------------------------------- 11. scale (Packr alone)

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

function pgRatioCell(r) {
  if (r.noRatio) return '';
  const x = ratio(r.values.pg, r.values.packr);
  return Number.isFinite(x) ? `${fmt(x, 2)}x` : '';
}

// With the PostgreSQL column: "Packr" is Packr on SQLite (the default), and a last ratio column gives
// PostgreSQL's figure over SQLite's.
const lines = [];
if (withPg) {
  lines.push('| figure | Packr | Packr on PostgreSQL | Verdaccio | ceiling | Packr/Verdaccio | Packr/ceiling | PostgreSQL/SQLite | target: result |');
  lines.push('|---|---|---|---|---|---|---|---|---|');
} else {
  lines.push('| figure | Packr | Verdaccio | ceiling | Packr/Verdaccio | Packr/ceiling | target: result |');
  lines.push('|---|---|---|---|---|---|---|');
}
let section = '';
for (const r of rows) {
  if (r.section !== section) {
    section = r.section;
    lines.push(withPg ? `| **${section}** | | | | | | | | |` : `| **${section}** | | | | | | |`);
  }
  const pgCells = withPg ? ` ${cell(r, 'pg')} |` : '';
  const pgRatio = withPg ? ` ${pgRatioCell(r)} |` : '';
  lines.push(`| ${r.figure} | ${cell(r, 'packr')} |${pgCells} ${cell(r, 'verdaccio')} | ${cell(r, 'ceiling')} | ${ratioCell(r, 'verdaccio')} | ${ratioCell(r, 'ceiling')} |${pgRatio} ${verdict(r)} |`);
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
  ...(withPg ? [`Packr on PostgreSQL: ${machine.postgresql}; one database per data directory, tarballs in files (PACKR_ALLOW_LOCAL_BLOBS=true), the server's processes on CPU ${SERVER_CPU} with Packr; the publish-to-visible figure: two instances on one database and one s3s-fs bucket`] : []),
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
  JSON.stringify({ machine, options: O, othersAll, stealAll, restarts, allPublish, rows: rows.map(({ target, ...r }) => ({ ...r, target: target?.text, pass: target?.check(r.values) })), variants, synthTimes, ready, refused, snapshot: snap, visibility, signing, pgTopStatements: pgTop }, null, 1),
);
log(`report written to ${join(O.out, `bench-${stamp}.md`)}`);
pg?.stop();
if (!O.keepWork) for (const d of [work, ...cleanupDirs]) rmSync(d, { recursive: true, force: true });
