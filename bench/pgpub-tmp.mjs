// Temporary: publish the corpus at c8 into Packr on SQLite and on PostgreSQL, N rounds, print rates.
import { mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { PgCluster } from './lib/postgres.mjs';
import { Packr, freePort } from './lib/servers.mjs';
import { prepareCorpus, publishGroups, DEFAULT_CORPUS } from './lib/load-corpus.mjs';
import { cpuWindow } from './lib/cpu.mjs';

const bins = process.argv.slice(2).filter((a) => !a.startsWith('--'));
const rounds = Number(process.env.ROUNDS || 2);
const work = mkdtempSync('/tmp/pgpub/w-');
const pg = new PgCluster({ dir: join(work, 'postgresql'), cpu: 0, statStatements: !!process.env.STATS });
await pg.start();
const env = {
  PACKR_JWT_SECRET: randomBytes(32).toString('hex'),
  PACKR_SESSION_SECRET: randomBytes(32).toString('hex'),
  PACKR_SECRET_KEY: randomBytes(32).toString('hex'),
  PACKR_SIGNING_KEY: '7f' + randomBytes(31).toString('hex'),
};
const groups = prepareCorpus('http://registry.invalid', DEFAULT_CORPUS);
let n = 0;
for (let round = 0; round < rounds; round++) {
  for (const [bi, bin] of bins.entries()) {
    for (const kind of process.env.ONLY_PG ? ['pg'] : ['sqlite', 'pg']) {
      const db = `d${n++}`;
      const opts = { bin, dataDir: join(work, db), port: await freePort(), cpu: 0, logFile: join(work, db + '.log') };
      if (kind === 'pg') {
        pg.createDatabase(db);
        Object.assign(opts, { kind: 'pg', cluster: pg, env: { ...env, PACKR_DATABASE_URL: pg.url(db), PACKR_ALLOW_LOCAL_BLOBS: 'true' } });
      }
      const s = new Packr(opts);
      s.setup();
      await s.start();
      const w = cpuWindow(() => s.pids());
      const r = await publishGroups(s.url, s.token, groups, 8);
      const { serverSeconds } = w.stop();
      console.log(`round ${round} bin ${bi} ${kind}: ${(r.versions / (r.ms / 1000)).toFixed(0)} versions/s, cpu ${((serverSeconds * 1000) / r.versions).toFixed(2)} ms/version, errors ${r.errors.length}`);
      if (process.env.STATS && kind === 'pg') console.log(JSON.stringify(pg.topStatements(db), null, 1).slice(0, 6000));
      await s.stop();
    }
  }
}
await pg.stop();
