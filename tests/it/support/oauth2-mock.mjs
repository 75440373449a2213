// oauth2-mock-server (installed by support/oidc.rs) on a free loopback port, for the OAuth
// sign-in tests. Its /authorize redirects back at once with a code (no login page).
//   OIDC_DIR=<install dir> MODE=github|oidc node oauth2-mock.mjs
// MODE=github answers GitHub's REST API: GET /user (the mock's userinfo, via its beforeUserinfo
// hook) with GITHUB_LOGIN and GITHUB_ID, and GET /user/emails with GITHUB_EMAIL, verified unless
// GITHUB_EMAIL_VERIFIED=false. MODE=oidc is the mock as an OpenID provider; ID_TOKEN_CLAIMS (JSON)
// are merged into its ID tokens, to break them on purpose, and USERINFO (JSON) is what its
// userinfo endpoint answers.
// Prints {"url": "http://127.0.0.1:PORT"} once listening.
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';

const require = createRequire(process.env.OIDC_DIR + '/');
const { OAuth2Server } = await import(pathToFileURL(require.resolve('oauth2-mock-server')).href);
const env = process.env;
const github = env.MODE === 'github';

const server = new OAuth2Server(undefined, undefined,
  github ? { endpoints: { userinfo: '/user' } } : undefined);
await server.issuer.keys.generate('RS256');
const extraClaims = JSON.parse(env.ID_TOKEN_CLAIMS || '{}');
server.service.on('beforeTokenSigning', (token) => {
  // Only ID tokens carry an audience here.
  if (token.payload.aud !== undefined) Object.assign(token.payload, extraClaims);
});
if (!github && env.USERINFO) {
  server.service.on('beforeUserinfo', (response) => { response.body = JSON.parse(env.USERINFO); });
}
if (github) {
  server.service.on('beforeUserinfo', (response) => {
    response.body = { login: env.GITHUB_LOGIN || 'octocat', id: Number(env.GITHUB_ID || 583231), name: 'The Octocat' };
  });
  server.service.addRoute('GET', '/user/emails', (req, res) => {
    const emails = env.GITHUB_EMAIL
      ? [{ email: env.GITHUB_EMAIL, primary: true, verified: env.GITHUB_EMAIL_VERIFIED !== 'false' }]
      : [];
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify(emails));
  });
}
await server.start(0, '127.0.0.1');
const url = `http://127.0.0.1:${server.address().port}`;
server.issuer.url = url;
console.log(JSON.stringify({ url }));
process.stdin.resume();
process.stdin.on('end', () => process.exit(0));
