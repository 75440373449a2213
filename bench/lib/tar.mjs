// Minimal tar reading and writing: enough to find the package.json and README inside an npm tarball
// (ustar, pax `x` headers and GNU `L` long names) and to build small synthetic tarballs.

import { gunzipSync, gzipSync } from 'node:zlib';

function cstring(buf, start, len) {
  const end = buf.indexOf(0, start);
  return buf.toString('utf8', start, end === -1 || end > start + len ? start + len : end);
}

function octal(buf, start, len) {
  const s = cstring(buf, start, len).trim();
  return s ? parseInt(s, 8) : 0;
}

function paxPath(data) {
  // records: "<len> key=value\n"
  let i = 0;
  let path = null;
  while (i < data.length) {
    const sp = data.indexOf(0x20, i);
    if (sp === -1) break;
    const len = parseInt(data.toString('utf8', i, sp), 10);
    if (!len) break;
    const rec = data.toString('utf8', sp + 1, i + len - 1);
    const eq = rec.indexOf('=');
    if (rec.slice(0, eq) === 'path') path = rec.slice(eq + 1);
    i += len;
  }
  return path;
}

/** Yields `{ name, type, data }` for every entry of a (gzipped) tarball. */
export function* tarEntries(tgz) {
  const tar = tgz[0] === 0x1f && tgz[1] === 0x8b ? gunzipSync(tgz) : tgz;
  let off = 0;
  let longName = null;
  let paxName = null;
  while (off + 512 <= tar.length) {
    const header = tar.subarray(off, off + 512);
    if (header.every((b) => b === 0)) break;
    const size = octal(header, 124, 12);
    const type = String.fromCharCode(header[156] || 0x30);
    const prefix = cstring(header, 345, 155);
    let name = cstring(header, 0, 100);
    if (prefix && header.toString('latin1', 257, 262) === 'ustar') name = `${prefix}/${name}`;
    const data = tar.subarray(off + 512, off + 512 + size);
    off += 512 + Math.ceil(size / 512) * 512;
    if (type === 'L') { longName = cstring(data, 0, data.length); continue; }
    if (type === 'x') { paxName = paxPath(data); continue; }
    if (type === 'g') continue;
    if (paxName) name = paxName; else if (longName) name = longName;
    paxName = longName = null;
    yield { name, type, data };
  }
}

/** The package.json (parsed) and README of an npm tarball, whatever its top folder is called. */
export function readPackage(tgz) {
  let manifest = null;
  let readme = null;
  let readmeFilename = null;
  for (const { name, type, data } of tarEntries(tgz)) {
    if (type !== '0' && type !== '\0') continue;
    const parts = name.replace(/^\.\//, '').split('/');
    if (parts.length !== 2) continue;
    if (parts[1] === 'package.json' && !manifest) manifest = JSON.parse(data.toString('utf8'));
    else if (/^readme(\.(md|markdown|txt))?$/i.test(parts[1]) && !readme) {
      readme = data.toString('utf8');
      readmeFilename = parts[1];
    }
  }
  if (!manifest) throw new Error('no package.json at the top folder of the tarball');
  return { manifest, readme, readmeFilename };
}

function header(name, size, mtime) {
  const h = Buffer.alloc(512);
  h.write(name, 0, 100, 'utf8');
  h.write('0000644\0', 100, 'latin1');
  h.write('0000000\0', 108, 'latin1');
  h.write('0000000\0', 116, 'latin1');
  h.write(size.toString(8).padStart(11, '0') + '\0', 124, 'latin1');
  h.write(Math.floor(mtime / 1000).toString(8).padStart(11, '0') + '\0', 136, 'latin1');
  h.write('        ', 148, 'latin1');
  h.write('0', 156, 'latin1');
  h.write('ustar\0', 257, 'latin1');
  h.write('00', 263, 'latin1');
  let sum = 0;
  for (const b of h) sum += b;
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'latin1');
  return h;
}

/** A gzipped tarball of `files` ({path: string|Buffer}). */
export function makeTgz(files, mtime = Date.UTC(1985, 9, 26, 8, 15)) {
  const chunks = [];
  for (const [path, content] of Object.entries(files)) {
    const data = Buffer.isBuffer(content) ? content : Buffer.from(content, 'utf8');
    chunks.push(header(path, data.length, mtime), data, Buffer.alloc((512 - (data.length % 512)) % 512));
  }
  chunks.push(Buffer.alloc(1024));
  return gzipSync(Buffer.concat(chunks), { level: 9 });
}
