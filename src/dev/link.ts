/**
 * A person's browser against `writ dev`'s providers, for the demo, `writ dev link-account` and
 * the tests: an HTTP client that keeps cookies per host (as a browser does: RFC 6265 §5.4 sends
 * a host's cookies to any of its ports), follows redirects, trusts Writ's CA, and, on a login page
 * of the dev OpenID Provider or the dev SaaS (`/interaction/<uid>`), signs in with a user name.
 * Nothing is skipped: the pages are Writ's and the providers' own.
 *
 * {@link linkAccount} opens a link the token vault handed out (`interaction_required`'s
 * `link_uri`): the user signs in to Writ at their identity provider, confirms, signs in at the
 * SaaS, and the SaaS's redirect lands on Writ's callback, which stores the grant.
 */
import { tlsFetch } from '../mcp/tls-fetch';
import { CookieJar } from './id-token';

/** A page as the browser got it: its URL, status, body, and where it redirects (absolute). */
export interface DevPage {
  readonly url: string;
  readonly status: number;
  readonly body: string;
  readonly location?: string;
}

/** The flow did not end where it should: the page it stopped at, in one line. */
export class DevBrowserError extends Error {}

const LOGIN_PAGE = /\/interaction\/[A-Za-z0-9_-]+$/;

export class DevBrowser {
  readonly #jars = new Map<string, CookieJar>();
  readonly #https: typeof fetch;

  /** `ca`: Writ's CA (PEM), the only one the browser trusts for https. */
  constructor(ca: string) {
    this.#https = tlsFetch({ ca });
  }

  #jar(url: URL): CookieJar {
    let jar = this.#jars.get(url.hostname);
    if (!jar) this.#jars.set(url.hostname, (jar = new CookieJar()));
    return jar;
  }

  /** One request, GET or (with `form`) a form POST; redirects are returned, not followed. */
  async visit(target: string, form?: Record<string, string>): Promise<DevPage> {
    const url = new URL(target);
    const init: RequestInit = {
      method: form ? 'POST' : 'GET',
      redirect: 'manual',
      signal: AbortSignal.timeout(10_000),
      headers: { cookie: this.#jar(url).header(), ...(form && { 'content-type': 'application/x-www-form-urlencoded' }) },
      ...(form && { body: new URLSearchParams(form).toString() }),
    };
    const res = url.protocol === 'https:' ? await this.#https(url, init) : await fetch(url, init);
    this.#jar(url).store(res.headers.getSetCookie());
    const location = res.headers.get('location');
    return { url: url.href, status: res.status, body: await res.text(), ...(location !== null && { location: new URL(location, url).href }) };
  }

  /** Follows redirects from `target`, signing in as `username` on each provider's login page; the first page that is neither. */
  async follow(target: string, username: string, form?: Record<string, string>): Promise<DevPage> {
    let page = await this.visit(target, form);
    for (let hops = 0; hops < 20; hops++) {
      if (page.status === 200 && LOGIN_PAGE.test(new URL(page.url).pathname)) page = await this.visit(`${page.url}/login`, { username });
      else if (page.location !== undefined) page = await this.visit(page.location);
      else return page;
    }
    throw new DevBrowserError('too many redirects');
  }
}

/** The problem detail Writ answered, or the page's first line. */
const why = (page: DevPage): string => {
  try {
    const problem = JSON.parse(page.body) as { detail?: string; title?: string };
    return problem.detail ?? problem.title ?? page.body;
  } catch {
    return page.body.replace(/<[^>]+>/g, ' ').replace(/\s+/g, ' ').trim().slice(0, 200);
  }
};

/**
 * `username` opens the vault's `link` and links their account at the SaaS; resolves once Writ
 * answered "Account linked". The first press of the link page's button signs them in to Writ
 * (and comes back to the page), the second goes on to the SaaS.
 */
export async function linkAccount(request: { link: string; username: string; ca: string }): Promise<void> {
  const browser = new DevBrowser(request.ca);
  let page = await browser.follow(request.link, request.username, {});
  if (page.status === 200 && new URL(page.url).href === new URL(request.link).href) page = await browser.follow(request.link, request.username, {});
  if (page.status !== 200 || !page.body.includes('Account linked')) throw new DevBrowserError(`linking stopped at ${new URL(page.url).pathname} (HTTP ${page.status}): ${why(page)}`);
}
