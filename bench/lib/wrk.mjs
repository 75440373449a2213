// Runs wrk (one thread, N connections, fixed duration) pinned to a CPU and parses its report.

import { execFile } from 'node:child_process';

function toMs(s) {
  const m = /^([\d.]+)(us|ms|s|m)$/.exec(s.trim());
  if (!m) return NaN;
  return Number(m[1]) * { us: 0.001, ms: 1, s: 1000, m: 60000 }[m[2]];
}

function toBytes(s) {
  const m = /^([\d.]+)([KMGT]?B)$/.exec(s.trim());
  if (!m) return NaN;
  return Number(m[1]) * { B: 1, KB: 1024, MB: 1024 ** 2, GB: 1024 ** 3, TB: 1024 ** 4 }[m[2]];
}

export function parseWrk(out) {
  const num = (re) => Number(re.exec(out)?.[1] ?? NaN);
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const total = /(\d+) requests in ([\d.]+\w+), ([\d.]+\w+) read/.exec(out);
  return {
    rps: num(/Requests\/sec:\s+([\d.]+)/),
    p50ms: toMs(/^\s+50%\s+(\S+)/m.exec(out)?.[1] ?? ''),
    p99ms: toMs(/^\s+99%\s+(\S+)/m.exec(out)?.[1] ?? ''),
    requests: total ? Number(total[1]) : NaN,
    bytesRead: total ? toBytes(total[3]) : NaN,
    non2xx3xx: num(/Non-2xx or 3xx responses:\s+(\d+)/) || 0,
    socketErrors: sock ? sock.slice(1).reduce((a, b) => a + Number(b), 0) : 0,
  };
}

/**
 * `wrk({url, headers, connections, seconds, cpu})` → parsed result. wrk's `--timeout` is raised to 10 s
 * so a slow server's long answers count in its latency instead of disappearing as timeouts.
 * `script` (a Lua file) and `env` (its environment) choose the paths, as the scale phase does.
 */
export function wrk({ url, headers = {}, connections = 64, seconds = 5, cpu = 1, threads = 1, script, env }) {
  const args = ['-f', '__CPU__ %U %S', 'taskset', '-c', String(cpu), 'wrk', '-t', String(threads), '-c', String(connections), '-d', `${seconds}s`, '--timeout', '10s', '--latency'];
  for (const [k, v] of Object.entries(headers)) args.push('-H', `${k}: ${v}`);
  if (script) args.push('-s', script);
  args.push(url);
  const options = { maxBuffer: 1 << 20, timeout: (seconds + 30) * 1000, env: { ...process.env, ...env } };
  return new Promise((resolve, reject) => {
    execFile('/usr/bin/time', args, options, (err, stdout, stderr) => {
      if (err) return reject(new Error(`wrk ${url}: ${err.message} ${stderr}`));
      const cpu = /__CPU__ ([\d.]+) ([\d.]+)/.exec(stderr);
      resolve({ ...parseWrk(stdout), cpuSeconds: cpu ? Number(cpu[1]) + Number(cpu[2]) : 0, raw: stdout });
    });
  });
}
