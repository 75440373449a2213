// A real OpenID Connect provider (oidc-provider, installed by support/oidc.rs) on a free loopback
// port, for the OAuth sign-in tests:
//   OIDC_DIR=<install dir> EMAIL_DOMAIN=example.com node oidc-provider.mjs
// Prints {"issuer": ...} once listening, then reads one line from stdin, the redirect URIs to
// register (comma-separated), and prints {"ready": true}. Its development login form takes any
// name with any password; account NAME has the verified e-mail NAME@EMAIL_DOMAIN.
import http from 'node:http';
import readline from 'node:readline';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';

const require = createRequire(process.env.OIDC_DIR + '/');
const { default: Provider } = await import(pathToFileURL(require.resolve('oidc-provider')).href);
const domain = process.env.EMAIL_DOMAIN || 'example.com';

const server = http.createServer();
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const issuer = `http://127.0.0.1:${server.address().port}`;
console.log(JSON.stringify({ issuer }));

const lines = readline.createInterface({ input: process.stdin });
const redirects = await new Promise((resolve) => lines.once('line', resolve));
lines.on('close', () => process.exit(0));

const provider = new Provider(issuer, {
  clients: [{
    client_id: process.env.CLIENT_ID || 'packr-test',
    client_secret: process.env.CLIENT_SECRET || 'packr-secret',
    redirect_uris: redirects.trim().split(','),
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  pkce: { required: () => true },
  features: { devInteractions: { enabled: true }, userinfo: { enabled: true } },
  claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name', 'preferred_username'] },
  // Put the e-mail and name claims in the ID token too, not only in userinfo.
  conformIdTokenClaims: false,
  findAccount: async (ctx, sub) => ({
    accountId: sub,
    claims: async () => ({
      sub, email: `${sub}@${domain}`, email_verified: true, name: sub, preferred_username: sub,
    }),
  }),
  cookies: { keys: ['packr-test-cookie-key'] },
});
server.on('request', provider.callback());
console.log(JSON.stringify({ ready: true }));
