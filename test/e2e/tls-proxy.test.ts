// examples/nginx/stocklock.conf run for real: Debian's nginx terminates TLS on loopback in front of the built CLI.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { ROOT, type RunningCli, runCli, spawnCli, waitHealthy } from '../helpers/cli.js';
import { freePort, waitFor } from '../helpers/http.js';
import { httpsRaw, pkcePair, selfSignedCertificate } from '../helpers/oauth.js';
import { describeNginx, NGINX } from '../helpers/requirements.js';
import { tempDir } from '../helpers/temp.js';

const REDIRECT = 'https://claude.ai/api/mcp/auth_callback';

/** The shipped server block with this test's ports and certificate, inside a minimal nginx.conf. */
function nginxConf(
  dir: string,
  listenPort: number,
  upstreamPort: number,
  cert: { key: string; cert: string },
): string {
  const example = readFileSync(join(ROOT, 'examples/nginx/stocklock.conf'), 'utf8');
  const server = example
    .split('\n')
    .filter((line) => !line.startsWith('#'))
    .join('\n')
    .replace('listen 443 ssl;', `listen 127.0.0.1:${listenPort} ssl;`)
    .replace('server_name shop-mcp.example.com;', 'server_name localhost;')
    .replace(/ssl_certificate\s+\S+;/, `ssl_certificate ${cert.cert};`)
    .replace(/ssl_certificate_key\s+\S+;/, `ssl_certificate_key ${cert.key};`)
    .replace('http://127.0.0.1:3000', `http://127.0.0.1:${upstreamPort}`);
  expect(server).not.toContain('example.com');
  for (const sub of ['body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'])
    mkdirSync(join(dir, sub), { recursive: true });
  return `daemon off;
${process.getuid?.() === 0 ? 'user root;' : ''}
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
${server}
}
`;
}

const running: { nginx?: ChildProcess; cli?: RunningCli; remove?: () => void } = {};
afterEach(async () => {
  if (running.nginx && running.nginx.exitCode === null) {
    const exited = new Promise((resolve) => running.nginx?.once('exit', resolve));
    running.nginx.kill('SIGTERM');
    await exited;
  }
  await running.cli?.kill();
  running.remove?.();
  Object.assign(running, { nginx: undefined, cli: undefined, remove: undefined });
});

describeNginx('behind nginx with TLS', () => {
  it('serves discovery, consent, tokens and MCP through the proxy, naming the public https URL everywhere', async () => {
    const tmp = tempDir('stocklock-nginx-');
    running.remove = tmp.remove;
    const cert = selfSignedCertificate(tmp.dir);
    const ca = readFileSync(cert.cert, 'utf8');
    const db = join(tmp.dir, 'stocklock.db');
    expect(runCli(['import', join(ROOT, 'examples/demo-catalog.json'), '--db', db]).status).toBe(0);
    const [upstreamPort, proxyPort] = [await freePort(), await freePort()];
    const publicUrl = `https://localhost:${proxyPort}`;
    running.cli = spawnCli([
      'serve',
      '--http',
      '--port',
      String(upstreamPort),
      '--db',
      db,
      '--public-url',
      publicUrl,
    ]);
    await waitHealthy(`http://127.0.0.1:${upstreamPort}/mcp`, running.cli);

    const conf = join(tmp.dir, 'nginx.conf');
    writeFileSync(conf, nginxConf(tmp.dir, proxyPort, upstreamPort, cert));
    execFileSync(NGINX, ['-t', '-c', conf, '-p', tmp.dir], { stdio: 'pipe' });
    running.nginx = spawn(NGINX, ['-c', conf, '-p', tmp.dir], { stdio: 'ignore' });
    await waitFor(
      async () => (await httpsRaw(`${publicUrl}/healthz`, ca).catch(() => ({ status: 0 }))).status === 200,
      15_000,
      50,
    );

    const probe = await httpsRaw(`${publicUrl}/mcp`, ca, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Accept: 'application/json, text/event-stream' },
      body: '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}',
    });
    expect(probe.status).toBe(401);
    expect(probe.headers['www-authenticate']).toContain(
      `resource_metadata="${publicUrl}/.well-known/oauth-protected-resource/mcp"`,
    );
    const prm = JSON.parse(
      (await httpsRaw(`${publicUrl}/.well-known/oauth-protected-resource/mcp`, ca)).text,
    );
    expect(prm).toMatchObject({ resource: `${publicUrl}/mcp`, authorization_servers: [publicUrl] });
    const asm = JSON.parse((await httpsRaw(`${publicUrl}/.well-known/oauth-authorization-server`, ca)).text);
    expect(asm.token_endpoint).toBe(`${publicUrl}/token`);

    const registered = JSON.parse(
      (
        await httpsRaw(asm.registration_endpoint, ca, {
          method: 'POST',
          headers: { 'Content-Type': 'application/json' },
          body: JSON.stringify({
            client_name: 'Claude',
            redirect_uris: [REDIRECT],
            token_endpoint_auth_method: 'none',
          }),
        })
      ).text,
    );
    const pkce = pkcePair();
    const authorize = new URL(asm.authorization_endpoint);
    for (const [k, v] of Object.entries({
      response_type: 'code',
      client_id: registered.client_id,
      redirect_uri: REDIRECT,
      code_challenge: pkce.challenge,
      code_challenge_method: 'S256',
      state: 'via-nginx',
      resource: prm.resource,
    }))
      authorize.searchParams.set(k, v);
    const page = await httpsRaw(authorize.href, ca);
    expect(page.status).toBe(200);
    // Over https the CSRF cookie is __Host- prefixed and Secure.
    const setCookie = (page.headers['set-cookie'] as string[])[0] as string;
    expect(setCookie).toMatch(/^__Host-stocklock_csrf=.*; Secure/);
    const fields = Object.fromEntries(
      [...page.text.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)">/g)]
        .slice(0, 9)
        .map((m) => [m[1], (m[2] as string).replace(/&amp;/g, '&')]),
    );
    const consent = await httpsRaw(`${publicUrl}/authorize`, ca, {
      method: 'POST',
      headers: {
        'Content-Type': 'application/x-www-form-urlencoded',
        Cookie: setCookie.split(';')[0] as string,
        Origin: publicUrl,
      },
      body: new URLSearchParams({ ...fields, decision: 'allow' }).toString(),
    });
    expect(consent.status).toBe(303);
    const back = new URL(consent.headers.location as string);
    expect(back.searchParams.get('iss')).toBe(publicUrl);

    const tokens = JSON.parse(
      (
        await httpsRaw(asm.token_endpoint, ca, {
          method: 'POST',
          headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
          body: new URLSearchParams({
            grant_type: 'authorization_code',
            client_id: registered.client_id,
            code: back.searchParams.get('code') as string,
            code_verifier: pkce.verifier,
            redirect_uri: REDIRECT,
            resource: prm.resource,
          }).toString(),
        })
      ).text,
    );
    expect(tokens.token_type).toBe('Bearer');
    const init = await httpsRaw(`${publicUrl}/mcp`, ca, {
      method: 'POST',
      headers: {
        'Content-Type': 'application/json',
        Accept: 'application/json, text/event-stream',
        Authorization: `Bearer ${tokens.access_token}`,
      },
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 1,
        method: 'initialize',
        params: {
          protocolVersion: '2025-06-18',
          capabilities: {},
          clientInfo: { name: 'via-nginx', version: '0' },
        },
      }),
    });
    expect(init.status).toBe(200);
    expect(init.headers['mcp-session-id']).toBeTruthy();
  }, 90_000);
});
