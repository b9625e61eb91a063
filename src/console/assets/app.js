// The console, no framework: the page asks who is signed in (GET /console/api/session) and
// shows them with their role, or a sign-in link. Every change it makes sends the session's
// CSRF token in X-Writ-CSRF; the API refuses a change without it, and any role too small.
const main = document.getElementById('main');
const who = document.getElementById('who');

const el = (tag, attrs = {}, ...children) => {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  for (const c of children) node.append(c);
  return node;
};

async function start() {
  const res = await fetch('/console/api/session', { credentials: 'same-origin' });
  if (res.status === 401) {
    main.replaceChildren(el('p', {}, 'Sign in with your company account to see and end what is live.'), el('a', { href: '/console/login', id: 'sign-in' }, 'Sign in'));
    return;
  }
  const session = await res.json();
  who.textContent = `${session.user} (${session.role ?? 'no role'})`;
  const out = el('button', { id: 'sign-out', type: 'button' }, 'Sign out');
  out.addEventListener('click', async () => {
    await fetch('/console/logout', { method: 'POST', headers: { 'x-writ-csrf': session.csrf }, credentials: 'same-origin' });
    location.assign('/console/');
  });
  who.append(' ', out);
  main.replaceChildren(el('p', { id: 'signed-in' }, `Signed in as ${session.user} at ${session.issuer}.`));
}

start().catch((err) => main.replaceChildren(el('p', { role: 'alert' }, `The console cannot reach Writ: ${err.message}`)));
