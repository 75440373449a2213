// Verifies registry signatures exactly as `npm audit signatures` does once it has the keys:
// the keys from `/-/npm/v1/keys`, mapped as npm's lib/utils/verify-signatures.js maps them, and
// npm's own pacote `manifest(spec, { verifySignatures: true, '//host/:_keys': keys })`.
// (`npm audit signatures` itself first refreshes Sigstore's TUF metadata from the internet.)
//
// usage: node pacote-verify.js <pacote dir> <registry url/> <token> <cache dir> <spec>...
// prints one JSON line per spec: {spec, ok, code, message, signatures}
'use strict'
const [pacoteDir, registry, token, cache, ...specs] = process.argv.slice(2)
const pacote = require(pacoteDir)

async function main () {
  const response = await fetch(new URL('-/npm/v1/keys', registry))
  if (!response.ok) {
    throw new Error(`GET /-/npm/v1/keys: ${response.status}`)
  }
  const { keys: ks } = await response.json()
  const keys = ks.map((key) => ({
    ...key,
    pemkey: `-----BEGIN PUBLIC KEY-----\n${key.key}\n-----END PUBLIC KEY-----`,
  }))
  const parsed = new URL(registry)
  const regKey = `//${parsed.host}${parsed.pathname}`
  for (const spec of specs) {
    try {
      const manifest = await pacote.manifest(spec, {
        verifySignatures: true,
        [`${regKey}:_keys`]: keys,
        [`${regKey}:_authToken`]: token,
        registry,
        cache,
        preferOnline: true,
      })
      console.log(JSON.stringify({ spec, ok: true, signatures: manifest._signatures }))
    } catch (err) {
      console.log(JSON.stringify({ spec, ok: false, code: err.code, message: err.message }))
    }
  }
}

main().catch((err) => {
  console.error(err)
  process.exit(2)
})
