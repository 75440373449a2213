// A throwaway PostgreSQL cluster for the benchmark's PostgreSQL column: Debian's PostgreSQL (15 on
// the project's machines; bench/run.sh installs `postgresql` with apt-get when no initdb is found),
// `initdb` into a directory of the run, as the `postgres` user when the benchmark runs as root (initdb
// refuses root), trust authentication on a free loopback port, the socket in the data directory.
//
// Durability is PostgreSQL's default and is not weakened: fsync, synchronous_commit and
// full_page_writes stay on, so a publish's 201 means its commit is on disk, as with SQLite. The
// settings below are the usual first changes for a dedicated server with a few GB of memory, written
// out so the report can print them.

import { spawn, execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { freePort } from './servers.mjs';

export const PG_SETTINGS = {
  shared_buffers: '256MB', // Debian's default is 128MB; the whole benchmark database fits either way
  effective_cache_size: '2GB', // planner hint only
  max_wal_size: '2GB', // with checkpoint_timeout: no forced checkpoint in the middle of a publish round
  checkpoint_timeout: '15min',
  random_page_cost: '1.1', // SSD-backed disk
  max_connections: '100', // the default; each Packr instance keeps at most 16 + 4
  fsync: 'on',
  synchronous_commit: 'on',
  full_page_writes: 'on',
};

/** The newest installed PostgreSQL's bin directory (`/usr/lib/postgresql/N/bin`), or null. */
export function pgBinDir() {
  if (!existsSync('/usr/lib/postgresql')) return null;
  const found = readdirSync('/usr/lib/postgresql')
    .filter((d) => /^\d+$/.test(d) && existsSync(join('/usr/lib/postgresql', d, 'bin', 'initdb')))
    .sort((a, b) => Number(a) - Number(b));
  return found.length ? join('/usr/lib/postgresql', found.at(-1), 'bin') : null;
}

const isRoot = () => process.getuid?.() === 0;

/** [cmd, args] running `program args` as the `postgres` user when we are root. */
function asPostgres(program, args) {
  return isRoot() ? ['runuser', ['-u', 'postgres', '--', program, ...args]] : [program, args];
}

/** Every process whose parent is `ppid` (PostgreSQL's backends and helper processes). */
function childrenOf(ppid) {
  const out = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[1]) === ppid) out.push(Number(d));
    } catch {
      /* gone meanwhile */
    }
  }
  return out;
}

export class PgCluster {
  /** `dir`: a new directory for the cluster; `cpu`: the CPU its processes are pinned to. */
  constructor({ dir, cpu, statStatements = false }) {
    Object.assign(this, { dir, cpu, statStatements });
    // Inside the data directory: the server runs as `postgres`, which cannot write into the run's.
    this.logFile = join(dir, 'server.log');
    this.bin = pgBinDir();
    if (!this.bin) throw new Error('PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb); bench/run.sh installs it');
    this.port = null;
    this.settings = { ...PG_SETTINGS };
    if (statStatements) this.settings.shared_preload_libraries = 'pg_stat_statements';
  }

  run(program, args, options = {}) {
    const [cmd, a] = asPostgres(join(this.bin, program), args);
    return execFileSync(cmd, a, { stdio: ['ignore', 'pipe', 'pipe'], ...options });
  }

  async start() {
    mkdirSync(this.dir, { recursive: true });
    if (isRoot()) {
      execFileSync('chown', ['postgres:postgres', this.dir]);
      // The postgres user must be able to reach the cluster's directory: the run's work directory
      // (mkdtemp makes it 0700) gets search permission for others, nothing more.
      const parent = dirname(this.dir);
      chmodSync(parent, statSync(parent).mode & 0o7777 | 0o011);
    }
    this.run('initdb', ['-D', this.dir, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--locale=C.UTF-8', '--no-sync']);
    const opts = Object.entries(this.settings).map(([k, v]) => `-c ${k}=${v}`).join(' ');
    let last;
    for (let attempt = 0; attempt < 3; attempt++) {
      const port = await freePort();
      const [cmd, args] = asPostgres(join(this.bin, 'pg_ctl'), [
        '-D', this.dir, '-l', this.logFile, '-w', '-t', '60',
        '-o', `-c listen_addresses=127.0.0.1 -p ${port} -k ${this.dir} ${opts}`,
        'start',
      ]);
      try {
        // taskset execs the rest: pg_ctl and the server it forks inherit the CPU pinning.
        await new Promise((resolve, reject) => {
          const p = spawn('taskset', ['-c', String(this.cpu), cmd, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
          let err = '';
          p.stderr.on('data', (d) => (err += d));
          p.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`pg_ctl start exited with ${code}: ${err}`))));
        });
        this.port = port;
        break;
      } catch (e) {
        last = e;
      }
    }
    if (!this.port) {
      let log = '';
      try {
        log = readFileSync(this.logFile, 'utf8').slice(-3000);
      } catch {}
      throw new Error(`PostgreSQL did not start: ${last?.message}\n${log}`);
    }
    this.postmaster = Number(readFileSync(join(this.dir, 'postmaster.pid'), 'utf8').split('\n')[0]);
    this.version = this.psql('postgres', 'SHOW server_version').trim();
    if (this.statStatements) this.psql('postgres', 'CREATE EXTENSION IF NOT EXISTS pg_stat_statements');
    return this.port;
  }

  url(database) {
    return `postgres://postgres@127.0.0.1:${this.port}/${database}`;
  }

  /** Runs one SQL command with psql; answers its unaligned, tuples-only output. */
  psql(database, sql) {
    return execFileSync(join(this.bin, 'psql'), ['-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-d', this.url(database), '-c', sql], {
      stdio: ['ignore', 'pipe', 'pipe'],
    }).toString('utf8');
  }

  /** Creates an empty database; answers its URL. */
  createDatabase(name) {
    this.psql('postgres', `CREATE DATABASE ${name}`);
    if (this.statStatements) this.psql(name, 'CREATE EXTENSION IF NOT EXISTS pg_stat_statements');
    return this.url(name);
  }

  /** The postmaster and every process it forked (backends, WAL writer, checkpointer, …). */
  pids() {
    if (!this.postmaster) return [];
    return [this.postmaster, ...childrenOf(this.postmaster)];
  }

  /** With pg_stat_statements on: the statements that took the most time in `database`. */
  topStatements(database, limit = 15) {
    if (!this.statStatements) return [];
    const out = this.psql(
      database,
      `SELECT calls, round(total_exec_time::numeric, 1), round(mean_exec_time::numeric, 3), left(regexp_replace(query, '\\s+', ' ', 'g'), 160)
       FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
       ORDER BY total_exec_time DESC LIMIT ${limit}`,
    );
    return out.trim().split('\n').filter(Boolean).map((l) => {
      const [calls, totalMs, meanMs, query] = l.split('|');
      return { calls: Number(calls), totalMs: Number(totalMs), meanMs: Number(meanMs), query };
    });
  }

  stop() {
    if (!this.port) return;
    try {
      this.run('pg_ctl', ['-D', this.dir, '-m', 'fast', '-w', 'stop']);
    } catch {
      /* already stopped */
    }
    this.port = null;
    this.postmaster = null;
  }
}
