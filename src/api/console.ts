import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Router, type Response } from 'express';
import type { ConsoleSignIn } from '../console';
import type { AdminRole, Person } from '../admin';
import { CONSOLE_COOKIE, CSRF_HEADER, consoleCookie, Forbidden, Unauthenticated } from './auth';

export interface ConsoleRouteDeps {
  signIn: Pick<ConsoleSignIn, 'begin' | 'finish' | 'session' | 'end'>;
  roleOf: (person: Person) => Promise<AdminRole | undefined>;
}

/** No script but the console's own, nothing from elsewhere, no framing. */
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";
const ASSETS: Record<string, string> = { '': 'index.html', 'app.js': 'app.js', 'app.css': 'app.css' };
const TYPES: Record<string, string> = { html: 'text/html; charset=utf-8', js: 'text/javascript; charset=utf-8', css: 'text/css; charset=utf-8' };

/**
 * /console: the security team's pages (static, built with the broker, no CDN), signed in with the
 * authorization code flow and PKCE at the company's identity provider; a session is an
 * HttpOnly, Secure, SameSite=Strict cookie; every change needs the session's CSRF token.
 */
export function consoleRouter(deps: ConsoleRouteDeps): Router {
  const router = Router();
  const dir = join(__dirname, '../console/assets');
  const assets = new Map(Object.entries(ASSETS).map(([path, file]) => [path, readFileSync(join(dir, file))]));
  const secure = (res: Response) => {
    res.setHeader('Content-Security-Policy', CSP);
    res.setHeader('X-Content-Type-Options', 'nosniff');
    res.setHeader('Referrer-Policy', 'no-referrer');
    res.setHeader('Cross-Origin-Opener-Policy', 'same-origin');
  };

  /** A redirect without a body (Express writes one; the API document says none). */
  const redirect = (res: Response, url: string) => void res.status(302).location(url).end();

  for (const path of Object.keys(ASSETS))
    router.get(`/console/${path}`, (_req, res) => {
      secure(res);
      res.setHeader('Cache-Control', 'no-cache');
      res.type(TYPES[ASSETS[path]!.split('.').pop()!]!).send(assets.get(path));
    });

  router.get('/console/login', async (req, res) => {
    secure(res);
    res.setHeader('Cache-Control', 'no-store');
    const param = (name: string) => (typeof req.query[name] === 'string' ? (req.query[name] as string) : undefined);
    redirect(res, await deps.signIn.begin(param('issuer'), param('return_to')));
  });

  router.get('/console/callback', async (req, res) => {
    secure(res);
    res.setHeader('Cache-Control', 'no-store');
    const { cookie, maxAgeSeconds, returnTo } = await deps.signIn.finish(req.query as Record<string, unknown>);
    res.setHeader('Set-Cookie', `${CONSOLE_COOKIE}=${cookie}; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=${maxAgeSeconds}`);
    redirect(res, returnTo);
  });

  router.get('/console/api/session', async (req, res) => {
    res.setHeader('Cache-Control', 'no-store');
    const cookie = consoleCookie(req);
    const session = cookie === undefined ? undefined : await deps.signIn.session(cookie);
    if (!session) throw new Unauthenticated('not signed in to the console');
    const role = await deps.roleOf(session.person);
    res.json({ user: session.person.sub, issuer: session.person.iss, ...(role !== undefined && { role }), csrf: session.csrf, expires_at: session.expiresAt.toISOString() });
  });

  router.post('/console/logout', async (req, res) => {
    const cookie = consoleCookie(req);
    const session = cookie === undefined ? undefined : await deps.signIn.session(cookie);
    if (session && req.headers[CSRF_HEADER] !== session.csrf) throw new Forbidden(`a change from the console carries its ${CSRF_HEADER} header`);
    if (cookie !== undefined) await deps.signIn.end(cookie);
    res.setHeader('Set-Cookie', `${CONSOLE_COOKIE}=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0`);
    res.status(204).end();
  });
  return router;
}
