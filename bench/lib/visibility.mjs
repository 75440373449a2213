// Read-your-writes across instances, timed (issue 10: "the time from an acknowledged publish on one
// instance to the new version on another: p99 < 50 ms"). Two `packr serve` processes, A and B, on one
// PostgreSQL database and one s3s-fs bucket, as a real cluster runs (no local state, shared secrets).
// For each version: B's abbreviated packument is read (so B holds it in its cache, with the previous
// version), the version is published on A with the PUT `npm publish` sends, and as soon as A's 201
// has arrived B's abbreviated packument is read again and again, back to back, until it lists the
// new version. The figure is the time from the 201 to the end of the first answer that lists it.

import { join } from 'node:path';
import { publishOne, publishGroups } from './load-corpus.mjs';
import { synthBodies } from './synth.mjs';
import { agent as makeAgent, request, packagePath } from './http.mjs';
import { Packr, S3sFs, freePort } from './servers.mjs';
import { cpuWindow } from './cpu.mjs';

const ABBREVIATED = 'application/vnd.npm.install-v1+json; q=1.0, application/json; q=0.8, */*';
const NAME = 'bench-visibility';
const GIVE_UP_MS = 5000;

/** The value at quantile q (0..1) of an ascending array, nearest rank. */
export function quantile(sorted, q) {
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}

/**
 * `{bin, s3sBin, pg, work, cpu, count, env, log, groups}` → `{count, p50, p99, max, firstPollFresh,
 * meanPolls, timeouts, bytes, othersPct, times, publish}`; `env` holds the shared secrets, `pg` the
 * running PgCluster. With `groups` (the prepared corpus), the corpus is then published into A at
 * concurrency 8 while B listens: the publishing rate of a cluster, blob claims and echoes included
 * (`publish`: `{versions, ms, errors, perSec, othersPct}`).
 */
export async function visibilityPhase({ bin, s3sBin, pg, work, cpu, count, env: secrets, log, groups }) {
  const s3 = new S3sFs({ bin: s3sBin, dir: join(work, 's3'), port: await freePort(), cpu, logFile: join(work, 's3s-fs.log') });
  await s3.start();
  const env = { ...secrets, PACKR_DATABASE_URL: pg.createDatabase('bench_cluster'), ...s3.env() };
  const instance = async (label) =>
    new Packr({ kind: `pg-${label}`, bin, dataDir: join(work, `cluster-${label}`), port: await freePort(), cpu, logFile: join(work, `packr-cluster-${label}.log`), env, cluster: pg });
  const a = await instance('a');
  const b = await instance('b');
  const running = [];
  const agentA = makeAgent(1);
  const agentB = makeAgent(1);
  try {
    const token = a.setup(); // the user and token live in the shared database: valid on both
    await a.start();
    running.push(a);
    await b.start();
    running.push(b);
    log(`  instances A ${a.url} and B ${b.url} on ${pg.url('bench_cluster')}, tarballs in s3s-fs ${s3.endpoint}`);
    const bodies = synthBodies('http://registry.invalid', count + 1, NAME);
    const readB = () =>
      request(b.url + packagePath(NAME), { headers: { authorization: `Bearer ${token}`, accept: ABBREVIATED }, agent: agentB });
    const lists = (res, version) => res.status === 200 && res.body.includes(`"${version}":`);
    const waitFor = async (version) => {
      const t0 = process.hrtime.bigint();
      let polls = 0;
      let res;
      for (;;) {
        polls++;
        res = await readB();
        const ms = Number(process.hrtime.bigint() - t0) / 1e6;
        if (lists(res, version)) return { ms, polls, bytes: res.body.length };
        if (ms > GIVE_UP_MS) return { ms: Infinity, polls, bytes: res.body.length };
      }
    };

    await publishOne(a.url, token, bodies[0], agentA);
    if (!Number.isFinite((await waitFor(bodies[0].version)).ms)) throw new Error(`B never listed ${NAME}@${bodies[0].version}`);
    const w = cpuWindow(() => [a.pid, b.pid, s3.proc.pid, ...pg.pids()]);
    const times = [];
    let firstPollFresh = 0;
    let polls = 0;
    let timeouts = 0;
    let bytes = 0;
    for (let i = 1; i <= count; i++) {
      const before = await readB();
      if (!lists(before, bodies[i - 1].version)) throw new Error(`B lost ${NAME}@${bodies[i - 1].version} (HTTP ${before.status})`);
      await publishOne(a.url, token, bodies[i], agentA);
      const r = await waitFor(bodies[i].version);
      if (!Number.isFinite(r.ms)) timeouts++;
      times.push(r.ms);
      polls += r.polls;
      if (r.polls === 1) firstPollFresh++;
      bytes = r.bytes;
    }
    const { othersPct } = w.stop();
    let publish = null;
    if (groups) {
      const wp = cpuWindow(() => [a.pid, b.pid, s3.proc.pid, ...pg.pids()]);
      const r = await publishGroups(a.url, token, groups, 8);
      publish = { ...r, perSec: r.versions / (r.ms / 1000), othersPct: wp.stop().othersPct };
    }
    const sorted = times.slice().sort((x, y) => x - y);
    return {
      count,
      p50: quantile(sorted, 0.5),
      p99: quantile(sorted, 0.99),
      max: sorted.at(-1),
      firstPollFresh,
      meanPolls: polls / count,
      timeouts,
      bytes,
      othersPct,
      times,
      publish,
    };
  } finally {
    agentA.destroy();
    agentB.destroy();
    for (const s of running) await s.stop();
    await s3.stop();
  }
}
