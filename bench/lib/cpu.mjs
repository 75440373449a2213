// CPU accounting, because the benchmark may share its machine: how busy the CPUs are, and how much of
// that was not the benchmark's own processes.

import { readFileSync } from 'node:fs';

const HZ = 100; // USER_HZ on Linux

/** Jiffies spent in user+nice+system on all CPUs, in irq+softirq, and stolen by the hypervisor. */
function systemBusy() {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  const [user, nice, system, , , irq, softirq, steal = 0] = line;
  return { proc: user + nice + system, irq: irq + softirq, steal };
}

/** utime+stime of a process (all threads), in jiffies; 0 if it is gone. */
export function processTicks(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(f[11]) + Number(f[12]);
  } catch {
    return 0;
  }
}

/**
 * Starts a measurement window. `stop({childSeconds})` returns
 * `{seconds, othersPct, serverPct, stealPct}`: CPU (in % of one core) used by processes that are neither
 * the given server PIDs, nor this process, nor the children whose CPU seconds are passed in; and CPU
 * time the hypervisor took from this VM (`steal`). `pids` may be a function, asked at the start and
 * at the end: a server made of several processes (Packr and its PostgreSQL, whose backends come and
 * go) counts each one it had at either moment; one born during the window counts from zero.
 */
export function cpuWindow(pids = []) {
  const list = typeof pids === 'function' ? pids : () => pids;
  const t0 = process.hrtime.bigint();
  const sys0 = systemBusy();
  const own0 = process.cpuUsage();
  const srv0 = new Map(list().map((p) => [p, processTicks(p)]));
  return {
    stop({ childSeconds = 0 } = {}) {
      const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
      const sys1 = systemBusy();
      const own = process.cpuUsage(own0);
      let ticks = 0;
      for (const p of new Set([...srv0.keys(), ...list()])) ticks += Math.max(0, processTicks(p) - (srv0.get(p) ?? 0));
      const srv = ticks / HZ;
      const total = (sys1.proc - sys0.proc) / HZ;
      const mine = srv + (own.user + own.system) / 1e6 + childSeconds;
      return {
        seconds,
        serverSeconds: srv,
        serverPct: (100 * srv) / seconds,
        stealPct: (100 * (sys1.steal - sys0.steal)) / HZ / seconds,
        othersPct: Math.max(0, (100 * (total - mine)) / seconds),
      };
    },
  };
}

/** Waits (up to maxSeconds) until the CPUs are nearly idle; returns {waited, busyPct, quiet}. */
export async function waitQuiet({ maxSeconds = 900, thresholdPct = 15, windowSeconds = 3, log = () => {} } = {}) {
  const start = Date.now();
  let lastLog = 0;
  for (;;) {
    const a = systemBusy();
    await new Promise((r) => setTimeout(r, windowSeconds * 1000));
    const b = systemBusy();
    const busyPct = (100 * (b.proc - a.proc + b.irq - a.irq)) / HZ / windowSeconds;
    const waited = (Date.now() - start) / 1000;
    if (busyPct < thresholdPct) return { waited, busyPct, quiet: true };
    if (waited >= maxSeconds) return { waited, busyPct, quiet: false };
    if (waited - lastLog >= 30) {
      log(`machine busy (${busyPct.toFixed(0)}% of one core used by other processes); waiting for it to settle (${waited.toFixed(0)}/${maxSeconds} s)`);
      lastLog = waited;
    }
  }
}
