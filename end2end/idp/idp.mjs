// A real OpenID provider for podtap's sign-in tests: panva's `oidc-provider` (a certified
// implementation) on 127.0.0.1, with its development login (any user name, any password) and
// one confidential client, `podtap`. People's groups come from GROUPS below. Besides it, a
// portal's token signer under /portal/ — its own key set (/portal/jwks), tokens minted on
// request (/portal/mint?sub=&aud=&groups=&exp_in=&kid=), and a rotation (/portal/rotate) that
// publishes a new key and signs with it from then on — for podtap's bearer JWTs.
//
//   node idp.mjs --secret S [--id-token-ttl SECS]
//
// podtap listens where the kernel puts it, so any loopback address's /auth/callback is a
// registered redirect address (a test provider's leniency; a real one lists them exactly).
//
// Prints one JSON line, {"issuer": …}, once it listens; stops on SIGTERM.
import { createServer } from 'node:http';
import { parseArgs } from 'node:util';
import Provider from 'oidc-provider';
import { SignJWT, exportJWK, generateKeyPair } from 'jose';

const { values: args } = parseArgs({
  options: {
    secret: { type: 'string' },
    'id-token-ttl': { type: 'string', default: '3600' },
  },
});

const GROUPS = {
  alice: ['team-shop'],
  bob: ['team-default'],
  root: ['podtap-admins'],
};

async function signingKey(kid) {
  const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
  const priv = { ...(await exportJWK(privateKey)), kid, alg: 'ES256', use: 'sig' };
  const pub = { ...(await exportJWK(publicKey)), kid, alg: 'ES256', use: 'sig' };
  return { privateKey, priv, pub, kid };
}

const providerKey = await signingKey('idp-1');
// The portal's signer: keys by kid, newest first; tokens are signed with the first.
const portal = [await signingKey('portal-1')];

const server = await new Promise((resolve) => {
  const s = createServer();
  s.listen(0, '127.0.0.1', () => resolve(s));
});
const issuer = `http://127.0.0.1:${server.address().port}`;

const provider = new Provider(issuer, {
  clients: [{
    client_id: 'podtap',
    client_secret: args.secret,
    redirect_uris: ['http://127.0.0.1/auth/callback'],
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
    id_token_signed_response_alg: 'ES256',
  }],
  jwks: { keys: [providerKey.priv] },
  scopes: ['openid', 'email', 'profile', 'groups', 'offline_access'],
  claims: { openid: ['sub'], email: ['email'], groups: ['groups'] },
  conformIdTokenClaims: false,
  pkce: { required: () => true },
  ttl: { IdToken: Number(args['id-token-ttl']) },
  features: { devInteractions: { enabled: true } },
  async findAccount(_ctx, id) {
    return {
      accountId: id,
      async claims() {
        return { sub: id, email: `${id}@example.test`, groups: GROUPS[id] ?? [] };
      },
    };
  },
});

const loopbackCallback = /^http:\/\/127\.0\.0\.1:\d+\/auth\/callback$/;
provider.Client.prototype.redirectUriAllowed = function allowed(uri) {
  return loopbackCallback.test(uri);
};

provider.use(async (ctx, next) => {
  if (!ctx.path.startsWith('/portal/')) return next();
  if (ctx.path === '/portal/jwks') {
    ctx.body = { keys: portal.map((k) => k.pub) };
  } else if (ctx.path === '/portal/rotate') {
    portal.unshift(await signingKey(`portal-${portal.length + 1}`));
    ctx.body = { kid: portal[0].kid };
  } else if (ctx.path === '/portal/mint') {
    const q = ctx.query;
    // `kid=unpublished`: signed with a key the set does not have.
    const key = q.kid === 'unpublished' ? await signingKey('unpublished') : portal[0];
    const now = Math.floor(Date.now() / 1000);
    const groups = q.groups ? String(q.groups).split(',') : [];
    ctx.body = await new SignJWT({ groups })
      .setProtectedHeader({ alg: 'ES256', kid: key.kid })
      .setSubject(String(q.sub))
      .setAudience(String(q.aud ?? 'podtap-api'))
      .setIssuer(`${issuer}/portal`)
      .setIssuedAt(now)
      .setExpirationTime(now + Number(q.exp_in ?? 300))
      .sign(key.privateKey);
  } else {
    ctx.status = 404;
  }
});

server.on('request', provider.callback());
console.log(JSON.stringify({ issuer }));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
